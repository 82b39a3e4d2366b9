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
        Works when the tunnel died or the container is gone. NAME may be left out when one session is up. \
        A scheduler session (up --scheduler): its job is cancelled (scancel/qdel), its container awaited \
        (at most 60 s, then removed) and its output file in the cluster home removed; a session attached \
        with up --job leaves the job running.
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
                    let recorded = try ChainOptions.recorded(record, given: chain, manager: manager, context: context)
                    // A scheduler session's job is cancelled, its container awaited, its output removed.
                    if let job = record.job, let recorded {
                        let (operations, login) = try SchedulerSessions(context: context, chain: recorded).downOperations(record, job: job)
                        opened = login
                        return operations
                    }
                    let node = try context.node(recorded)
                    opened = node
                    return NodeSessionOperations(context: context, node: node, home: home)
                }, tunnels: tunnels)
                if let instruction = report.instruction { context.warn(instruction) }
                let tunnel = report.stoppedTunnel ? "tunnel stopped" : "tunnel was \(SessionStatusRow.describe(report.tunnel))"
                let job = record.job.map { $0.attached ? ", step in job \($0.id) ended" : ", job \($0.id) cancelled" } ?? ""
                context.say("down \(record.name): \(tunnel)\(job), container removed, Host block \(record.alias) removed (\(String(format: "%.1f", context.clock.now().timeIntervalSince(started))) s)")
            } catch {
                context.error("\(error)")
                failures.append(error)
            }
        }
        if !failures.isEmpty { throw ExitCode(1) }
    }
}
