import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A Linux eventfd used as a level-triggered wake-up flag between threads, and as the "real fd"
/// a session over a callback transport needs (libssh2.md). eventfd is not in Swift's Glibc
/// module, so it is looked up once with dlsym.
public final class WakeFD: @unchecked Sendable {
    public let fd: Int32

    private typealias EventFDFunction = @convention(c) (UInt32, Int32) -> Int32
    private static let eventfdFunction: EventFDFunction? = {
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "eventfd") else { return nil }
        return unsafeBitCast(symbol, to: EventFDFunction.self)
    }()

    public init() throws {
        guard let make = Self.eventfdFunction else {
            throw SSHError(kind: .other, code: 0, message: "eventfd is not available", call: "eventfd")
        }
        let fd = make(0, O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else {
            throw SSHError(kind: .other, code: 0, message: String(cString: strerror(errno)), call: "eventfd")
        }
        self.fd = fd
    }

    deinit { Glibc.close(fd) }

    /// Makes the fd readable (idempotent until drained).
    public func signal() {
        var one: UInt64 = 1
        _ = withUnsafeBytes(of: &one) { Glibc.write(fd, $0.baseAddress, 8) }
    }

    /// Clears the readable state; returns true when it was signalled.
    @discardableResult
    public func drain() -> Bool {
        var value: UInt64 = 0
        return withUnsafeMutableBytes(of: &value) { Glibc.read(fd, $0.baseAddress, 8) } == 8
    }
}

/// Socket helpers the tunnel engine needs (plain POSIX, no libssh2).
public enum SocketIO {
    /// Connects to host:port within `timeout` seconds: a blocking fd with TCP_NODELAY set.
    public static func connectTCP(host: String, port: UInt16, timeout: Double) throws -> Int32 {
        try TCPSocket.connect(host: host, port: port, timeout: timeout)
    }

    public static func setNonBlocking(_ fd: Int32) {
        let flags = fcntl(fd, F_GETFL)
        _ = fcntl(fd, F_SETFL, flags | O_NONBLOCK)
    }

    /// Sends the acknowledgement the kernel is holding back for `fd` now, and leaves its
    /// "ping-pong" mode (TCP_QUICKACK; Linux drops it again by itself, so it is set after each
    /// read that drains the socket).
    ///
    /// Why: on a request/answer connection Linux delays ACKs (up to 40 ms) hoping to carry them
    /// on the next request. The login host's sshd writes to us without TCP_NODELAY, so Nagle
    /// holds the small last packet of an answer until what came before it is acknowledged: the
    /// answer waits for our delayed ACK. Acknowledging at once whenever we have read everything
    /// costs at most one ACK per burst. (The node's sshd, whose ACKs come from the login host,
    /// is asked for TCP_NODELAY instead: `FlowPolicy.nodeNoDelayCommand`.)
    @inline(__always)
    public static func acknowledgeAtOnce(_ fd: Int32) {
        setInt(fd, Int32(IPPROTO_TCP), TCP_QUICKACK, 1)
    }

    public static func setNoDelay(_ fd: Int32) {
        setInt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, 1)
    }

    /// Dead-peer detection on the outer TCP connection: kernel keepalive probes after `idle`
    /// seconds, every `interval`, `count` of them; and TCP_USER_TIMEOUT so unacknowledged data
    /// also fails the connection after `userTimeout` seconds instead of ~15 minutes.
    public static func setKeepalive(_ fd: Int32, idle: Int, interval: Int, count: Int, userTimeout: Double) {
        setInt(fd, SOL_SOCKET, SO_KEEPALIVE, 1)
        setInt(fd, Int32(IPPROTO_TCP), TCP_KEEPIDLE, Int32(max(1, idle)))
        setInt(fd, Int32(IPPROTO_TCP), TCP_KEEPINTVL, Int32(max(1, interval)))
        setInt(fd, Int32(IPPROTO_TCP), TCP_KEEPCNT, Int32(max(1, count)))
        setInt(fd, Int32(IPPROTO_TCP), TCP_USER_TIMEOUT, Int32(max(1000, userTimeout * 1000)))
    }

    /// Sets SO_SNDBUF/SO_RCVBUF (bytes). Optional tuning; the kernel may round.
    public static func setBuffers(_ fd: Int32, bytes: Int) {
        setInt(fd, SOL_SOCKET, SO_SNDBUF, Int32(bytes))
        setInt(fd, SOL_SOCKET, SO_RCVBUF, Int32(bytes))
    }

    private static func setInt(_ fd: Int32, _ level: Int32, _ name: Int32, _ value: Int32) {
        var v = value
        setsockopt(fd, level, name, &v, socklen_t(MemoryLayout<Int32>.size))
    }

    /// A non-blocking listening TCP socket on address:port (IPv4 or IPv6 literal, or a name).
    /// Port 0 picks a free port; see `localPort(of:)`. Throws with errno (EADDRINUSE when taken).
    public static func listen(address: String, port: UInt16, backlog: Int32 = 128) throws -> Int32 {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV
        var result: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(address, String(port), &hints, &result)
        guard rc == 0, let ai = result else {
            throw ListenError(errno: 0, message: "cannot resolve \(address): \(String(cString: gai_strerror(rc)))")
        }
        defer { freeaddrinfo(result) }
        let fd = socket(ai.pointee.ai_family, ai.pointee.ai_socktype | Int32(SOCK_CLOEXEC.rawValue), ai.pointee.ai_protocol)
        guard fd >= 0 else { throw ListenError(errno: errno, message: String(cString: strerror(errno))) }
        setInt(fd, SOL_SOCKET, SO_REUSEADDR, 1)
        guard bind(fd, ai.pointee.ai_addr, ai.pointee.ai_addrlen) == 0, Glibc.listen(fd, backlog) == 0 else {
            let e = errno
            Glibc.close(fd)
            throw ListenError(errno: e, message: String(cString: strerror(e)))
        }
        setNonBlocking(fd)
        return fd
    }

    public struct ListenError: Error, CustomStringConvertible {
        public var errno: Int32
        public var message: String
        public var description: String { message }
    }

    /// The port a bound socket listens on.
    public static func localPort(of fd: Int32) -> UInt16 {
        var storage = sockaddr_storage()
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let ok = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) == 0 }
        }
        guard ok else { return 0 }
        let family = storage.ss_family
        return withUnsafePointer(to: &storage) { p -> UInt16 in
            if family == sa_family_t(AF_INET6) {
                return p.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { UInt16(bigEndian: $0.pointee.sin6_port) }
            }
            return p.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { UInt16(bigEndian: $0.pointee.sin_port) }
        }
    }

    /// Accepts one pending connection as a non-blocking, close-on-exec, TCP_NODELAY fd, with the
    /// peer's "ip:port"; nil when none is pending.
    public static func accept(_ listener: Int32) -> (fd: Int32, peer: String)? {
        var storage = sockaddr_storage()
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let fd = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.accept(listener, $0, &len) }
        }
        guard fd >= 0 else { return nil }
        _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        setNonBlocking(fd)
        setNoDelay(fd)
        return (fd, peerName(storage))
    }

    static func peerName(_ storage: sockaddr_storage) -> String {
        var s = storage
        var host = [CChar](repeating: 0, count: Int(NI_MAXHOST))
        var serv = [CChar](repeating: 0, count: Int(NI_MAXSERV))
        let rc = withUnsafePointer(to: &s) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                getnameinfo($0, socklen_t(MemoryLayout<sockaddr_storage>.size), &host, socklen_t(host.count),
                            &serv, socklen_t(serv.count), NI_NUMERICHOST | NI_NUMERICSERV)
            }
        }
        guard rc == 0 else { return "?" }
        func text(_ c: [CChar]) -> String { String(decoding: c.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self) }
        return "\(text(host)):\(text(serv))"
    }
}

