import Foundation

/// The scheduler job a session's container runs in, as the session record keeps it.
public struct SessionJob: Codable, Sendable, Equatable {
    public var id: String
    /// `slurm` or `pbs`.
    public var scheduler: String
    /// The scheduler's name of the node (`gpu07`); the record's `node` is where dbgbox connects.
    public var nodeName: String?
    /// The report's file in the home directory on the login host; `down` removes it.
    public var outputFile: String
    /// The job is an allocation the user holds (`up --job`): dbgbox ran a step in it and never
    /// cancels the job; `down` removes the container and the step ends with it.
    public var attached: Bool

    public init(id: String, scheduler: String, nodeName: String?, outputFile: String, attached: Bool = false) {
        self.id = id
        self.scheduler = scheduler
        self.nodeName = nodeName
        self.outputFile = outputFile
        self.attached = attached
    }

    public var kind: SchedulerKind? { SchedulerKind(rawValue: scheduler) }
}

/// The live line while a job waits: redrawn in place on a terminal (`\r`), else one line when the
/// state changes and every `every` seconds. Writes to `sink` (stderr in dbgbox).
public final class JobWaitLine: @unchecked Sendable {
    let sink: OutputSink
    let terminal: Bool
    let every: Int
    private var lastText: String?
    private var lastPrinted = -1_000_000
    private var drawn = false

    public init(sink: OutputSink, terminal: Bool, every seconds: Int = 10) {
        self.sink = sink
        self.terminal = terminal
        self.every = seconds
    }

    public func update(_ status: JobStatus, jobID: String, waited: Int) {
        let line = status.progressLine(jobID: jobID, waited: waited)
        let key = "\(status.state)|\(status.reason ?? "")"
        if terminal {
            sink.write(Data("\r\u{1B}[K\(line)".utf8))
            drawn = true
        } else if key != lastText || waited - lastPrinted >= every {
            sink.write(Data("\(line)\n".utf8))
            lastPrinted = waited
        }
        lastText = key
    }

    /// Ends a redrawn line (a newline, so what follows starts on its own line).
    public func finish() {
        if terminal && drawn { sink.write(Data("\n".utf8)) }
        drawn = false
    }
}

/// `dbgbox up --scheduler` and `up --job` as the node side of `SessionManager.up`: the job (or a
/// step in the user's job) runs the container on the node it gets; `createContainer` submits the
/// job script on the login host, waits for the job's report, pins the container's host key and
/// reaps the user's containers of ended jobs on that node; `removeContainer` (up's undo, and
/// `down`) cancels the job, waits until its container is gone and removes the job's output file.
///
/// The tunnel needs the node, which only the job's report names: `tunnels(_:)` wraps the caller's
/// tunnel control so that it is made for `node` once it is known.
public final class SchedulerSessionNode: SessionNodeOperations, @unchecked Sendable {
    public let client: SchedulerClient
    /// The job to submit; its container's name, image, user, mounts and key are the session's.
    public let request: JobRequest
    public let templates: JobTemplates
    /// `up --job ID`: a step in this running Slurm job instead of a new job.
    public let attachTo: String?
    public let pinnedPath: String
    /// docker on a node, as the login host reaches it (the chain laptop → login → node).
    public let connectNode: (String) throws -> NodeEnvironment
    public var fs: FileSystem = LocalFileSystem()
    public var interruption: Interruption?
    public var waitLine: JobWaitLine?
    public var warn: (String) -> Void = { _ in }
    public var interval: TimeInterval = 0.5
    public var reportTimeout: TimeInterval = 120
    public var teardown: SchedulerTeardown
    public var clock: WallClock = SystemWallClock()
    public var sleep: (TimeInterval) -> Void = { Thread.sleep(forTimeInterval: $0) }

    /// Set by `createContainer`: where the container runs (the address dbgbox connects to) and its job.
    public private(set) var node: String?
    public private(set) var job: SessionJob?

