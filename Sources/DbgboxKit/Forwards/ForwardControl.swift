import Foundation
import SSH
#if canImport(Glibc)
import Glibc
#endif

/// The control channel of a session's tunnel process: a unix socket (0600, in dbgbox's private
/// state directory, `SessionManager.controlPath`) on which `dbgbox forward` asks the running
/// tunnel to add or remove forwards. One request per connection, one JSON line each way; the
/// tunnel answers only processes of its own user (SO_PEERCRED).
public struct ForwardControlRequest: Codable, Sendable, Equatable {
    public enum Operation: String, Codable, Sendable {
        case add
        case remove
        case list
    }

    public var op: Operation
    /// `add`: the forwards (a forward's local 0: auto).
    public var forwards: [PortForward]
    /// `remove`: the container ports.
    public var ports: [Int]

    public init(op: Operation, forwards: [PortForward] = [], ports: [Int] = []) {
        self.op = op
        self.forwards = forwards
        self.ports = ports
    }
}

public struct ForwardControlReply: Codable, Sendable, Equatable {
    /// nil when it worked; else the one-line error.
    public var error: String?
    /// `add`: the forwards added (resolved); `remove`: those removed; `list`: all.
    public var forwards: [PortForward]

    public init(error: String? = nil, forwards: [PortForward] = []) {
        self.error = error
        self.forwards = forwards
    }
}

public enum ForwardControl {
    /// The largest line either side reads.
    static let lineLimit = 64 << 10

    /// One JSON line.
    public static func encode<T: Encodable>(_ value: T) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return try encoder.encode(value) + Data("\n".utf8)
    }

    public static func decode<T: Decodable>(_ type: T.Type, _ line: Data) throws -> T {
        try JSONDecoder().decode(type, from: line)
    }

    /// Sends `request` to the tunnel listening at `path` and returns its reply. Throws
    /// `ForwardError.control` when nobody answers.
    public static func send(_ request: ForwardControlRequest, to path: String, session: String, timeout: Double = 30) throws -> ForwardControlReply {
        let fd: Int32
        do {
            fd = try SocketIO.connectUnix(path: path, timeout: timeout)
        } catch {
            throw ForwardError.control(name: session, why: "\(error)")
        }
        defer { Glibc.close(fd) }
        do {
            try writeAll(fd, try encode(request))
            guard let line = try readLine(fd) else { throw ForwardError.control(name: session, why: "the tunnel closed the control channel") }
            return try decode(ForwardControlReply.self, line)
        } catch let error as ForwardError {
            throw error
        } catch {
            throw ForwardError.control(name: session, why: "\(error)")
        }
    }

    static func writeAll(_ fd: Int32, _ data: Data) throws {
        try data.withUnsafeBytes { raw in
            var sent = 0
            while sent < raw.count {
                let n = Glibc.send(fd, raw.baseAddress! + sent, raw.count - sent, Int32(MSG_NOSIGNAL))
                if n < 0 {
                    if errno == EINTR { continue }
                    throw DbgboxError("write: \(String(cString: strerror(errno)))")
                }
                sent += n
            }
        }
    }

    /// A line up to `lineLimit` bytes (without its newline); nil on EOF before any byte.
    static func readLine(_ fd: Int32) throws -> Data? {
        var line = Data()
        var buffer = [UInt8](repeating: 0, count: 4096)
        while line.count <= lineLimit {
            let n = Glibc.recv(fd, &buffer, buffer.count, 0)
            if n < 0 {
                if errno == EINTR { continue }
                throw DbgboxError(errno == EAGAIN ? "no answer in time" : "read: \(String(cString: strerror(errno)))")
            }
            if n == 0 { return line.isEmpty ? nil : line }
            if let newline = buffer[0..<n].firstIndex(of: 10) {
                line.append(contentsOf: buffer[0..<newline])
                return line
            }
            line.append(contentsOf: buffer[0..<n])
        }
        throw DbgboxError("the line is longer than \(lineLimit) bytes")
    }
}

/// The tunnel side of the control channel: a thread accepting on the socket, answering each
/// request of the same user with `handle`.
public final class ForwardControlServer: @unchecked Sendable {
    public let path: String
    private let fd: Int32
    private let handle: @Sendable (ForwardControlRequest) -> ForwardControlReply
    private let done = DispatchSemaphore(value: 0)

    /// Listens at `path` (an old socket there is replaced). Throws `SocketIO.ListenError`.
    public init(path: String, handle: @escaping @Sendable (ForwardControlRequest) -> ForwardControlReply) throws {
        self.path = path
        self.handle = handle
        fd = try SocketIO.listenUnix(path: path)
        let thread = Thread { [self] in
            serve()
            done.signal()
        }
        thread.name = "dbgbox-forward-control"
        thread.start()
    }

    /// Stops accepting and removes the socket file.
    public func stop() {
        Glibc.shutdown(fd, Int32(SHUT_RDWR))
        _ = done.wait(timeout: .now() + 2)
        Glibc.close(fd)
        unlink(path)
    }

    private func serve() {
        while true {
            let client = Glibc.accept(fd, nil, nil)
            if client < 0 {
                if errno == EINTR || errno == ECONNABORTED { continue }
                return
            }
            defer { Glibc.close(client) }
            guard SocketIO.peerUID(client) == getuid() else { continue }
            SocketIO.setTimeouts(client, seconds: 5)
            let reply: ForwardControlReply
            do {
                guard let line = try ForwardControl.readLine(client) else { continue }
                reply = handle(try ForwardControl.decode(ForwardControlRequest.self, line))
            } catch {
                reply = ForwardControlReply(error: "bad request: \(error)")
            }
            if let data = try? ForwardControl.encode(reply) { try? ForwardControl.writeAll(client, data) }
        }
    }
}

extension ContainerForwarder {
    /// Answers a control request.
    public func handle(_ request: ForwardControlRequest) -> ForwardControlReply {
        do {
            switch request.op {
            case .add: return ForwardControlReply(forwards: try add(request.forwards))
            case .remove: return ForwardControlReply(forwards: try remove(ports: request.ports))
            case .list: return ForwardControlReply(forwards: forwards)
            }
        } catch {
            return ForwardControlReply(error: "\(error)")
        }
    }
}
