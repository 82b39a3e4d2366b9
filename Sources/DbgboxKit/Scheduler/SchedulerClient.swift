import Foundation

/// Talks to a scheduler through its commands, run on the login host by a `ProcessRunner` (over the
/// libssh2 chain in dbgbox; locally in tests). Every argv is an array; the job script goes on stdin.
public protocol SchedulerClient: Sendable {
    var kind: SchedulerKind { get }
    var runner: ProcessRunner { get }
    /// The job's state now.
    func state(_ id: String) throws -> JobStatus
    /// Cancels the job (its script then removes the container).
    func cancel(_ id: String) throws
    /// Of `ids`, those whose jobs still exist (pending or running). Throws when the scheduler cannot
    /// say: a reaper must then remove nothing.
    func liveJobs(among ids: Set<String>) throws -> Set<String>
}

extension SchedulerClient {
    /// Runs the submit argv with `script` on stdin; returns the job id, or the refusal in one line.
    public func submit(script: String, arguments: [String]) throws -> String {
        let result = try call(arguments, input: Data(script.utf8))
        guard result.succeeded else {
            throw SchedulerError.refused(program: kind.submitProgram, why: kind.refusal(result.stderrText + "\n" + result.stdoutText))
        }
        return try kind.parseSubmit(result.stdoutText)
    }

    /// Submits a rendered request: `sbatch --parsable …` / `qsub …` with the script on stdin.
    public func submit(_ request: JobRequest, script: String) throws -> String {
        try submit(script: script, arguments: request.submitArguments)
    }

    /// The job's report lines from its output file in the home directory (where the login host's
    /// commands run); nil while the file does not exist yet.
    public func readReport(_ id: String, file: String? = nil) throws -> JobReport? {
        let file = file ?? kind.outputFile(jobID: id)
        let result = try runner.run(["head", "-c", "65536", "--", file])
        guard result.succeeded else { return nil }
        return JobReport.parse(result.stdoutText)
    }

    /// Removes the job's output file (`down` leaves nothing in the home directory).
    public func removeOutput(_ id: String, file: String? = nil) throws {
        _ = try runner.run(["rm", "-f", "--", file ?? kind.outputFile(jobID: id)])
    }

    /// Waits until the job runs and its container reported ready, calling `progress` with each
    /// look (and the seconds waited so far) every `interval` seconds. `interrupted` is asked between
    /// looks: when it says so, the job is cancelled and `Interrupted` thrown. A job that ends first,
    /// or a report with an error, throws one line; so does a running job silent for `reportTimeout`.
    /// `file`: the report's file when it is not the job's own output file (a step in a job the user
    /// holds); `cancelsJob` false: the job is the user's and is never cancelled here.
    public func waitUntilReady(_ id: String, file: String? = nil, cancelsJob: Bool = true,
                               interval: TimeInterval = 1, reportTimeout: TimeInterval = 120,
                               clock: WallClock = SystemWallClock(),
                               sleep: (TimeInterval) -> Void = { Thread.sleep(forTimeInterval: $0) },
                               interrupted: () -> Int32? = { nil },
                               progress: (JobStatus, Int) -> Void = { _, _ in }) throws -> (JobStatus, JobReport) {
        let start = clock.now()
        var runningSince: Date?
        while true {
            if let signal = interrupted() {
                if cancelsJob { try? cancel(id) }
                throw Interrupted(signal: signal)
            }
            let status = try state(id)
            let waited = Int(clock.now().timeIntervalSince(start))
            progress(status, waited)
            switch status.phase {
            case .pending:
                break
            case .running, .ended:
                let report = try readReport(id, file: file)
                if let error = report?.error {
                    if cancelsJob { try? cancel(id) }
                    throw SchedulerError.jobEnded(id: id, state: status.state, why: error)
                }
                if let report, report.isReady, status.phase == .running { return (status, report) }
                if status.phase == .ended {
                    throw SchedulerError.jobEnded(id: id, state: status.state, why: status.reason)
                }
                if runningSince == nil { runningSince = clock.now() }
                if let since = runningSince, clock.now().timeIntervalSince(since) >= reportTimeout {
                    if cancelsJob { try? cancel(id) }
                    throw SchedulerError.noReport(id: id, seconds: Int(reportTimeout))
                }
            }
            sleep(interval)
        }
    }

    /// Runs `argv` on the login host, turning "not found" into one line.
    func call(_ argv: [String], input: Data? = nil) throws -> ProcessResult {
        let result: ProcessResult
        do { result = try runner.run(argv, input: input) } catch let error as ProcessError {
            if case .notFound = error { throw SchedulerError.notFound(program: argv[0]) }
            throw error
        } catch let error as RemoteError {
            if case .notFound = error { throw SchedulerError.notFound(program: argv[0]) }
            throw error
        }
        // A login shell's "command not found".
        if result.exitCode == 127 { throw SchedulerError.notFound(program: argv[0]) }
        return result
    }
}

/// Slurm: sbatch, squeue, scontrol, sacct, scancel.
public struct SlurmClient: SchedulerClient {
    public let kind = SchedulerKind.slurm
    public let runner: ProcessRunner