    public init(client: SchedulerClient, request: JobRequest, templates: JobTemplates, attachTo: String? = nil,
                pinnedPath: String, connectNode: @escaping (String) throws -> NodeEnvironment) {
        self.client = client
        self.request = request
        self.templates = templates
        self.attachTo = attachTo
        self.pinnedPath = pinnedPath
        self.connectNode = connectNode
        self.teardown = SchedulerTeardown(client: client, connectNode: connectNode)
    }

    /// The image is the job's to run: a missing one is the job's `docker run` error, in one line.
    public func ensureImage() throws -> String { request.container.image }

    public func createContainer(image: String) throws -> SessionContainer {
        var request = try self.request.validated()
        request.container.image = image
        let name = request.container.name
        let started: StartedJob
        if let attachTo {
            started = try attach(attachTo, request: &request)
        } else {
            let script = try JobScript.render(request, templates: templates)
            // A signal before the job exists: nothing is submitted (and nothing had been made).
            try interruption?.check()
            let id = try client.submit(request, script: script)
            started = StartedJob(id: id, outputFile: client.kind.outputFile(jobID: id), stepPID: nil)
        }
        do {
            let (status, report) = try client.waitUntilReady(
                started.id, file: started.outputFile, cancelsJob: attachTo == nil, interval: interval,
                reportTimeout: reportTimeout, clock: clock, sleep: sleep,
                interrupted: { [interruption] in interruption?.signal },
                progress: { [waitLine] status, waited in waitLine?.update(status, jobID: started.id, waited: waited) })
            waitLine?.finish()
            guard let nodeName = report.node ?? status.node, let port = report.port, let keyLine = report.hostKey else {
                throw SchedulerError.noReport(id: started.id, seconds: Int(reportTimeout))
            }
            let key: SSHPublicKey
            do { key = try SSHPublicKey(line: keyLine) } catch {
                throw DbgboxError("job \(started.id) reported a host key that is not a public key line (\(shown(keyLine, limit: 60))): see \(started.outputFile) in your home directory on the cluster")
            }
            let address = try nodeAddress(nodeName)
            let job = SessionJob(id: started.id, scheduler: client.kind.rawValue, nodeName: nodeName,
                                 outputFile: started.outputFile, attached: attachTo != nil)
            self.node = address
            self.job = job
            try PinnedHostKeys(path: pinnedPath, fs: fs).pin(alias: ContainerSpec.hostKeyAlias(for: name), key: key)
            reap(address)
            let spec = request.container
            return SessionContainer(name: name, port: Int(port), user: spec.user.name, image: image, gpus: report.gpus,
                                    expires: spec.expires, home: spec.user.home,
                                    mounts: spec.allMounts.map { PathMapping(source: $0.source, target: $0.target) },
                                    node: address, job: job)
        } catch {
            waitLine?.finish()
            let undone = undoStart(started, container: name)
            // Interrupted once the job existed: say that it was undone (not "nothing had been made").
            if let interrupted = error as? Interrupted {
                throw Interrupted(signal: interrupted.signal, undone: interrupted.undone + [undone])
            }
            throw error
        }
    }

    /// Where to connect for the scheduler's node name: Slurm's NodeAddr, else the name.
    func nodeAddress(_ name: String) throws -> String {
        guard let slurm = client as? SlurmClient else { return name }
        return (try? slurm.nodeAddress(name)) ?? name
    }

    /// The reaper on the job's node; what it cannot do is said, not fatal.
    func reap(_ address: String) {
        do {
            let env = try connectNode(address)
            defer { env.close() }
            let owner = request.container.user.name
            for name in try Reaper.reap(node: env.runner, scheduler: client, owner: owner) {
                warn("removed container \(name) on \(address): its job no longer exists")
            }
        } catch {
            warn("could not check \(address) for containers of ended jobs: \(condense("\(error)", limit: 200))")
        }
    }

