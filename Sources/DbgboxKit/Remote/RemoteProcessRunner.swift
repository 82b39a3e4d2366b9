import Foundation
import SSH

/// Runs argv arrays on the node, as exec channels over the libssh2 chain (laptop → login → node).
///
/// The chain is opened once and kept for the command's lifetime: an in-process `Tunnel` whose
/// target is the node's own sshd (as the node reaches itself: the node hop's resolved address),
/// on an ephemeral 127.0.0.1 port, and one blocking `SSHSession` through it, whose host key is
/// checked with the node hop's policy and which authenticates with the node hop's credentials.
/// Each argv becomes one exec channel on that session (shell-quoted into the one command string an
/// exec request carries).
///
/// Why a session on top of the chain rather than exec channels on the engine's own node session:
/// that session belongs to the engine's forwarding thread (libssh2 sessions are single-threaded),
/// and the engine has no API to run a channel on it. The extra layer costs one handshake (~tens of
/// ms) and carries only control traffic and the Dockerfile.
public final class RemoteProcessRunner: SSHSessionRunner, @unchecked Sendable {
    public let plan: TunnelPlan
    private let tunnel: Tunnel
    private let delegate: RemoteTunnelDelegate
    private let finished: DispatchSemaphore

    /// "node HOST:PORT", for messages.
    public var nodeName: String { "\(plan.node.hop.label) \(plan.node.hop.endpoint)" }

    /// Opens the chain and the node session. Throws one-line errors naming the hop that failed.
    public init(plan: TunnelPlan, checker: HostKeyChecker) throws {
        var configuration = plan.configuration
        configuration.targetHost = plan.node.hop.host
        configuration.targetPort = plan.node.hop.port
        configuration.bindAddress = "127.0.0.1"
        configuration.localPort = 0
        let delegate = RemoteTunnelDelegate(plan: plan, checker: checker)
        let tunnel = try Tunnel(configuration: configuration, delegate: delegate)
        let finished = DispatchSemaphore(value: 0)
        try tunnel.start()
        let thread = Thread {
            tunnel.run()
            finished.signal()
        }
        thread.name = "dbgbox-remote-chain"
        thread.start()

        let node = plan.node
        let session: SSHSession
        do {
            session = try SSHSession(host: "127.0.0.1", port: UInt16(tunnel.localPort),
                                     timeout: configuration.connectTimeout)
        } catch {
            tunnel.stop()
            _ = finished.wait(timeout: .now() + 5)
            throw RemoteError.connect(node: "\(node.hop.label) \(node.hop.endpoint)", why: "\(error)")
        }
        do {
            guard let key = session.hostKey else {
                throw RemoteError.connect(node: "\(node.hop.label) \(node.hop.endpoint)", why: "no host key presented")
            }
            do { try checker.check(node, key: key) } catch {
                throw RemoteError.hostKey(node: "\(node.hop.label) \(node.hop.endpoint)", why: "\(error)")
            }
            try Self.authenticate(session, hop: node.hop)
        } catch {
            session.close()
            tunnel.stop()
            _ = finished.wait(timeout: .now() + 5)
            throw error
        }
        self.plan = plan
        self.delegate = delegate
        self.tunnel = tunnel
        self.finished = finished
        super.init(session: session)
    }

    // Here, not only in the superclass's deinit: `didClose` needs this class's properties.
    deinit { close() }

    private static func authenticate(_ session: SSHSession, hop: TunnelHop) throws {
        guard let failure = HopLogin.tryCredentials(session, hop: hop) else { return }
        throw RemoteError.authentication(node: "\(hop.label) \(hop.endpoint)", user: hop.user,
                                         tried: failure.tried, why: failure.lastError)
    }

    override func sessionError(_ argv: [String], _ error: Error?) -> Error { RemoteError.session(nodeName, argv, error) }

    override func check(_ argv: [String], _ result: ProcessResult) throws { try RemoteError.checkFound(nodeName, argv, result) }

    /// Ends the chain too.
    override func didClose() {
        tunnel.stop()
        _ = finished.wait(timeout: .now() + 5)
    }
}

/// Checks the hops' host keys for the runner's chain; the chain's events are not shown (a command
/// that loses the chain fails on its own channel).
final class RemoteTunnelDelegate: TunnelDelegate, @unchecked Sendable {
    let plan: TunnelPlan
    let checker: HostKeyChecker

    init(plan: TunnelPlan, checker: HostKeyChecker) {
        self.plan = plan
        self.checker = checker
    }

    func verifyHostKey(hop: TunnelHop, role: TunnelHopRole, key: HostKey) throws {
        try checker.check(plan.hop(role), key: key)
    }

    func tunnelEvent(_ event: TunnelEvent) {}
}

/// Running commands on the node failed (not the command's own non-zero exit).
public enum RemoteError: UserFacingError, Equatable {
    case connect(node: String, why: String)
    case hostKey(node: String, why: String)
    case authentication(node: String, user: String, tried: [String], why: String)
    case lost(node: String, program: String, why: String)
    case notFound(node: String, program: String)
    case closed

    /// The error for `argv` when the session to `host` failed under it, or is closed (`error` nil).
    static func session(_ host: String, _ argv: [String], _ error: Error?) -> Error {
        guard let error else { return RemoteError.closed }
        return RemoteError.lost(node: host, program: argv.first ?? "", why: "\(error)")
    }

    /// The remote shell's "command not found".
    static func checkFound(_ host: String, _ argv: [String], _ result: ProcessResult) throws {
        if result.exitCode == 127, let name = argv.first, result.stderrText.contains("not found") {
            throw RemoteError.notFound(node: host, program: name)
        }
    }

    public var description: String {
        switch self {
        case .connect(let node, let why):
            return "\(node): cannot open a session through the login host: \(why): check that the node's sshd allows TCP forwarding to itself (AllowTcpForwarding), or try --node-via exec"
        case .hostKey(let node, let why):
            return "\(node): host key not accepted: \(why)"
        case .authentication(let node, let user, let tried, let why):
            let list = tried.isEmpty ? "nothing" : tried.joined(separator: ", ")
            return "\(node): authentication as \(user) failed (tried \(list))\(why.isEmpty ? "" : ": \(why)"): authorize your key there (dbgbox key install) or pass -i KEY"
        case .lost(let node, let program, let why):
            return "\(node): lost the session while running \(program): \(why): check the connection and run the command again"
        case .notFound(let node, let program):
            return "\(program) not found on \(node): install it there, or check the PATH of non-interactive ssh sessions"
        case .closed:
            return "the session to the node is already closed"
        }
    }
}
