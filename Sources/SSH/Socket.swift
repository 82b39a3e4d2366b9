import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// TCP helpers for the sessions' sockets.
enum TCPSocket {
    /// Connects to host:port within `timeout` seconds; returns a blocking fd with TCP_NODELAY set.
    static func connect(host: String, port: UInt16, timeout: Double) throws -> Int32 {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var result: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(host, String(port), &hints, &result)
        guard rc == 0, let first = result else {
            throw SSHError(kind: .connect, code: 0, message: "cannot resolve \(host): \(String(cString: gai_strerror(rc)))",
                           call: "getaddrinfo")
        }
        defer { freeaddrinfo(result) }
        var lastError: Int32 = ECONNREFUSED
        var cursor: UnsafeMutablePointer<addrinfo>? = first
        while let ai = cursor {
            cursor = ai.pointee.ai_next
            let fd = socket(ai.pointee.ai_family, ai.pointee.ai_socktype | Int32(SOCK_CLOEXEC.rawValue), ai.pointee.ai_protocol)
            if fd < 0 { lastError = errno; continue }
            if connectWithTimeout(fd, ai.pointee.ai_addr, ai.pointee.ai_addrlen, timeout: timeout, error: &lastError) {
                var one: Int32 = 1
                setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
                return fd
            }
            close(fd)
        }
        throw SSHError(kind: lastError == ETIMEDOUT ? .timeout : .connect, code: 0,
                       message: "cannot connect to \(host) port \(port): \(String(cString: strerror(lastError)))",
                       call: "connect")
    }

    private static func connectWithTimeout(_ fd: Int32, _ addr: UnsafeMutablePointer<sockaddr>, _ len: socklen_t,
                                           timeout: Double, error: inout Int32) -> Bool {
        let flags = fcntl(fd, F_GETFL)
        _ = fcntl(fd, F_SETFL, flags | O_NONBLOCK)
        defer { _ = fcntl(fd, F_SETFL, flags) }
        if Glibc.connect(fd, addr, len) == 0 { return true }
        guard errno == EINPROGRESS else { error = errno; return false }
        var pfd = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
        let ready = poll(&pfd, 1, Int32(timeout * 1000))
        guard ready > 0 else { error = ready == 0 ? ETIMEDOUT : errno; return false }
        var soError: Int32 = 0
        var soLen = socklen_t(MemoryLayout<Int32>.size)
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &soError, &soLen)
        guard soError == 0 else { error = soError; return false }
        return true
    }
}