    struct StartedJob {
        var id: String
        var outputFile: String
        /// The `srun` of an attached step, on the login host.
        var stepPID: String?
    }

    /// `up --job ID`: the job must run; the step `srun --jobid ID --overlap` runs the same body
    /// with the job's GPUs, detached on the login host, its output in a file of its own. The
    /// container's TTL is capped by the job's time left (`request` keeps the capped one).
    func attach(_ id: String, request: inout JobRequest) throws -> StartedJob {
        guard client.kind == .slurm else { throw SchedulerSessionError.attachNeedsSlurm }
        try SchedulerSessionError.validateJobID(id)
        let status = try client.state(id)
        guard status.phase == .running else { throw SchedulerSessionError.jobNotRunning(id: id, state: status.state) }
        request = Self.capped(request, timeLeft: status.timeLeft, now: clock.now())
        let script = try JobScript.render(request, templates: templates)
        let file = SlurmAttach.outputFile(jobID: id, container: request.container.name)
        let result = try client.runner.run(SlurmAttach.arguments(jobID: id, name: request.container.name, script: script, outputFile: file))
        let pid = result.stdoutText.trimmingCharacters(in: .whitespacesAndNewlines)
        guard result.succeeded, !pid.isEmpty, pid.allSatisfy({ $0.isASCII && $0.isNumber }) else {
            throw SchedulerError.failed(program: "srun", exit: result.exitCode, why: SlurmOutput.refusal(result.stderrText))
        }
        return StartedJob(id: id, outputFile: file, stepPID: pid)
    }

    /// The container's TTL within the job's time left (`squeue` %L: `59:12`, `1-02:00:00`;
    /// `UNLIMITED` or anything else unparsable leaves it).
    static func capped(_ request: JobRequest, timeLeft: String?, now: Date) -> JobRequest {
        guard let text = timeLeft, let left = try? TimeLimit.parse(text) else { return request }
        var copy = request
        if copy.container.ttl.seconds == 0 || copy.container.ttl.seconds > left.seconds {
            copy.container.ttl = TTL(seconds: left.seconds)
            copy.container.expires = copy.container.ttl.expiry(from: now)
        }
        return copy
    }

    /// After a failure or an interruption once the job exists: the job cancelled (or the step
    /// stopped), its container gone, its output file removed. Best effort; returns what was undone
    /// (for the interruption's message).
    @discardableResult
    func undoStart(_ started: StartedJob, container: String) -> String {
        let undone: String
        if let pid = started.stepPID {
            // srun passes TERM to the step; the step's trap removes the container.
            _ = try? client.runner.run(["kill", "-TERM", pid])
            if let node { try? teardown.removeContainer(container, on: node, waitForTrap: false) }
            undone = "step in job \(started.id) (stopped; your job keeps running)"
        } else {
            try? client.cancel(started.id)
            // A job caught starting writes its output file after the cancel: wait for its end.
            let deadline = clock.now().addingTimeInterval(15)
            while clock.now() < deadline, (try? client.state(started.id).phase) != .ended { sleep(interval) }
            if let node { try? teardown.removeContainer(container, on: node, waitForTrap: true) }
            undone = "job \(started.id) (cancelled)"
        }
        try? client.removeOutput(started.id, file: started.outputFile)
        return undone
    }

    /// `up`'s undo once the container reported: as `down`.
    public func removeContainer(_ name: String) throws {
        guard let job else { return }
        try teardown.remove(job: job, node: node, container: name)
    }

    /// The caller's tunnel control, made for the node once `createContainer` knows it.
    public func tunnels(_ make: @escaping (String) -> SessionTunnelControl) -> SessionTunnelControl {
        NodeDeferredTunnels(node: { [weak self] in self?.node }, make: make)
    }
}

/// A tunnel control for a node known only later (`SchedulerSessionNode.tunnels`).
struct NodeDeferredTunnels: SessionTunnelControl {
    let node: () -> String?
    let make: (String) -> SessionTunnelControl

