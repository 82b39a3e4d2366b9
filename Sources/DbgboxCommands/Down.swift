import ArgumentParser
import DbgboxKit
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// `dbgbox down`: stops the tunnel and removes the container, pinned key, Host block, known_hosts
/// entries of the port, the log and the record.
struct Down: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Stop a session's tunnel and remove its container and everything `up` wrote.",
        discussion: """
        Stops the tunnel (only when it is still the recorded process), removes the container on the \
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

    @OptionGroup(title: "The cluster (default: as recorded by up)") var remote: RemoteOptions

    func validate() throws {
        if name != nil && all { throw ValidationError("give a session name or --all, not both") }
    }

    func run() throws {
        guard let me = UserIdentity.lookup(uid: getuid()) else {
            throw DbgboxError("uid \(getuid()) has no passwd entry: dbgbox needs a user name and home directory")
        }
        let manager = SessionWiring.manager(home: SessionWiring.home(me))
        let records = try manager.select(name: name, all: all)
        if records.isEmpty { print("no sessions"); return }
        var failures: [Error] = []
        for record in records {
            let started = Date()
            var opened: NodeEnvironment?
            defer { opened?.close() }
            do {
                let report = try manager.down(record, node: {
                    // Issue 14: a scheduler session's job is cancelled, its container awaited, its output removed.
                    if let job = record.job {
                        return try SchedulerWiring.downOperations(record, job: job, options: options(for: record, manager: manager))
                    }
                    let (runner, node) = try options(for: record, manager: manager).environment()
                    opened = node
                    return NodeOperations(runner: runner, node: node, home: SessionWiring.home(me))
                }, tunnels: DetachedTunnels(login: record.login ?? "", node: record.node ?? "", flags: []))
                if let instruction = report.instruction { ContainerWiring.warn(instruction) }
                let tunnel = report.stoppedTunnel ? "tunnel stopped" : "tunnel was \(Status.describe(report.tunnel))"
                let jobDone = record.job.map { $0.attached ? ", step in job \($0.id) ended" : ", job \($0.id) cancelled" } ?? ""  // issue 14
                print("down \(record.name): \(tunnel)\(jobDone), container removed, Host block \(record.alias) removed (\(String(format: "%.1f", Date().timeIntervalSince(started))) s)")
            } catch {
                FileHandle.standardError.write(Data("dbgbox: error: \(OneLine.message("\(error)"))\n".utf8))
                failures.append(error)
            }
        }
        if !failures.isEmpty { throw ExitCode(1) }
    }

    /// The remote options: the ones given here, else the recorded ones, with the recorded login and node.
    func options(for record: SessionRecord, manager: SessionManager) throws -> RemoteOptions {
        guard let login = record.login, let node = record.node else {
            return try RemoteOptions.parse([])
        }
        var flags = SessionWiring.remoteFlags(remote)
        let optionsPath = manager.optionsPath(record.name)
        if flags.isEmpty, manager.fs.exists(optionsPath) {
            let data = try manager.fs.read(optionsPath, as: .sessionRecord)
            if let stored = try? JSONDecoder().decode(SessionOptions.self, from: data) { flags = stored.flags }
        }
        return try RemoteOptions.parse(["--login", remote.login ?? login, "--node", remote.node ?? node] + flags)
    }
}
