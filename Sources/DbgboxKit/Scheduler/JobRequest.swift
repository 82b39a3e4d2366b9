import Foundation

/// The batch systems dbgbox submits to.
public enum SchedulerKind: String, Sendable, Equatable, CaseIterable {
    case slurm
    case pbs

    /// Parses `--scheduler`.
    public static func parse(_ text: String) throws -> SchedulerKind {
        guard let kind = SchedulerKind(rawValue: text.lowercased()) else {
            throw SchedulerError.unknownScheduler(text)
        }
        return kind
    }

    /// The program that takes the job script on stdin.
    public var submitProgram: String { self == .slurm ? "sbatch" : "qsub" }
    /// The program that cancels a job.
    public var cancelProgram: String { self == .slurm ? "scancel" : "qdel" }

    /// The template the job script is rendered from (in templates/).
    public var templateFile: String { self == .slurm ? "slurm-job.sh.mustache" : "pbs-job.sh.mustache" }

    /// The submit command's output → the job id.
    public func parseSubmit(_ text: String) throws -> String {
        self == .slurm ? try SlurmOutput.parseSubmit(text) : try PBSOutput.parseSubmit(text)
    }

    /// The scheduler's refusal as one line.
    public func refusal(_ text: String) -> String {
        self == .slurm ? SlurmOutput.refusal(text) : PBSOutput.refusal(text)
    }

    /// The job's output file, relative to the home directory (the only file a job leaves there).
    public func outputFile(jobID: String) -> String { "dbgbox-job-\(jobID).out" }
}

/// A job's time limit, in seconds.
public struct TimeLimit: Sendable, Equatable {
    public var seconds: Int

    public init(seconds: Int) { self.seconds = seconds }

    /// A year: anything longer is a typo.
    public static let maximumSeconds = TTL.maximumSeconds

    /// Slurm's forms `MM`, `MM:SS`, `HH:MM:SS`, `D-HH`, `D-HH:MM`, `D-HH:MM:SS` (a bare number is
    /// minutes, as for sbatch), or dbgbox's `90m`, `2h`, `1d`, `30s`. Zero is refused: a job needs time.
    public static func parse(_ text: String) throws -> TimeLimit {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        guard !trimmed.isEmpty, trimmed.count <= 20 else { throw SchedulerError.malformedTime(text) }
        let seconds: Int
        if let last = trimmed.last, "smhdSMHD".contains(last) {
            do { seconds = try TTL.parse(trimmed).seconds } catch TTLError.tooLong {
                throw SchedulerError.timeTooLong(text)
            } catch { throw SchedulerError.malformedTime(text) }
        } else {
            guard let s = slurmSeconds(trimmed) else { throw SchedulerError.malformedTime(text) }
            seconds = s
        }
        guard seconds > 0 else { throw SchedulerError.malformedTime(text) }
        guard seconds <= maximumSeconds else { throw SchedulerError.timeTooLong(text) }
        return TimeLimit(seconds: seconds)
    }

    static func slurmSeconds(_ text: String) -> Int? {
        func number(_ part: Substring, max: Int?) -> Int? {
            guard !part.isEmpty, part.count <= 6, part.allSatisfy({ $0.isASCII && $0.isNumber }), let n = Int(part) else { return nil }
            if let max, n > max { return nil }
            return n
        }
        let dayParts = text.split(separator: "-", omittingEmptySubsequences: false)
        guard dayParts.count <= 2 else { return nil }
        if dayParts.count == 2 {
            // D-HH, D-HH:MM, D-HH:MM:SS
            guard let days = number(dayParts[0], max: nil) else { return nil }
            let clock = dayParts[1].split(separator: ":", omittingEmptySubsequences: false)
            guard (1...3).contains(clock.count), let h = number(clock[0], max: 23) else { return nil }
            let m = clock.count > 1 ? number(clock[1], max: 59) : 0
            let s = clock.count > 2 ? number(clock[2], max: 59) : 0
            guard let m, let s else { return nil }
            return days * 86400 + h * 3600 + m * 60 + s
        }
        let clock = text.split(separator: ":", omittingEmptySubsequences: false)
        switch clock.count {
        case 1: return number(clock[0], max: nil).map { $0 * 60 }
        case 2:
            guard let m = number(clock[0], max: nil), let s = number(clock[1], max: 59) else { return nil }
            return m * 60 + s
        case 3:
            guard let h = number(clock[0], max: nil), let m = number(clock[1], max: 59), let s = number(clock[2], max: 59) else { return nil }
            return h * 3600 + m * 60 + s
        default: return nil
        }
    }