    func localPort(preferring preferred: Int) throws -> Int { try make(node() ?? "").localPort(preferring: preferred) }

    func start(_ launch: TunnelLaunch) throws -> LaunchedTunnel {
        guard let node = node() else { throw DbgboxError("the job's node is not known yet: no tunnel to start") }
        return try make(node).start(launch)
    }

    func stop(pid: Int32) { make(node() ?? "").stop(pid: pid) }
}

/// A scheduler session's end: the job cancelled (never an attached one), its container gone from
/// the node, its output file removed. For `down` and for `up`'s undo.
public struct SchedulerTeardown {
    public let client: SchedulerClient
    public let connectNode: (String) throws -> NodeEnvironment
    /// How long the job's trap has to remove the container before dbgbox does.
    public var goneTimeout: TimeInterval = 60
    public var clock: WallClock = SystemWallClock()
    public var sleep: (TimeInterval) -> Void = { Thread.sleep(forTimeInterval: $0) }

    public init(client: SchedulerClient, connectNode: @escaping (String) throws -> NodeEnvironment) {
        self.client = client
        self.connectNode = connectNode
    }

    /// Cancels the job (an attached one: removes the container, which ends the step), waits until
    /// the container is gone (the job's trap; after `goneTimeout`, `docker rm -f`), removes the
    /// output file. A node that cannot be reached is fine once the job has ended (its trap, or the
    /// reaper, removes the container); else it throws and nothing is lost (down can run again).
    public func remove(job: SessionJob, node: String?, container: String) throws {
        if !job.attached { try client.cancel(job.id) }
        if let node {
            do {
                try removeContainer(container, on: node, waitForTrap: !job.attached)
            } catch {
                guard !job.attached, (try? client.state(job.id).phase) == .ended else { throw error }
            }
        }
        try client.removeOutput(job.id, file: job.outputFile)
    }

    /// Waits (when `waitForTrap`) up to `goneTimeout` for the container to go, then removes it.
    public func removeContainer(_ name: String, on node: String, waitForTrap: Bool) throws {
        let env = try connectNode(node)
        defer { env.close() }
        let docker = DockerClient(runner: env.runner)
        if waitForTrap {
            let deadline = clock.now().addingTimeInterval(goneTimeout)
            while clock.now() < deadline {
                if try docker.container(named: name) == nil { return }
                sleep(0.5)
            }
        }
        try docker.forceRemove(name)
    }
}

/// `srun --jobid ID --overlap` detached on the login host, for `up --job`.
public enum SlurmAttach {
    /// Runs "$@" in a session of its own with stdin from /dev/null and stdout/stderr to "$1" (so
    /// the exec channel closes at once), and prints its pid. A constant: the values are arguments.
    public static let launcher = "out=$1; shift; umask 077; setsid \"$@\" </dev/null >\"$out\" 2>&1 & echo \"$!\""

    public static func outputFile(jobID: String, container: String) -> String { "dbgbox-job-\(jobID)-\(container).out" }

    public static func arguments(jobID: String, name: String, script: String, outputFile: String) -> [String] {
        ["bash", "-c", launcher, "dbgbox-attach", outputFile,
         "srun", "--jobid=\(jobID)", "--overlap", "--nodes=1", "--ntasks=1", "--job-name=\(name)", "--quiet",
         "bash", "-c", script, "dbgbox-job"]
    }
}

/// The state of each scheduler session's job, for `status`; and the reaper on the nodes of jobs
/// that ended.
public struct SchedulerSessionStatus {
    /// The scheduler client for a record's login host (the caller caches connections).
    public let client: (SessionRecord) throws -> SchedulerClient
    public let connectNode: (SessionRecord) throws -> NodeEnvironment

    public init(client: @escaping (SessionRecord) throws -> SchedulerClient,
                connectNode: @escaping (SessionRecord) throws -> NodeEnvironment) {
        self.client = client
        self.connectNode = connectNode
    }

