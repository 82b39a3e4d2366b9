import Foundation
import SSH

/// An SSH handshake with the laptop end of a session's tunnel (127.0.0.1:PORT), no authentication:
/// what `dbgbox status` asks of each session's container. A fake in tests.
public protocol ContainerHandshakeProbe: Sendable {
    /// The host key presented in a handshake with 127.0.0.1:`port`; throws when there is no
    /// handshake within `timeout` seconds (refused, closed by the tunnel, silent).
    func presentedKey(port: UInt16, timeout: Double) throws -> SSHPublicKey
}

/// The real probe on libssh2, and the first step of every libssh2 connection to a session's
/// container (`ContainerSessionRunner` goes on from `open` to check the key and log in).
public struct LibSSH2HandshakeProbe: ContainerHandshakeProbe {
    public init() {}

    /// libssh2's timeout is per blocking wait (connect, the banner, each key exchange message): each
    /// gets half of `timeout`, so that a handshake stalled at one step ends well within it.
    public func presentedKey(port: UInt16, timeout: Double) throws -> SSHPublicKey {
        let (session, key) = try Self.open(port: port, timeout: timeout / 2)
        session.close()
        return key
    }

    /// TCP to 127.0.0.1:`port` and the SSH handshake: the session, not authenticated, and the host
    /// key it presented. Throws `SSHError`, or a `DbgboxError` when no host key was presented.
    static func open(port: UInt16, timeout: Double) throws -> (SSHSession, SSHPublicKey) {
        let session = try SSHSession(host: "127.0.0.1", port: port, timeout: timeout)
        guard let key = session.hostKey else {
            session.close()
            throw DbgboxError("no host key presented")
        }
        return (session, SSHPublicKey(type: key.typeName, blob: key.blob))
    }
}

extension SSHPublicKey {
    /// The same key (type and blob; the comment does not count).
    public func isSameKey(as other: SSHPublicKey) -> Bool { type == other.type && blob == other.blob }
}

/// What a session's container answered through the session's own tunnel.
public enum ContainerState: Sendable, Equatable {
    /// The handshake presented the pinned host key: `ssh dbgbox-NAME` works.
    case answering
    /// The handshake presented another key than the pinned one (SHA256 fingerprints): the container
    /// was replaced, or another program holds the port. ssh refuses it with its host key warning.
    case hostKeyChanged(pinned: String, presented: String)
    /// No handshake: the tunnel runs but nothing answers behind it (the container stopped or was
    /// removed, e.g. by a dockerd restart, or the path to the node is down). `why` is the error.
    case notAnswering(why: String)
    /// Not probed: the tunnel does not run, or no key is pinned (`why`).
    case unknown(why: String)

    /// `status --json`'s `container_state`: "answering", "host key changed", "not answering" or "unknown".
    public var field: String {
        switch self {
        case .answering: return "answering"
        case .hostKeyChanged: return "host key changed"
        case .notAnswering: return "not answering"
        case .unknown: return "unknown"
        }
    }

    /// The table's STATE column.
    public var column: String {
        switch self {
        case .answering: return "answering (pinned key)"
        case .hostKeyChanged: return "HOST KEY CHANGED"
        case .notAnswering: return "not answering"
        case .unknown: return "unknown"
        }
    }

    /// What happened and what to run, one line (nil when the container answers with its pinned key).
    public func advice(session name: String, logFile: String) -> String? {
        let again = "run `dbgbox down \(name)`, then `dbgbox up …` again for a new container"
        switch self {
        case .answering:
            return nil
        case .hostKeyChanged(let pinned, let presented):
            return "\(name): the container presents host key \(presented), not \(pinned) pinned for dbgbox-\(name) (ssh warns REMOTE HOST IDENTIFICATION HAS CHANGED and refuses): it was replaced, or another program holds the port; \(again)"
        case .notAnswering(let why):
            return "\(name): the tunnel runs but the container does not answer (\(condense(why, limit: 120))): it was stopped or removed (a dockerd restart removes it), or the node is unreachable (see \(logFile)); \(again)"
        case .unknown(let why):
            return "\(name): container not checked (\(why)); \(again)"
        }
    }
}

/// Probes each session's container through the session's tunnel for `dbgbox status`: only a
/// session whose tunnel runs (or runs in an `up --foreground`) and that has a pinned key is
/// probed; several are probed at once, each for at most `timeout` seconds. Never prints.
public struct ContainerCheck: Sendable {
    public var probe: any ContainerHandshakeProbe
    public var liveness: TunnelLiveness
    /// dbgbox's pinned container host keys (`~/.ssh/dbgbox/known_hosts`).
    public var pinnedPath: String
    public var timeout: Double
    let fs: FileSystem

