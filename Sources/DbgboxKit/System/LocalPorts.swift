import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A local port for a tunnel to listen on. A protocol so tests need no sockets.
public protocol LocalPortFinder: Sendable {
    /// `preferred` when it is free on this machine, else some free port.
    func port(preferring preferred: Int) throws -> Int
}

/// Probes with bind(): the preferred port when both 0.0.0.0 and 127.0.0.1 take it, else the
/// kernel's pick of a free 127.0.0.1 port.
public struct LoopbackPortFinder: LocalPortFinder {
    public var probe: PortProbe

    public init(probe: PortProbe = BindPortProbe()) {
        self.probe = probe
    }

    public func port(preferring preferred: Int) throws -> Int {
        if let port = UInt16(exactly: preferred), probe.isFree(port) { return preferred }
        return try Self.freePort()
    }

    /// Port 0 bound on 127.0.0.1 and closed again: the kernel's pick.
    public static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw DbgboxError("no socket for a free local port: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = 0
        addr.sin_addr = in_addr(s_addr: UInt32(0x7f00_0001).bigEndian)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &addr) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0
            }
        }
        guard ok else { throw DbgboxError("no free local port: \(String(cString: strerror(errno)))") }
        return Int(UInt16(bigEndian: addr.sin_port))
    }
}

/// This program's own executable, for re-executing itself (`dbgbox tunnel` in the background).
public enum SelfExecutable {
    public static func path() throws -> String {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard n > 0 else { throw DbgboxError("cannot find dbgbox's own executable (/proc/self/exe): \(String(cString: strerror(errno)))") }
        return String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
