import ArgumentParser
import DbgboxKit
import Foundation

/// `dbgbox down`: stops the tunnel and removes the container, pinned key, Host block, known_hosts
/// entries of the port, the log and the record.
struct Down: DbgboxCommand {
    static let configuration = CommandConfiguration(
        abstract: "Stop a session's tunnel and remove its container and everything `up` wrote.",
        discussion: """
        Closes the session's ssh master (ssh -O exit) and its control socket, stops the tunnel (only \
        when it is still the recorded process), removes the container on the \
        node (reached with the login and node `up` recorded, and its ssh flags unless given here), \
        the pinned host key, the Host block dbgbox-NAME, the [127.0.0.1]:PORT and [localhost]:PORT \
        entries of ~/.ssh/known_hosts, and the Include line of ~/.ssh/config once no block is left. \
        Works when the tunnel died or the container is gone. NAME may be left out when one session is up.
        Example: dbgbox down alice_01234
        """)

    @Argument(help: "The session (see dbgbox status).")
    var name: String?

    @Flag(help: "Every session.")
    var all = false

    @OptionGroup(title: "The cluster (default: as recorded by up)") var chain: ChainOptions

    func validate() throws {
        if name != nil && all { throw ValidationError("give a session name or --all, not both") }
    }

    func run(_ context: CommandContext) throws {
        let home = try context.home()
        let manager = try context.sessionManager(home: home)
        let records = try manager.select(name: name, all: all)
        if records.isEmpty { context.say("no sessions"); return }
        var failures: [Error] = []
        for record in records {
            let started = context.clock.now()
            var opened: NodeEnvironment?
            defer { opened?.close() }
            do {
                let tunnels = context.tunnels(DetachedTunnels.Target(login: record.login ?? "", node: record.node ?? "", flags: []),
                                              nil, context)
                let report = try manager.down(record, node: {
                    let node = try context.node(try chain(for: record, manager: manager, context: context).request())
                    opened = node
                    return NodeSessionOperations(context: context, node: node, home: home)
                }, tunnels: tunnels)
                if let instruction = report.instruction { context.warn(instruction) }
                let tunnel = report.stoppedTunnel ? "tunnel stopped" : "tunnel was \(SessionStatusRow.describe(report.tunnel))"
                context.say("down \(record.name): \(tunnel), container removed, Host block \(record.alias) removed (\(String(format: "%.1f", context.clock.now().timeIntervalSince(started))) s)")
            } catch {
                context.error("\(error)")
                failures.append(error)
            }
        }
        if !failures.isEmpty { throw ExitCode(1) }
    }

    /// The chain: the options given here, else the recorded ones, with the recorded login and node
    /// (a session of a local container has none).
    func chain(for record: SessionRecord, manager: SessionManager, context: CommandContext) throws -> ChainOptions {
        guard let login = record.login, let node = record.node else { return try ChainOptions.parse([]) }
        var flags = chain.flags(context)
        if flags.isEmpty, let recorded = try SessionOptions.recorded(record.name, manager: manager) { flags = recorded }
        return try ChainOptions.parse(["--login", chain.login ?? login, "--node", chain.node ?? node] + flags)
    }
}
