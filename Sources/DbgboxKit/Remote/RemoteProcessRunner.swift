import Foundation
import SSH

/// Runs argv arrays on the node, as exec channels over the libssh2 chain (laptop → login → node).
///
/// The chain is opened once and kept for the command's lifetime: an in-process `Tunnel` without a
/// listener, whose hops' host keys are checked with the plan's policy. Each argv becomes one exec
/// channel (shell-quoted into the one command string an exec request carries) on the engine's own
/// node session (`Tunnel.openNodeChannel`): one login session, one node session, no third.
public final class RemoteProcessRunner: SSHSessionRunner, @unchecked Sendable {
    public let plan: TunnelPlan
    private let engine: EngineExecChannels

    /// "node HOST:PORT", for messages.
    public var nodeName: String { "\(plan.node.hop.label) \(plan.node.hop.endpoint)" }

    /// Opens the chain. Throws one-line errors naming the hop that failed.
    public init(plan: TunnelPlan, checker: HostKeyChecker) throws {
        var configuration = plan.configuration
        configuration.listens = false
        let delegate = RemoteTunnelDelegate(plan: plan, checker: checker)
        let tunnel = try Tunnel(configuration: configuration, delegate: delegate)
        try tunnel.start()
        let finished = DispatchSemaphore(value: 0)
        let thread = Thread {
            tunnel.run()
            finished.signal()
        }
        thread.name = "dbgbox-remote-chain"
        thread.start()
        self.plan = plan
        engine = EngineExecChannels(tunnel: tunnel, delegate: delegate, finished: finished)
        super.init(channels: engine)
    }

    // Here, not only in the superclass's deinit: `didClose` needs this class's properties.
    deinit { close() }

    override func sessionError(_ argv: [String], _ error: Error?) -> Error { RemoteError.session(nodeName, argv, error) }

    override func check(_ argv: [String], _ result: ProcessResult) throws { try RemoteError.checkFound(nodeName, argv, result) }
}

/// Exec channels on a running `Tunnel`'s node session; `close` stops the tunnel.
final class EngineExecChannels: ExecChannels, @unchecked Sendable {
    private let tunnel: Tunnel
    /// Kept for the tunnel's life (the tunnel holds it weakly).
    private let delegate: RemoteTunnelDelegate
    private let finished: DispatchSemaphore

    init(tunnel: Tunnel, delegate: RemoteTunnelDelegate, finished: DispatchSemaphore) {
        self.tunnel = tunnel
        self.delegate = delegate
        self.finished = finished
    }

    func exec(_ command: String, input: Data?, onStdout: (Data) -> Void, onStderr: (Data) -> Void) throws -> SSHExecStatus {
        let channel = try tunnel.openNodeChannel(.exec(command: command))
        if let input { channel.write(input) }
        channel.closeInput()
        while true {
            switch channel.next() {
            case .stdout(let data)?: onStdout(data)
            case .stderr(let data)?: onStderr(data)
            case .closed(let status)?: return status ?? SSHExecStatus(code: -1)
            case .failed(let why)?: throw DbgboxError(why)
            case nil: continue
            }
        }
    }

    func close() {
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
