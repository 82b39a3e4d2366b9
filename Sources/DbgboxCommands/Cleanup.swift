import ArgumentParser
import DbgboxKit

struct Cleanup: DbgboxCommand {
    static let configuration = CommandConfiguration(
        abstract: "Remove containers and the known_hosts entries they left.",
        discussion: """
        With --container, that container; with only --port, your containers on that port; with neither, \
        all your containers. Also removes their pinned host keys and every [127.0.0.1]:PORT and \
        [localhost]:PORT entry in your known_hosts (a backup stays as known_hosts.old): ~/.ssh/known_hosts, \
        or the file given with --known-hosts (with --node, --known-hosts is the hops' file and \
        ~/.ssh/known_hosts of this machine is cleaned).
        With --scheduler slurm|pbs (and --login, --node): first your containers on the node whose \
        scheduler job no longer exists (asked on the login host) are removed.
        Example: dbgbox cleanup --container alice_01234 --dry-run
        """)

    @Option(help: "Only this container.")
    var container: String?

    @Option(help: "The port whose known_hosts entries to remove (default: the container's).")
    var port: String?

    @Flag(name: .customLong("dry-run"), help: "Show what would be removed, change nothing.")
    var dryRun = false

    @Option(help: ArgumentHelp("With --login and --node: also remove your containers on the node whose scheduler job no longer exists.", valueName: "slurm|pbs"))
    var scheduler: String?

    @OptionGroup var userOptions: UserOptions

    @OptionGroup(title: "Run on a cluster node") var chain: ChainOptions

    func run(_ context: CommandContext) throws {
        var portNumber: UInt16?
        if let port {
            guard case .fixed(let p) = try PortRequest.parse(port) else {
                throw DbgboxError("--port auto means nothing to cleanup: give the port number")
            }
            portNumber = p
        }
        let kind = try scheduler.map(SchedulerKind.parse)
        let request = try chain.request()
        if kind != nil && request == nil {
            throw DbgboxError("--scheduler needs --login and --node: the node whose job containers to check")
        }
        let node = try context.node(request)
        defer { node.close() }
        let user = try node.identity(requested: userOptions.user)
        if let kind, let request {
            if dryRun {
                context.say("would check \(node.name) for containers of ended jobs (not with --dry-run)")
            } else {
                for name in try SchedulerSessions(context: context, chain: request).reap(kind, node: node, owner: user.name) {
                    context.say("removed container \(name) (its job no longer exists)")
                }
            }
        }
        let home = context.dotHome(for: user, requestedUser: userOptions.user, remote: node.isRemote)
        // With --node, --known-hosts names the hops' file; the entries to clean are this machine's
        // (its ssh reaches the container through a tunnel on 127.0.0.1), in ~/.ssh/known_hosts.
        let cleanedKnownHosts = chain.isRemote ? nil : chain.hops.knownHosts.map(context.absolute)
        let report = try context.containers(node).cleanup(
            user: user, container: container, port: portNumber,
            knownHostsPath: cleanedKnownHosts ?? "\(home)/.ssh/known_hosts",
            pinnedPath: PinnedHostKeys.defaultPath(home: home), dryRun: dryRun)
        let verb = dryRun ? "would remove" : "removed"
        for name in report.containers { context.say("\(verb) container \(name)") }
        for alias in report.pinnedAliases { context.say("\(verb) pinned host key \(alias)") }
        for entry in report.knownHostsEntries { context.say("\(verb) \(entry.host) from \(entry.path) line \(entry.line)") }
        if report.containers.isEmpty && report.pinnedAliases.isEmpty && report.knownHostsEntries.isEmpty {
            context.say(dryRun ? "nothing to remove" : "nothing removed")
        }
    }
}