    public init(probe: any ContainerHandshakeProbe = LibSSH2HandshakeProbe(), liveness: TunnelLiveness = TunnelLiveness(),
                pinnedPath: String, timeout: Double = 5, fs: FileSystem = LocalFileSystem()) {
        self.probe = probe
        self.liveness = liveness
        self.pinnedPath = pinnedPath
        self.timeout = timeout
        self.fs = fs
    }

    /// The state of each record's container, in the records' order.
    public func states(of records: [SessionRecord]) -> [ContainerState] {
        var states: [ContainerState] = []
        var probes: [(index: Int, port: UInt16, pinned: SSHPublicKey)] = []
        for (index, record) in records.enumerated() {
            switch prepare(record) {
            case .success(let (port, pinned)):
                probes.append((index, port, pinned))
                states.append(.notAnswering(why: "no SSH handshake within \(Self.seconds(timeout))"))
            case .failure(let state):
                states.append(state.state)
            }
        }
        guard !probes.isEmpty else { return states }
        let answers = Answers()
        for item in probes {
            let probe = self.probe
            let timeout = self.timeout
            // A thread each: a handshake blocks, and the pool of a global queue may not grow in time.
            Thread {
                answers.set(item.index, Self.verdict(probe: probe, port: item.port, pinned: item.pinned, timeout: timeout))
            }.start()
        }
        // A probe still running at the deadline counts as not answering; it ends with the process.
        answers.wait(for: probes.count, until: Date().addingTimeInterval(timeout))
        for (index, state) in answers.all { states[index] = state }
        return states
    }

    /// What to probe for `record`, or why it is not probed.
    private func prepare(_ record: SessionRecord) -> Result<(UInt16, SSHPublicKey), NotProbed> {
        switch liveness.state(of: record) {
        case .alive, .notRecorded:
            break
        case .gone, .pidReused, .notDbgbox:
            return .failure(NotProbed(state: .unknown(why: "the tunnel is not running")))
        }
        guard let port = UInt16(exactly: record.localPort), port > 0 else {
            return .failure(NotProbed(state: .unknown(why: "the record's local port \(record.localPort) is not a port")))
        }
        let pinned: SSHPublicKey?
        do {
            pinned = try PinnedHostKeys(path: pinnedPath, fs: fs).key(for: record.alias)
        } catch {
            return .failure(NotProbed(state: .unknown(why: "the pinned key of \(record.alias) in \(pinnedPath) is unreadable: \(condense("\(error)", limit: 100))")))
        }
        guard let pinned else {
            return .failure(NotProbed(state: .unknown(why: "no host key is pinned for \(record.alias) in \(pinnedPath)")))
        }
        return .success((port, pinned))
    }

    /// One handshake's verdict.
    static func verdict(probe: any ContainerHandshakeProbe, port: UInt16, pinned: SSHPublicKey, timeout: Double) -> ContainerState {
        do {
            let presented = try probe.presentedKey(port: port, timeout: timeout)
            guard presented.isSameKey(as: pinned) else {
                return .hostKeyChanged(pinned: pinned.fingerprintSHA256, presented: presented.fingerprintSHA256)
            }
            return .answering
        } catch {
            return .notAnswering(why: Self.describe(error, timeout: timeout))
        }
    }

    /// An SSH failure as the user reads it: the tunnel accepts the connection and closes it when
    /// the node cannot reach the container's port.
    static func describe(_ error: Error, timeout: Double) -> String {
        guard let ssh = error as? SSHError else { return condense("\(error)", limit: 120) }
        switch ssh.kind {
        case .timeout: return "no SSH handshake within \(seconds(timeout))"
        case .disconnected: return "the connection was closed before the SSH handshake"
        case .connect: return condense(ssh.message, limit: 120)
        default: return "the SSH handshake failed: \(condense(ssh.message, limit: 100))"
        }
    }

    static func seconds(_ value: Double) -> String {
        value == value.rounded() ? "\(Int(value)) s" : String(format: "%.1f s", value)
    }

    struct NotProbed: Error {
        var state: ContainerState
    }

    /// The probes' answers, written from their threads.
    private final class Answers: @unchecked Sendable {
        private let condition = NSCondition()
        private var states: [Int: ContainerState] = [:]

        func set(_ index: Int, _ state: ContainerState) {
            condition.lock()
            states[index] = state
            condition.broadcast()
            condition.unlock()
        }

        /// Waits until `count` answers are in, or `deadline`.
        func wait(for count: Int, until deadline: Date) {
            condition.lock()
            while states.count < count && condition.wait(until: deadline) {}
            condition.unlock()
        }

        var all: [Int: ContainerState] {
            condition.lock()
            defer { condition.unlock() }
            return states
        }
    }
}
