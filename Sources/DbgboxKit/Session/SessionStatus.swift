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
    /// The session's scheduler job (`up --scheduler`, `up --job`); nil fields for other sessions.
    public var job_id: String?
    public var scheduler: String?
    /// "pending", "running", "ended" or "unknown" (the scheduler could not be asked: `job_error`).
    public var job_state: String?
    /// The scheduler's own state word (`RUNNING`, `CANCELLED`, `TIMEOUT`…) and reason.
    public var job_scheduler_state: String?
    public var job_reason: String?
    /// The scheduler's node name.
    public var job_node: String?
    /// As the scheduler prints it (`59:12`, `1-02:00:00`).
    public var job_time_left: String?
    public var job_error: String?
    /// Containers of ended jobs the reaper removed from the job's node during this `status`.
    public var reaped: [String]?
    /// The session's forwarded ports (`PortForward`: direction, port in the container, local port).
    public var forwards: [PortForward]

    /// The table column of the container's state (`ContainerState.column`).
    public var stateColumn: String

    enum CodingKeys: String, CodingKey {
        case name, container, login, node, local_port, node_port, tunnel, tunnel_pid, alive, ttl_left_seconds, expires,
             log, container_state, container_advice, fast_path, job_id, scheduler, job_state, job_scheduler_state,
             job_reason, job_node, job_time_left, job_error, reaped, forwards
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

    /// Adds the job's fields from a look at the scheduler (nil: not asked).
    public mutating func setJob(_ job: SessionJob, look: SchedulerSessionStatus.Look?) {
        job_id = job.id
        scheduler = job.scheduler
        job_node = job.nodeName
        if let status = look?.status {
            job_state = status.phase.rawValue
            job_scheduler_state = status.state
            job_reason = status.reason
            job_time_left = status.phase == .ended ? nil : status.timeLeft
            if let node = status.node { job_node = node }
        } else {
            job_state = "unknown"
            job_error = look?.error ?? "not asked"
        }
        if let reaped = look?.reaped, !reaped.isEmpty { self.reaped = reaped }
    }

    /// The JOB column: `4711 running, 59:12 left`, `4711 ended (CANCELLED)`, `-` without a job.
    public var jobColumn: String {
        guard let id = job_id else { return "-" }
        switch job_state {
        case "ended": return "\(id) ended (\(job_scheduler_state ?? "?"))"
        case "unknown": return "\(id) unknown"
        default:
            let left = job_time_left.map { ", \($0) left" } ?? ""
            return "\(id) \(job_state ?? "?")\(left)"
        }
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
        // The JOB column only when a session has a job (the table stays as it was otherwise).
        let jobs = rows.contains { $0.job_id != nil }
        var lines = ["NAME\tCONTAINER\tNODE\tPORTS\tTUNNEL\tSTATE\tTTL LEFT" + (jobs ? "\tJOB" : "")]
        for row in rows {
            let ttl = row.ttl_left_seconds.map { $0 == 0 ? "expired" : TTL.format(seconds: $0) } ?? "none"
            lines.append("\(row.name)\t\(row.container)\t\(row.node ?? "local")\t127.0.0.1:\(row.local_port) → \(row.node_port)\t\(row.tunnel)\t\(row.stateColumn)\t\(ttl)" + (jobs ? "\t\(row.jobColumn)" : ""))
        }
        for row in rows where !row.forwards.isEmpty {
            lines.append("\(row.name) forwards: " + row.forwards.map(\.summary).joined(separator: ", "))
        }
        var notes: [String] = []
        for row in rows {
            if let reaped = row.reaped {
                notes.append("removed \(reaped.joined(separator: ", ")) on \(row.node ?? "the node"): the job no longer exists")
            }
            if row.job_state == "ended" {
                notes.append("session \(row.name): job \(row.job_id ?? "?") ended (\(row.job_scheduler_state ?? "?")\(row.job_reason.map { ", \($0)" } ?? "")): run `dbgbox down \(row.name)` to remove the rest")
            } else if let error = row.job_error, row.job_state == "unknown" {
                notes.append("session \(row.name): cannot ask the scheduler about job \(row.job_id ?? "?"): \(error)")
            }
        }
        return lines + rows.compactMap(\.container_advice) + notes
    }
}