    /// `D-HH:MM:SS` (or `HH:MM:SS` under a day), as sbatch --time takes it.
    public var slurmText: String {
        let d = seconds / 86400, h = seconds % 86400 / 3600, m = seconds % 3600 / 60, s = seconds % 60
        let clock = String(format: "%02d:%02d:%02d", h, m, s)
        return d > 0 ? "\(d)-\(clock)" : clock
    }

    /// `HH:MM:SS` with hours past 24, as PBS walltime takes it.
    public var pbsText: String {
        String(format: "%02d:%02d:%02d", seconds / 3600, seconds % 3600 / 60, seconds % 60)
    }
}

/// Everything one scheduler job of dbgbox needs: what to ask the scheduler for, and the container
/// the job runs on the node it gets.
public struct JobRequest: Sendable, Equatable {
    public var kind: SchedulerKind
    /// GPUs to ask for (Slurm `--gres=gpu:N`, PBS `-l select=1:ngpus=N`).
    public var gpus: Int
    /// The profile's scheduler arguments for its GPU type (`--gres=gpu:v100:1 --partition=v100`).
    public var profileArguments: [String]
    public var time: TimeLimit?
    /// Slurm partition or PBS queue.
    public var partition: String?
    /// `--job-arg` values, verbatim, as argv of sbatch/qsub.
    public var jobArguments: [String]
    /// The container the job runs. Its port and GPUs are picked in the job, on the node.
    public var container: ContainerSpec
    /// Whether the container gets the job's GPUs as devices (`container.gpu.runtime`'s flags).
    /// false: it gets the job's variables only, for a node whose docker has no NVIDIA runtime.
    public var mapsDevices = true

    public init(kind: SchedulerKind, gpus: Int, profileArguments: [String] = [], time: TimeLimit? = nil,
                partition: String? = nil, jobArguments: [String] = [], container: ContainerSpec) {
        self.kind = kind
        self.gpus = gpus
        self.profileArguments = profileArguments
        self.time = time
        self.partition = partition
        self.jobArguments = jobArguments
        self.container = container
    }

    public static let maximumGPUs = 4096

    /// The job's name: the container's, so `squeue` shows which session a job is.
    public var jobName: String { container.name }

    /// Refuses what the scheduler would refuse less clearly, or what could not be passed safely.
    /// Also keeps the container's TTL within the time limit.
    public func validated() throws -> JobRequest {
        guard gpus >= 1 else { throw SchedulerError.noGPUs(gpus) }
        guard gpus <= Self.maximumGPUs else { throw SchedulerError.tooManyGPUs(gpus) }
        if let partition { try Self.validatePartition(partition) }
        try ContainerSpec.validateName(container.name)
        for arg in profileArguments + jobArguments where arg.isEmpty || arg.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7f }) {
            throw SchedulerError.badJobArgument(arg)
        }
        var copy = self
        if let time, copy.container.ttl.seconds == 0 || copy.container.ttl.seconds > time.seconds {
            copy.container.ttl = TTL(seconds: time.seconds)
        }
        return copy
    }

    /// Partition and queue names: letters, digits, `_.-` (and `@server` for PBS).
    public static func validatePartition(_ name: String) throws {
        let ok = !name.isEmpty && name.count <= 128 && !name.hasPrefix("-") && name.unicodeScalars.allSatisfy {
            ("a"..."z").contains($0) || ("A"..."Z").contains($0) || ("0"..."9").contains($0) || "_.-@".unicodeScalars.contains($0)
        }
        guard ok else { throw SchedulerError.badPartition(name) }
    }

    /// The submit command's argv; the job script goes to its stdin.
    public var submitArguments: [String] {
        switch kind {
        case .slurm:
            var args = ["sbatch", "--parsable", "--job-name=\(jobName)"]
            args += Self.withGPUCount(profileArguments, gpus: gpus, kind: .slurm)
            if !profileArguments.contains(where: { $0.hasPrefix("--gres=gpu") || $0.hasPrefix("--gpus") }) {
                args.append("--gres=gpu:\(gpus)")
            }
            if let time { args.append("--time=\(time.slurmText)") }
            if let partition { args.append("--partition=\(partition)") }
            return args + jobArguments
        case .pbs:
            var args = ["qsub", "-N", jobName]
            let profile = Self.withGPUCount(profileArguments, gpus: gpus, kind: .pbs)
            args += profile
            if !profile.contains(where: { $0.contains("ngpus=") }) { args += ["-l", "select=1:ngpus=\(gpus)"] }
            if let time { args += ["-l", "walltime=\(time.pbsText)"] }
            if let partition { args += ["-q", partition] }
            return args + jobArguments
        }
    }

    /// The profile's GPU request with the count set to `gpus`: Slurm `--gres=gpu[:TYPE]:K`,
    /// PBS `ngpus=K` inside a `-l select=` value. Other arguments pass unchanged.
    static func withGPUCount(_ args: [String], gpus: Int, kind: SchedulerKind) -> [String] {
        args.map { arg in
            switch kind {
            case .slurm:
                guard arg.hasPrefix("--gres=gpu") else { return arg }
                var parts = arg.dropFirst("--gres=".count).split(separator: ":", omittingEmptySubsequences: false).map(String.init)
                if let last = parts.last, parts.count > 1, Int(last) != nil { parts[parts.count - 1] = String(gpus) } else { parts.append(String(gpus)) }
                return "--gres=" + parts.joined(separator: ":")
            case .pbs:
                guard arg.contains("ngpus=") else { return arg }
                return arg.split(separator: ":", omittingEmptySubsequences: false).map { part in
                    part.hasPrefix("ngpus=") ? "ngpus=\(gpus)" : String(part)
                }.joined(separator: ":")
            }
        }
    }
}

