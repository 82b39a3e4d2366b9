import CLibSSH2
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A remote port forward ("tcpip-forward", RFC 4254 7.1) on a `NonBlockingSSHSession`: the server
/// listens on host:port and hands each connection to it over as a "forwarded-tcpip" channel
/// (`tryAccept`). Every call is non-blocking and, after EAGAIN, must be repeated as it was before
/// anything else is sent on the session (libssh2.md).
public final class SSHForwardListener {
    public let raw: OpaquePointer
    /// Keeps the session alive as long as the listener.
    public let session: NonBlockingSSHSession
    /// The port the server bound.
    public let boundPort: Int

    init(raw: OpaquePointer, session: NonBlockingSSHSession, boundPort: Int) {
        self.raw = raw
        self.session = session
        self.boundPort = boundPort
    }

    public enum AcceptResult {
        case accepted(SSHChannel)
        /// None pending (repeat later).
        case none
        case failed(SSHError)
    }

    /// One non-blocking accept of a connection the server forwarded.
    public func tryAccept() -> AcceptResult {
        if let channel = libssh2_channel_forward_accept(raw) { return .accepted(SSHChannel(raw: channel, session: session)) }
        let code = libssh2_session_last_errno(session.raw)
        if code == NonBlockingSSHSession.again || code == 0 { return .none }
        return .failed(session.lastError("libssh2_channel_forward_accept", code: code))
    }

    /// Asks the server to stop listening ("cancel-tcpip-forward"); EAGAIN: call again.
    public func cancel() -> Int32 { libssh2_channel_forward_cancel(raw) }
}

extension NonBlockingSSHSession {
    public enum ForwardListenResult {
        case listening(SSHForwardListener)
        /// Repeat the same call (same arguments) later, before anything else is sent.
        case wouldBlock
        /// The server refused (`LIBSSH2_ERROR_REQUEST_DENIED`: the port is taken there or
        /// forwarding is not allowed), or the session failed.
        case failed(SSHError)
    }

    /// One non-blocking attempt at asking the server to listen on host:port for us.
    public func tryForwardListen(host: String, port: Int, queueMax: Int32 = 16) -> ForwardListenResult {
        var bound: Int32 = 0
        if let listener = libssh2_channel_forward_listen_ex(raw, host, Int32(port), &bound, queueMax) {
            return .listening(SSHForwardListener(raw: listener, session: self, boundPort: Int(bound > 0 ? bound : Int32(port))))
        }
        let code = libssh2_session_last_errno(raw)
        if code == Self.again { return .wouldBlock }
        return .failed(lastError("libssh2_channel_forward_listen_ex", code: code))
    }
}

extension SocketIO {
    /// A listening unix socket at `path` (an old socket file there is replaced), mode 0600, blocking,
    /// close-on-exec. Throws `ListenError`.
    public static func listenUnix(path: String, backlog: Int32 = 16) throws -> Int32 {
        var address = try unixAddress(path)
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw ListenError(errno: errno, message: String(cString: strerror(errno))) }
        unlink(path)
        let old = umask(0o177)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        umask(old)
        guard bound == 0, chmod(path, 0o600) == 0, Glibc.listen(fd, backlog) == 0 else {
            let e = errno
            Glibc.close(fd)
            throw ListenError(errno: e, message: String(cString: strerror(e)))
        }
        return fd
    }

    /// A blocking connection to the unix socket at `path`, with `timeout` seconds for each read and
    /// write. Throws `ListenError` (ENOENT, ECONNREFUSED: nobody listens).
    public static func connectUnix(path: String, timeout: Double) throws -> Int32 {
        var address = try unixAddress(path)
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw ListenError(errno: errno, message: String(cString: strerror(errno))) }
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard rc == 0 else {
            let e = errno
            Glibc.close(fd)
            throw ListenError(errno: e, message: String(cString: strerror(e)))
        }
        setTimeouts(fd, seconds: timeout)
        return fd
    }

    /// SO_RCVTIMEO and SO_SNDTIMEO.
    public static func setTimeouts(_ fd: Int32, seconds: Double) {
        var tv = timeval(tv_sec: Int(seconds), tv_usec: Int((seconds - Double(Int(seconds))) * 1_000_000))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }

    /// The uid of the process at the other end of a unix socket (SO_PEERCRED), nil if unknown.
    public static func peerUID(_ fd: Int32) -> uid_t? {
        // struct ucred { pid_t pid; uid_t uid; gid_t gid; } (not in Swift's Glibc module).
        var credentials: (Int32, UInt32, UInt32) = (0, 0, 0)
        var length = socklen_t(MemoryLayout<(Int32, UInt32, UInt32)>.size)
        guard getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &credentials, &length) == 0 else { return nil }
        return credentials.1
    }

    private static func unixAddress(_ path: String) throws -> sockaddr_un {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard bytes.count < capacity else {
            throw ListenError(errno: ENAMETOOLONG, message: "the socket path \(path) is longer than \(capacity - 1) bytes")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, b) in bytes.enumerated() { raw[i] = b }
        }
        return address
    }
}
