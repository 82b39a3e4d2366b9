import ArgumentParser
import DbgboxKit
import Foundation
import SSH
#if canImport(Glibc)
import Glibc
#endif

/// `dbgbox status`: the sessions `up` recorded, and whether this dbgbox's libssh2 fast path is on.
struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List sessions: container, node, ports, whether the tunnel runs, TTL left; and the libssh2 fast path.")

    @Flag(help: "Print a JSON array.")
    var json = false

    struct Row: Encodable {
        var name: String
        var container: String
        var login: String?
        var node: String?
        var local_port: Int
        var node_port: Int
        var tunnel: String
        var tunnel_pid: Int32?
        var alive: Bool
        var ttl_left_seconds: Int?
        var expires: String?
        var log: String
        /// This dbgbox's libssh2 fast path, "on (…)" or "off: why; …" (the same for every row; the
        /// text form prints it once, after the table).
        var fast_path: String
    }

    func run() throws {
        guard let me = UserIdentity.lookup(uid: getuid()) else {
            throw DbgboxError("uid \(getuid()) has no passwd entry: dbgbox needs a user name and home directory")
        }
        let manager = SessionWiring.manager(home: SessionWiring.home(me))
        let listing = try manager.store.list()
        let now = Date()
        let fastPath = FastPath.status
        let rows = listing.records.map { r -> Row in
            let state = manager.liveness.state(of: r)
            return Row(name: r.name, container: r.container, login: r.login, node: r.node, local_port: r.localPort,
                       node_port: r.targetPort, tunnel: Status.describe(state), tunnel_pid: r.tunnelPID,
                       alive: state == .alive, ttl_left_seconds: r.timeLeft(at: now).map { max(0, Int($0.rounded())) },
                       expires: r.expires.map(ContainerSpec.iso8601), log: r.logFile, fast_path: fastPath.summary)
        }
        for file in listing.unreadable { ContainerWiring.warn("\(file) is not a session record") }
        if json {
            try ContainerWiring.printJSON(rows)
            return
        }
        if rows.isEmpty {
            print("no sessions")
        } else {
            print("NAME\tCONTAINER\tNODE\tPORTS\tTUNNEL\tTTL LEFT")
            for row in rows {
                let ttl = row.ttl_left_seconds.map { $0 == 0 ? "expired" : TTL.format(seconds: $0) } ?? "none"
                print("\(row.name)\t\(row.container)\t\(row.node ?? "local")\t127.0.0.1:\(row.local_port) → \(row.node_port)\t\(row.tunnel)\t\(ttl)")
            }
        }
        print(DbgboxVersion.fastPathLine(fastPath))
    }

    static func describe(_ state: TunnelState) -> String {
        switch state {
        case .alive: return "alive"
        case .notRecorded: return "none (foreground)"
        case .gone, .pidReused, .notDbgbox: return "dead"
        }
    }
}
