import ArgumentParser
import DbgboxKit
import Foundation

struct Cleanup: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Remove containers and the known_hosts entries they left.",
        discussion: """
        With --container, that container; with only --port, your containers on that port; with neither, \
        all your containers. Also removes their pinned host keys and every [127.0.0.1]:PORT and \
        [localhost]:PORT entry in your known_hosts (a backup stays as known_hosts.old).
        Example: dbgbox cleanup --container alice_01234 --dry-run
        """)

    @Option(help: "Only this container.")
    var container: String?

    @Option(help: "The port whose known_hosts entries to remove (default: the container's).")
    var port: String?

    @Option(name: .customLong("known-hosts"), help: "The known_hosts file to clean (default: ~/.ssh/known_hosts).")
    var knownHosts: String?

    @Flag(name: .customLong("dry-run"), help: "Show what would be removed, change nothing.")
    var dryRun = false

    @OptionGroup var userOptions: UserOptions

    func run() throws {
        let user = try userOptions.identity()
        var portNumber: UInt16?
        if let port {
            guard case .fixed(let p) = try PortRequest.parse(port) else {
                throw DbgboxError("--port auto means nothing to cleanup: give the port number")
            }
            portNumber = p
        }
        let home = ContainerWiring.dotHome(user, options: userOptions)
        let report = try ContainerWiring.service().cleanup(
            user: user, container: container, port: portNumber,
            knownHostsPath: knownHosts.map(ContainerWiring.absolute) ?? "\(home)/.ssh/known_hosts",
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