    /// One look per record with a job: its status, or why there is none.
    public struct Look: Sendable, Equatable {
        public var status: JobStatus?
        public var error: String?
        /// Containers the reaper removed on the job's node.
        public var reaped: [String] = []
    }

    /// Asks each job's state; on the node of each job that ended, runs the reaper (the user's
    /// containers whose job no longer exists go). Records without a job are left out.
    public func look(_ records: [SessionRecord], owner: (SessionRecord) -> String) -> [String: Look] {
        var looks: [String: Look] = [:]
        var reapedNodes = Set<String>()
        for record in records {
            guard let job = record.job else { continue }
            var look = Look()
            do {
                let scheduler = try client(record)
                look.status = try scheduler.state(job.id)
                if look.status?.phase == .ended, let node = record.node, !reapedNodes.contains(node) {
                    reapedNodes.insert(node)
                    let env = try connectNode(record)
                    defer { env.close() }
                    look.reaped = try Reaper.reap(node: env.runner, scheduler: scheduler, owner: owner(record))
                }
            } catch {
                look.error = condense("\(error)", limit: 200)
            }
            looks[record.name] = look
        }
        return looks
    }
}

/// `up --scheduler` / `up --job` input refused in one line.
public enum SchedulerSessionError: UserFacingError, Equatable {
    case nodeWithScheduler
    case attachNeedsSlurm
    case badJobID(String)
    case jobNotRunning(id: String, state: String)
    case badGPUCount(String)
    case gpuIDsWithScheduler(String)

    public var description: String {
        switch self {
        case .badGPUCount(let text):
            return "--gpus \(shown(text, limit: 20)) is not a number: give how many GPUs the job asks for, e.g. --gpus 1"
        case .gpuIDsWithScheduler(let text):
            return "--gpu \(shown(text, limit: 30)): with a scheduler the job's GPUs are the devices: ask for a count with --gpus N, and give --gpu a profile letter or none"
        case .nodeWithScheduler:
            return "--node cannot go with --scheduler or --job: the node is the one the job gets; leave --node out"
        case .attachNeedsSlurm:
            return "--job attaches to Slurm jobs only (srun --overlap): use --scheduler slurm, or start a new PBS job with --scheduler pbs"
        case .badJobID(let id):
            return "--job \(shown(id, limit: 30)) is not a job id: give the number squeue --me shows"
        case .jobNotRunning(let id, let state):
            return "job \(id) is \(state), not running: dbgbox up --job needs a running job you hold (see squeue --me)"
        }
    }

    static func validateJobID(_ id: String) throws {
        guard !id.isEmpty, id.count <= 20, id.allSatisfy({ $0.isASCII && $0.isNumber }) else { throw badJobID(id) }
    }
}

/// What `up --scheduler` / `up --job` was asked for (the command line over config.yaml), checked.
public struct SchedulerUpInput: Sendable, Equatable {
    public var kind: SchedulerKind
    public var gpus: Int
    /// The `--gpu` letter whose CPU/memory profile the container keeps; nil for none.
    public var letter: String?
    public var runtime: GPURuntime
    public var time: TimeLimit?
    public var partition: String?
    /// config.yaml's `job_args` (the profile's GPU type), then `--job-arg`s.
    public var profileArguments: [String]
    public var jobArguments: [String]
    /// `--job ID`.
    public var attachTo: String?

