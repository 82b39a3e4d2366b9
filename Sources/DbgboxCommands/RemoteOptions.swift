import ArgumentParser
import DbgboxKit
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// `--login`/`--node` and their ssh options: with them, docker and the node checks run on the node
/// through the libssh2 chain; without them, on this machine.
struct RemoteOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Run on a cluster node: the login host, [USER@]HOST[:PORT] or a Host alias (with --node).", valueName: "host"))
    var login: String?

    @Option(help: ArgumentHelp("The node, as the login host reaches it: [USER@]HOST[:PORT] or a Host alias (with --login).", valueName: "host"))
    var node: String?

    @Option(name: .customShort("i"), help: ArgumentHelp("An identity file for both hops (repeatable).", valueName: "key"))
    var identity: [String] = []

    @Option(help: ArgumentHelp("How the login host reaches the node: direct or exec (`ssh -W` run on the login host).", valueName: "direct|exec"))
    var nodeVia: String = "direct"

    @Flag(help: "Append an unknown host key of a hop to known_hosts (one line) instead of refusing it.")
    var acceptNew = false

    @Option(help: ArgumentHelp("The known_hosts file for the hops' host keys (default: ssh's own). Without --node, cleanup's file to clean.", valueName: "file"))
    var knownHosts: String?

    @Option(name: .customShort("F"), help: ArgumentHelp("The ssh config file to read instead of ~/.ssh/config.", valueName: "file"))
    var sshConfig: String?

    var isRemote: Bool { login != nil || node != nil }

    func validate() throws {
        // Issue 14: --login alone is `up --scheduler`'s (the node is the job's); the pairing is
        // checked where a node is needed (`environment()`).
        if node != nil && login == nil {
            throw ValidationError(Self.pairing)
        }
        guard TunnelRequest.NodeVia(rawValue: nodeVia) != nil else {
            throw ValidationError("--node-via \(nodeVia): use direct or exec")
        }
    }

    /// The runner and node environment: local, or the node through a freshly opened chain (the
    /// caller closes it with `environment.close()`).
    static let pairing = "--login and --node go together: give both to run on the node, or neither to run here"

    func environment() throws -> (ProcessRunner, NodeEnvironment) {
        if login != nil && node == nil { throw DbgboxError(Self.pairing) }
        guard let login, let node else {
            let runner = LocalProcessRunner()
            return (runner, .local(runner: runner))
        }
        let request = TunnelRequest(
            login: try HostSpec(parsing: login), node: try HostSpec(parsing: node),
            targetPort: 22, identityFiles: identity,
            nodeVia: TunnelRequest.NodeVia(rawValue: nodeVia) ?? .direct,
            acceptNew: acceptNew, knownHostsFile: knownHosts, sshConfigFile: sshConfig)
        let (plan, prompter, _) = try TunnelCommand.makePlan(request)
        let checker = HostKeyChecker(prompter: prompter, knownHostsOverride: knownHosts, acceptNew: acceptNew)
        let runner = try RemoteProcessRunner(plan: plan, checker: checker)
        return (runner, .remote(runner))
    }
}
