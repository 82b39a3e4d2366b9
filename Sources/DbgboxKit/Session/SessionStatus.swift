import Foundation

/// One row of `dbgbox status` (the JSON keys are `status --json`'s, kept as they were; fields are
/// only ever added). Built from a session record, its tunnel's state and its container's state.
public struct SessionStatusRow: Encodable, Sendable, Equatable {
    public var name: String
    public var container: String
    public var login: String?
    public var node: String?
    public var local_port: Int
    public var node_port: Int
    public var tunnel: String
    public var tunnel_pid: Int32?
    public var alive: Bool
    public var ttl_left_seconds: Int?
    public var expires: String?
    public var log: String
    /// What the container answered through the tunnel (`ContainerState.field`): "answering" (with
    /// the pinned host key), "host key changed", "not answering" or "unknown" (not probed).
    public var container_state: String
    /// What happened and what to run, when the state is not "answering".
    public var container_advice: String?
    /// This dbgbox's libssh2 fast path, "on (…)" or "off: why; …" (the same for every row; the
    /// text form prints it once, after the table).
    public var fast_path: String
    /// The session's forwarded ports (`PortForward`: direction, port in the container, local port).
    public var forwards: [PortForward]

    /// The table column of the container's state (`ContainerState.column`).
    public var stateColumn: String

    enum CodingKeys: String, CodingKey {
        case name, container, login, node, local_port, node_port, tunnel, tunnel_pid, alive, ttl_left_seconds, expires,
             log, container_state, container_advice, fast_path, forwards
    }

    public init(record r: SessionRecord, tunnel: TunnelState, container: ContainerState, now: Date, fastPath: String) {
        name = r.name
        self.container = r.container
        login = r.login
        node = r.node
        local_port = r.localPort
        node_port = r.targetPort
        self.tunnel = Self.describe(tunnel)
        tunnel_pid = r.tunnelPID
        alive = tunnel == .alive
        ttl_left_seconds = r.timeLeft(at: now).map { max(0, Int($0.rounded())) }
        expires = r.expires.map(ContainerSpec.iso8601)
        log = r.logFile
        container_state = container.field
        container_advice = container.advice(session: r.name, logFile: r.logFile)
        fast_path = fastPath
        forwards = r.forwards ?? []
        stateColumn = container.column
    }

    /// The TUNNEL column: "alive", "none (foreground)" or "dead".
    public static func describe(_ state: TunnelState) -> String {
        switch state {
        case .alive: return "alive"
        case .notRecorded: return "none (foreground)"
        case .gone, .pidReused, .notDbgbox: return "dead"
        }
    }

    /// The table `status` prints (without the fast path line): a header, one tab-separated line per
    /// session, then the advice of each session whose container is not answering with its key.
    public static func table(_ rows: [SessionStatusRow]) -> [String] {
        guard !rows.isEmpty else { return ["no sessions"] }
        var lines = ["NAME\tCONTAINER\tNODE\tPORTS\tTUNNEL\tSTATE\tTTL LEFT"]
        for row in rows {
            let ttl = row.ttl_left_seconds.map { $0 == 0 ? "expired" : TTL.format(seconds: $0) } ?? "none"
            lines.append("\(row.name)\t\(row.container)\t\(row.node ?? "local")\t127.0.0.1:\(row.local_port) → \(row.node_port)\t\(row.tunnel)\t\(row.stateColumn)\t\(ttl)")
        }
        for row in rows where !row.forwards.isEmpty {
            lines.append("\(row.name) forwards: " + row.forwards.map(\.summary).joined(separator: ", "))
        }
        return lines + rows.compactMap(\.container_advice)
    }
}