    /// nil when neither `--scheduler`, `--job` nor config's `scheduler:` asks for a job.
    /// `nodeGiven`: `--node` was on the command line (refused with a scheduler).
    public static func parse(scheduler: String?, job: String?, settings: DbgboxSettings, nodeGiven: Bool,
                             gpu: String?, runtime: GPURuntime, jobArguments: [String],
                             profiles: [String: GPUProfile]) throws -> SchedulerUpInput? {
        guard let kindText = scheduler ?? (job != nil ? "slurm" : nil) ?? (nodeGiven ? nil : settings.scheduler) else { return nil }
        if nodeGiven { throw SchedulerSessionError.nodeWithScheduler }
        let kind = try SchedulerKind.parse(kindText)
        if let job { try SchedulerSessionError.validateJobID(job) }
        if job != nil && kind != .slurm { throw SchedulerSessionError.attachNeedsSlurm }
        var gpus = 1
        if let text = settings.gpus {
            guard let n = Int(text.trimmingCharacters(in: .whitespaces)) else { throw SchedulerSessionError.badGPUCount(text) }
            gpus = n
        }
        var letter: String?
        if let gpu {
            switch try GPURequest.parse(gpu, profiles: profiles) {
            case .none: letter = nil
            case .profile(let l): letter = l
            case .ids: throw SchedulerSessionError.gpuIDsWithScheduler(gpu)
            }
        }
        let time = try settings.time.map(TimeLimit.parse)
        if let partition = settings.partition { try JobRequest.validatePartition(partition) }
        let input = SchedulerUpInput(kind: kind, gpus: gpus, letter: letter, runtime: runtime, time: time,
                                     partition: settings.partition, profileArguments: settings.jobArgs ?? [],
                                     jobArguments: jobArguments, attachTo: job)
        // The count and arguments are checked now, before anything connects.
        if job == nil {
            let probe = ContainerSpec(name: "dbgbox_check", image: "check", user: UserIdentity(name: "check", uid: 1, gid: 1, home: "/"),
                                      port: 1, authorizedKeyLine: "", ttl: TTL(seconds: 0), expires: nil, gpu: .none, mounts: [])
            _ = try input.jobRequest(container: probe).validated()
        }
        return input
    }

    /// The job request for `container` (its GPU part set from this input).
    public func jobRequest(container: ContainerSpec) -> JobRequest {
        var spec = container
        spec.gpu = GPUSelection(deviceIDs: [], profile: nil, letter: letter, runtime: runtime)
        return JobRequest(kind: kind, gpus: gpus, profileArguments: profileArguments, time: time, partition: partition,
                          jobArguments: jobArguments, container: spec)
    }

    /// The session's container as the job will run it: a fresh name, the letter's profile, the TTL
    /// (capped by the time limit in `JobRequest.validated`).
    public func jobRequest(user: UserIdentity, image: String, authorizedKeyLine: String, ttl: TTL, mounts: [BindMount],
                           profiles: [String: GPUProfile], now: Date,
                           random: (ClosedRange<Int>) -> Int = { Int.random(in: $0) }) throws -> JobRequest {
        try ContainerSpec.checkMountTargets(mounts, home: user.home)
        let name = "\(user.name)_\(String(format: "%05d", random(0...99999)))"
        var spec = ContainerSpec(name: name, image: image, user: user, port: 1, authorizedKeyLine: authorizedKeyLine,
                                 ttl: ttl, expires: nil, gpu: .none, mounts: mounts)
        var request = jobRequest(container: spec)
        request.container.gpu.profile = letter.flatMap { profiles[$0] }
        request = try request.validated()
        spec = request.container
        spec.expires = spec.ttl.expiry(from: now)
        request.container = spec
        return request
    }
}

/// `down` of a scheduler session: `removeContainer` is `SchedulerTeardown.remove` for the recorded job.
public struct SchedulerRecordOperations: SessionNodeOperations {
    public var teardown: SchedulerTeardown
    public var job: SessionJob
    /// The recorded node address (nil: the job never reported one).
    public var node: String?

    public init(teardown: SchedulerTeardown, job: SessionJob, node: String?) {
        self.teardown = teardown
        self.job = job
        self.node = node
    }

    public func ensureImage() throws -> String { throw DbgboxError("a recorded scheduler session makes no image") }
    public func createContainer(image: String) throws -> SessionContainer {
        throw DbgboxError("a recorded scheduler session makes no container")
    }
    public func removeContainer(_ name: String) throws { try teardown.remove(job: job, node: node, container: name) }
}
