import ArgumentParser
import DbgboxKit
import Foundation

struct Cleanup: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Remove containers and the known_hosts entries they left.",
        discussion: """
        With --container, that container; with only --port, your containers on that port; with neither, \
        all your containers. Also removes their pinned host keys and every [127.0.0.1]:PORT and \
        [localhost]:PORT entry in your known_hosts (a backup stays as known_hosts.old): ~/.ssh/known_hosts, \
        or the file given with --known-hosts (with --node, --known-hosts is the hops' file and \
        ~/.ssh/known_hosts of this machine is cleaned).
        Example: dbgbox cleanup --container alice_01234 --dry-run
        """)

    @Option(help: "Only this container.")
    var container: String?

    @Option(help: "The port whose known_hosts entries to remove (default: the container's).")
    var port: String?

    @Flag(name: .customLong("dry-run"), help: "Show what would be removed, change nothing.")
    var dryRun = false

    @OptionGroup var userOptions: UserOptions

    // Issue 14: the reaper (begin)
    @Option(help: ArgumentHelp("With --login and --node: also remove your containers on the node whose scheduler job no longer exists.", valueName: "slurm|pbs"))
    var scheduler: String?
    // Issue 14 (end)

    @OptionGroup(title: "Run on a cluster node") var remote: RemoteOptions

    func run() throws {
        var portNumber: UInt16?
        if let port {
            guard case .fixed(let p) = try PortRequest.parse(port) else {
                throw DbgboxError("--port auto means nothing to cleanup: give the port number")
            }
            portNumber = p
        }
        let (_, node) = try remote.environment()
        defer { node.close() }
        let user = try node.identity(requested: userOptions.user)
        // Issue 14: the reaper, one call into the Kit (begin)
        if let scheduler {
            let kind = try SchedulerKind.parse(scheduler)
            guard node.isRemote else { throw DbgboxError("--scheduler needs --login and --node: the node whose job containers to check") }
            if dryRun { print("would check \(node.name) for containers of ended jobs (not with --dry-run)") } else {
                let login = try remote.loginRunner()
                defer { login.close() }
                for name in try Reaper.reap(node: node.runner, scheduler: schedulerClient(kind, runner: login), owner: user.name) {
                    print("removed container \(name) (its job no longer exists)")
                }
            }
        }
        // Issue 14 (end)
        let home = ContainerWiring.dotHome(user, options: userOptions, node: node)
        // With --node, --known-hosts names the hops' file; the entries to clean are this machine's
        // (its ssh reaches the container through a tunnel on 127.0.0.1), in ~/.ssh/known_hosts.
        let cleanedKnownHosts = remote.isRemote ? nil : remote.knownHosts.map(ContainerWiring.absolute)
        let report = try ContainerWiring.service(node).cleanup(
            user: user, container: container, port: portNumber,
            knownHostsPath: cleanedKnownHosts ?? "\(home)/.ssh/known_hosts",
            pinnedPath: PinnedHostKeys.defaultPath(home: home), dryRun: dryRun)
        let verb = dryRun ? "would remove" : "removed"
        for name in report.containers { print("\(verb) container \(name)") }
        for alias in report.pinnedAliases { print("\(verb) pinned host key \(alias)") }
        for entry in report.knownHostsEntries { print("\(verb) \(entry.host) from \(entry.path) line \(entry.line)") }
        if report.containers.isEmpty && report.pinnedAliases.isEmpty && report.knownHostsEntries.isEmpty {
            print(dryRun ? "nothing to remove" : "nothing removed")
        }
    }
}