/// A scheduler refused or failed something; each is one line with what to do.
public enum SchedulerError: UserFacingError, Equatable {
    case unknownScheduler(String)
    case malformedTime(String)
    case timeTooLong(String)
    case noGPUs(Int)
    case tooManyGPUs(Int)
    case badPartition(String)
    case badJobArgument(String)
    case refused(program: String, why: String)
    case unreadable(program: String, output: String)
    case failed(program: String, exit: Int32, why: String)
    case notFound(program: String)
    case jobEnded(id: String, state: String, why: String?)
    case noReport(id: String, seconds: Int)
    case liveJobsUnknown(why: String)

    public var description: String {
        switch self {
        case .unknownScheduler(let text):
            return "--scheduler \(shown(text, limit: 20)) is not known: use slurm or pbs"
        case .malformedTime(let text):
            return "--time \(shown(text, limit: 30)) is not a time limit: use MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS, or 90m, 2h, 1d"
        case .timeTooLong(let text):
            return "--time \(shown(text, limit: 30)) is longer than a year: ask for less"
        case .noGPUs(let n):
            return "--gpus \(n): a scheduler session needs at least one GPU: use --gpus 1 or more"
        case .tooManyGPUs(let n):
            return "--gpus \(n) is more than \(JobRequest.maximumGPUs): ask for the GPUs one node has"
        case .badPartition(let name):
            return "--partition \(shown(name, limit: 40)) is not a partition name (letters, digits, _.-): see sinfo or qstat -Q for the names"
        case .badJobArgument(let arg):
            return "--job-arg \(shown(arg, limit: 60)) is empty or has a control character: pass one scheduler argument per --job-arg"
        case .refused(let program, let why):
            return "\(program) refused the job: \(why)"
        case .unreadable(let program, let output):
            return "cannot read \(program)'s output \(shown(output, limit: 80)): check the scheduler on the login host"
        case .failed(let program, let exit, let why):
            return "\(program) failed (exit \(exit)): \(why.isEmpty ? "no message" : why)"
        case .notFound(let program):
            return "\(program) not found on the login host: run dbgbox on a cluster whose login host has the scheduler's commands, or check the PATH of non-interactive ssh sessions there"
        case .jobEnded(let id, let state, let why):
            return "job \(id) ended (\(state)) before its container was ready\(why.map { ": \($0)" } ?? ""): see the job's output file dbgbox-job-\(id).out in your home directory on the cluster"
        case .noReport(let id, let seconds):
            return "job \(id) runs but its container did not report within \(seconds) s: see dbgbox-job-\(id).out in your home directory on the cluster"
        case .liveJobsUnknown(let why):
            return "cannot list your jobs (\(why)): no container was removed"
        }
    }
}
