import Foundation

/// Where a job is in its life, as dbgbox needs to know it.
public enum JobPhase: String, Sendable, Equatable {
    case pending
    case running
    case ended
}

/// One look at a job: its phase, the scheduler's own state word and reason, where and how long.
public struct JobStatus: Sendable, Equatable {
    public var phase: JobPhase
    /// The scheduler's state (`PENDING`, `RUNNING`, `CANCELLED`, PBS `Q`, `R`, `F`…).
    public var state: String
    /// Why it waits or ended (`Resources`, `PartitionDown`, `TimeLimit`); nil when none is given.
    public var reason: String?
    public var node: String?
    /// As the scheduler prints it (`0:42`, `1-02:03:04`).
    public var elapsed: String?
    public var timeLeft: String?

    public init(phase: JobPhase, state: String, reason: String? = nil, node: String? = nil,
                elapsed: String? = nil, timeLeft: String? = nil) {
        self.phase = phase
        self.state = state
        self.reason = reason
        self.node = node
        self.elapsed = elapsed
        self.timeLeft = timeLeft
    }

    /// A job the scheduler no longer knows (past its memory, no accounting).
    public static let gone = JobStatus(phase: .ended, state: "ENDED", reason: "no longer known to the scheduler")

    /// The live line while waiting: `job 4711 PENDING (Resources), 0:42`.
    public func progressLine(jobID: String, waited seconds: Int) -> String {
        let waited = seconds >= 3600
            ? String(format: "%d:%02d:%02d", seconds / 3600, seconds % 3600 / 60, seconds % 60)
            : String(format: "%d:%02d", seconds / 60, seconds % 60)
        let why = reason.map { " (\($0))" } ?? ""
        return "job \(jobID) \(state)\(why), \(waited)"
    }

    /// Slurm's job state words, by phase.
    static func slurmPhase(_ state: String) -> JobPhase {
        // "CANCELLED by 1000" in sacct.
        let word = state.split(separator: " ").first.map(String.init)?.uppercased() ?? ""
        switch word {
        case "PENDING", "CONFIGURING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESV_DEL_HOLD", "SUSPENDED", "STOPPED", "RESIZING", "SIGNALING", "STAGE_OUT", "POWER_UP_NODE":
            return word == "SUSPENDED" || word == "STOPPED" || word == "SIGNALING" || word == "STAGE_OUT" ? .running : .pending
        case "RUNNING":
            return .running
        default:
            // COMPLETING, COMPLETED, CANCELLED, FAILED, TIMEOUT, NODE_FAIL, PREEMPTED, BOOT_FAIL, DEADLINE, OUT_OF_MEMORY, REVOKED, SPECIAL_EXIT
            return .ended
        }
    }
}