    public init(runner: ProcessRunner) { self.runner = runner }

    /// squeue first (pending/running, and ended jobs it still remembers), then scontrol, then sacct;
    /// a job none of them knows has ended.
    public func state(_ id: String) throws -> JobStatus {
        let squeue = try call(["squeue", "-h", "-t", "all", "-j", id, "-o", "%T|%r|%N|%M|%L"])
        if squeue.succeeded, let status = SlurmOutput.parseSqueue(squeue.stdoutText) { return status }
        if !squeue.succeeded && !isInvalidJob(squeue.stderrText) {
            throw SchedulerError.failed(program: "squeue", exit: squeue.exitCode, why: SlurmOutput.refusal(squeue.stderrText))
        }
        let scontrol = try call(["scontrol", "show", "job", id])
        if scontrol.succeeded, let status = SlurmOutput.parseScontrolState(scontrol.stdoutText) { return status }
        if let sacct = try? call(["sacct", "-n", "-X", "-P", "-j", id, "-o", "State,Reason,NodeList,Elapsed"]),
           sacct.succeeded, let status = SlurmOutput.parseSacct(sacct.stdoutText) {
            return status
        }
        return .gone
    }

    func isInvalidJob(_ stderr: String) -> Bool { stderr.contains("Invalid job id") }

    public func cancel(_ id: String) throws {
        let result = try call(["scancel", id])
        guard result.succeeded || isInvalidJob(result.stderrText) else {
            throw SchedulerError.failed(program: "scancel", exit: result.exitCode, why: SlurmOutput.refusal(result.stderrText))
        }
    }

    /// The user's jobs squeue lists as not ended (COMPLETING counts as ended: its script is done or killed).
    public func liveJobs(among ids: Set<String>) throws -> Set<String> {
        let result = try call(["squeue", "-h", "--me", "-t", "PENDING,RUNNING,CONFIGURING,SUSPENDED,REQUEUED,RESIZING,SIGNALING,STAGE_OUT", "-o", "%i"])
        guard result.succeeded else { throw SchedulerError.liveJobsUnknown(why: "squeue: " + SlurmOutput.refusal(result.stderrText)) }
        return SlurmOutput.parseJobIDs(result.stdoutText).intersection(ids)
    }

    /// The job's GPU indices per node, as `scontrol show job -d` reports them.
    public func gpuIndices(_ id: String) throws -> [String: [Int]] {
        let result = try call(["scontrol", "show", "job", "-d", id])
        guard result.succeeded else {
            throw SchedulerError.failed(program: "scontrol", exit: result.exitCode, why: SlurmOutput.refusal(result.stderrText))
        }
        return try SlurmOutput.parseJobGPUs(result.stdoutText)
    }

    /// Where to connect for a node name (its NodeAddr), or the name itself.
    public func nodeAddress(_ node: String) throws -> String {
        let result = try call(["scontrol", "show", "node", node])
        guard result.succeeded else { return node }
        return SlurmOutput.parseNodeAddress(result.stdoutText) ?? node
    }
}

/// PBS Pro / OpenPBS and Torque: qsub, qstat, qdel.
public struct PBSClient: SchedulerClient {
    public let kind = SchedulerKind.pbs
    public let runner: ProcessRunner

    public init(runner: ProcessRunner) { self.runner = runner }

    /// `qstat -f ID`, then `qstat -x -f ID` (PBS Pro keeps finished jobs in history); unknown: ended.
    public func state(_ id: String) throws -> JobStatus {
        for argv in [["qstat", "-f", id], ["qstat", "-x", "-f", id]] {
            let result = try call(argv)
            if result.succeeded, let status = PBSOutput.parseStatus(result.stdoutText) { return status }
            if !result.succeeded && !PBSOutput.isUnknownJob(result.stderrText) && argv.count == 3 {
                throw SchedulerError.failed(program: "qstat", exit: result.exitCode, why: PBSOutput.refusal(result.stderrText))
            }
        }
        return .gone
    }

    public func cancel(_ id: String) throws {
        let result = try call(["qdel", id])
        guard result.succeeded || PBSOutput.isUnknownJob(result.stderrText) else {
            throw SchedulerError.failed(program: "qdel", exit: result.exitCode, why: PBSOutput.refusal(result.stderrText))
        }
    }

    /// Each id asked with `qstat -f ID` (default listings cut long ids).
    public func liveJobs(among ids: Set<String>) throws -> Set<String> {
        var live = Set<String>()
        for id in ids {
            let result = try call(["qstat", "-f", id])
            if result.succeeded {
                if PBSOutput.parseStatus(result.stdoutText)?.phase != .ended { live.insert(id) }
            } else if !PBSOutput.isUnknownJob(result.stderrText) {
                throw SchedulerError.liveJobsUnknown(why: "qstat: " + PBSOutput.refusal(result.stderrText))
            }
        }
        return live
    }
}

/// A scheduler client of the given kind.
public func schedulerClient(_ kind: SchedulerKind, runner: ProcessRunner) -> SchedulerClient {
    switch kind {
    case .slurm: return SlurmClient(runner: runner)
    case .pbs: return PBSClient(runner: runner)
    }
}