/// Process-wide malloc settings for the tunnel engine (glibc). Its large buffers are long-lived
/// and its many small ones (libssh2 packets) come and go; glibc's default raises the mmap
/// threshold after the first large free, after which big buffers land in the heap and keep it
/// from shrinking. A fixed threshold returns them to the system when freed, and a trim threshold
/// returns the heap's free top. Looked up with dlsym (malloc.h is not in Swift's Glibc module).
public enum MemoryTuning {
    private typealias MalloptFunction = @convention(c) (Int32, Int32) -> Int32
    private static let once: Void = {
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "mallopt") else { return }
        let mallopt = unsafeBitCast(symbol, to: MalloptFunction.self)
        _ = mallopt(-3, 64 << 10)  // M_MMAP_THRESHOLD
        _ = mallopt(-1, 256 << 10) // M_TRIM_THRESHOLD
    }()

    /// Applies the settings (once; later calls do nothing).
    public static func apply() { _ = once }

    /// Hands back the file pages that starting up touched and the running tunnel no longer needs.
    ///
    /// Startup (the Swift runtime's metadata scan, argument parsing, Foundation's first use) maps
    /// some 20 MB of the binary and its libraries, which then stay counted in the process's RSS
    /// for as long as the tunnel runs, though nothing reads them again. Once the tunnel is ready,
    /// this unmaps them with `madvise(MADV_DONTNEED)`: only private read-only file mappings (code
    /// and constants) that hold no page of their own (smaps `Anonymous: 0 kB`, so not the RELRO
    /// data the loader relocated), whose every page is an unmodified copy of the file. What the
    /// forwarding loop uses comes back at its first touch, from the page cache, identical.
    /// (MADV_PAGEOUT would be the gentler call, but it skips files the caller may not write:
    /// the installed binary and the system libraries.)
    public static func releaseStartupPages() {
        guard let smaps = fopen("/proc/self/smaps", "r") else { return }
        defer { fclose(smaps) }
        var line: UnsafeMutablePointer<CChar>?
        var capacity = 0
        defer { free(line) }
        var candidate: (start: UInt, end: UInt)?
        var ranges: [(start: UInt, end: UInt)] = []
        while getline(&line, &capacity, smaps) > 0, let line {
            let text = String(cString: line)
            let fields = text.split(separator: " ", omittingEmptySubsequences: true)
            if let first = fields.first, first.contains("-"), !first.hasSuffix(":") {
                // A mapping's header: "start-end perms offset dev inode path".
                candidate = nil
                let bounds = first.split(separator: "-")
                guard fields.count >= 6, fields[5].hasPrefix("/"), fields[1] == "r-xp" || fields[1] == "r--p",
                      bounds.count == 2, let start = UInt(bounds[0], radix: 16),
                      let end = UInt(bounds[1], radix: 16), end > start else { continue }
                candidate = (start, end)
            } else if fields.first == "Anonymous:", let range = candidate {
                if fields.count >= 2, fields[1] == "0" { ranges.append(range) }
                candidate = nil
            }
        }
        for range in ranges {
            guard let address = UnsafeMutableRawPointer(bitPattern: range.start) else { continue }
            _ = madvise(address, Int(range.end - range.start), MADV_DONTNEED)
        }
    }
}
