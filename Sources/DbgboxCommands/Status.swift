import ArgumentParser
import DbgboxKit
import SSH

/// `dbgbox status`: the sessions `up` recorded, whether each container answers through its tunnel
/// with its pinned host key (`ContainerCheck`: an SSH handshake through the session's own tunnel,
/// at most 5 s, all sessions at once), and whether this dbgbox's libssh2 fast path is on.
struct Status: DbgboxCommand {
    static let configuration = CommandConfiguration(
        abstract: "List sessions: container, node, ports, whether the tunnel runs, whether the container answers with its pinned host key, TTL left; and the libssh2 fast path.",
        discussion: """
        For a scheduler session (up --scheduler, up --job) also its job: id, state, node and time left \
        (asked on the login host); a job that ended on its own shows as ended (dbgbox down removes the \
        rest). On the node of an ended job, your containers whose job no longer exists are removed.
        """)

    @Flag(help: "Print a JSON array.")
    var json = false

    func run(_ context: CommandContext) throws {
        let manager = try context.sessionManager(home: try context.home())
        let listing = try manager.store.list()
        let now = context.clock.now()
        let fastPath = FastPath.status
        let containers = ContainerCheck(liveness: manager.liveness, pinnedPath: manager.pinnedPath).states(of: listing.records)
        // Each scheduler session's job state; the reaper on the nodes of ended jobs.
        let looks = SchedulerSessions.looks(listing.records, context: context) { record in
            try ChainOptions.recorded(record, manager: manager, context: context)
        }
        let rows = zip(listing.records, containers).map { record, container in
            var row = SessionStatusRow(record: record, tunnel: manager.liveness.state(of: record), container: container, now: now,
                                       fastPath: fastPath.summary)
            if let job = record.job { row.setJob(job, look: looks[record.name]) }
            return row
        }
        for file in listing.unreadable { context.warn("\(file) is not a session record") }
        if json {
            try context.printJSON(rows)
            return
        }
        for line in SessionStatusRow.table(rows) { context.say(line) }
        context.say(DbgboxVersion.fastPathLine(fastPath))
    }
}
