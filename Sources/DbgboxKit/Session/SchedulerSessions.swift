import Foundation

/// What `up`'s scheduler options asked for (`--scheduler`, `--gpus`, `--time`, `--partition`,
/// `--job-arg`, `--job`); nil and empty mean "not given", so config.yaml applies.
public struct SchedulerChoices: Sendable, Equatable {
    public var scheduler: String?
    public var gpus: String?
    public var time: String?
    public var partition: String?
    /// `--job-arg` values, verbatim (they come after config.yaml's `job_args`).
    public var jobArgs: [String]
    /// `--job ID`.
    public var job: String?

    public init(scheduler: String? = nil, gpus: String? = nil, time: String? = nil, partition: String? = nil,
                jobArgs: [String] = [], job: String? = nil) {
        self.scheduler = scheduler
        self.gpus = gpus
        self.time = time
        self.partition = partition
        self.jobArgs = jobArgs
        self.job = job
    }
}

extension ContainerPlanner {
    /// `up`'s scheduler job: the command line over config.yaml (the container's `--profile`, then
    /// `defaults:`), checked before anything connects; nil when neither `--scheduler`, `--job` nor
    /// config's `scheduler:` asks for a job. `nodeGiven`: `--node` was on the command line (refused
    /// with a scheduler; config's `scheduler:` then does not apply).
    public func schedulerInput(_ choices: SchedulerChoices, container: ContainerChoices, plan: ContainerPlan,
                               nodeGiven: Bool) throws -> SchedulerUpInput? {
        let settings = DbgboxSettings(scheduler: choices.scheduler, partition: choices.partition, time: choices.time,
                                      gpus: choices.gpus)
            .filling(from: try config.settings(profile: container.profile))
        return try SchedulerUpInput.parse(scheduler: choices.scheduler, job: choices.job, settings: settings,
                                          nodeGiven: nodeGiven, gpu: plan.settings.gpu, runtime: plan.runtime,
                                          jobArguments: choices.jobArgs, profiles: config.gpuProfiles)
    }
}

extension ChainSetup {
    /// The login host alone as a `NodeEnvironment` whose runner runs there (the scheduler's
    /// commands): only the login hop of `request` is used. Close it when done.
    @Sendable
    public static func openLogin(_ request: TunnelRequest, context: CommandContext) throws -> NodeEnvironment {
        let (plan, _) = try plan(request, context: context)
        let runner = try LoginProcessRunner(plan: plan, checker: checker(request, context: context))
        return NodeEnvironment(runner: runner, remoteName: runner.loginName, close: { runner.close() })
    }
}

extension CommandContext {
    /// The login host alone, where the scheduler's commands run (close it with `close()`).
    public func login(_ chain: TunnelRequest) throws -> NodeEnvironment {
        try connectLogin(chain, self)
    }
}

/// Scheduler sessions (issue 14) as the commands ask for them: `up --scheduler` / `up --job`,
/// `down`'s node side of a session with a job, `status`'s look at each job, `cleanup`'s reaper.
/// Connections come from the context: the login host alone (`CommandContext.login`), a node
/// through the chain (`CommandContext.node`).
public struct SchedulerSessions {
    public let context: CommandContext
    /// The chain's options, its login host that of the session (its `node` is replaced by each
    /// job's node).
    public let chain: TunnelRequest

    public init(context: CommandContext, chain: TunnelRequest) {
        self.context = context
        self.chain = chain
    }

    /// docker on `address` (as the login host reaches it) through the chain.
    public func node(_ address: String) throws -> NodeEnvironment {
        var request = chain
        request.node = try HostSpec(parsing: address)
        return try context.node(request)
    }

    /// What `up` printed about a scheduler session.
    public struct UpResult {
        public var session: SessionManager.UpResult
        /// The user as the cluster knows them (the login host shares accounts and homes with the nodes).
        public var user: UserIdentity
        public var kind: SchedulerKind
        /// A step in the user's own job (`--job`).
        public var attached: Bool
    }

    /// `up --scheduler` / `up --job`: the job (or a step in the user's job) runs the container on
    /// the node it gets; then as `up` without a scheduler (tunnel, record, Host block). `manager`
    /// carries the interruption and the test hook; `login` is the login host as given (recorded).
    public func up(_ input: SchedulerUpInput, login: String, plan: ContainerPlan, planner: ContainerPlanner,
                   authorizedKeyLine: String, flags: [String], home: String, manager: SessionManager,
                   interruption: Interruption?) throws -> UpResult {
        let templates = try JobTemplates.load(
            directory: try Templates.directory(environment: context.environment, fileSystem: context.files),
            kind: input.kind, header: input.attachTo == nil ? nil : JobTemplates.slurmAttachFile, fileSystem: context.files)
        let loginSide = try context.login(chain)
        defer { loginSide.close() }
        let user = try loginSide.identity(requested: nil)
        // Mount sources are checked on the login host: it shares the cluster's file systems.
        let mounts = try planner.mounts(plan, node: loginSide, userHome: user.home)
        let request = try input.jobRequest(user: user, image: plan.settings.image ?? ContainerCreateRequest.defaultImage(for: user),
                                           authorizedKeyLine: authorizedKeyLine, ttl: plan.ttl, mounts: mounts,
                                           profiles: planner.config.gpuProfiles, now: context.clock.now())
        let flow = SchedulerSessionNode(client: schedulerClient(input.kind, runner: loginSide.runner), request: request,
                                        templates: templates, attachTo: input.attachTo,
                                        pinnedPath: PinnedHostKeys.defaultPath(home: home),
                                        connectNode: { try node($0) })
        flow.fs = context.files
        flow.interruption = interruption
        flow.waitLine = JobWaitLine(sink: context.stderr, terminal: context.stderrIsTerminal)
        flow.warn = { [context] in context.warn($0) }
        let tunnels = flow.tunnels { [context] address in
            context.tunnels(DetachedTunnels.Target(login: login, node: address, flags: flags), interruption, context)
        }
        let session = try manager.up(SessionManager.UpRequest(login: login, node: nil, identityFile: plan.identityFile,
                                                              options: try SessionOptions(flags: flags).encoded(),
                                                              foreground: false),
                                     node: flow, tunnels: tunnels)
        return UpResult(session: session, user: user, kind: input.kind, attached: input.attachTo != nil)
    }

    /// `down`'s node side of `record`'s job: the job cancelled (never an attached one), its
    /// container gone, its output file removed. Close the returned login connection when done.
    public func downOperations(_ record: SessionRecord, job: SessionJob) throws -> (SessionNodeOperations, NodeEnvironment) {
        guard let kind = job.kind else { throw DbgboxError("session \(record.name) names an unknown scheduler \(job.scheduler)") }
        let loginSide = try context.login(chain)
        let teardown = SchedulerTeardown(client: schedulerClient(kind, runner: loginSide.runner), connectNode: { try node($0) })
        return (SchedulerRecordOperations(teardown: teardown, job: job, node: record.node), loginSide)
    }

    /// `cleanup --scheduler`: on `node`, `owner`'s job containers whose job no longer exists go.
    public func reap(_ kind: SchedulerKind, node: NodeEnvironment, owner: String) throws -> [String] {
        let loginSide = try context.login(chain)
        defer { loginSide.close() }
        return try Reaper.reap(node: node.runner, scheduler: schedulerClient(kind, runner: loginSide.runner), owner: owner)
    }

    /// `status`: each job's state (one login connection per login host and ssh options), and the
    /// reaper on the nodes of ended jobs. `chain` gives a record's chain (nil: a local session).
    public static func looks(_ records: [SessionRecord], context: CommandContext,
                             chain: @escaping (SessionRecord) throws -> TunnelRequest?) -> [String: SchedulerSessionStatus.Look] {
        guard records.contains(where: { $0.job != nil }) else { return [:] }
        var logins: [(TunnelRequest, NodeEnvironment)] = []
        defer { logins.forEach { $0.1.close() } }
        func sessions(_ record: SessionRecord) throws -> SchedulerSessions {
            guard let request = try chain(record) else { throw DbgboxError("session \(record.name) records no login host") }
            return SchedulerSessions(context: context, chain: request)
        }
        let status = SchedulerSessionStatus(client: { record in
            guard let kind = record.job?.kind else { throw DbgboxError("unknown scheduler \(record.job?.scheduler ?? "")") }
            var key = try sessions(record).chain
            key.node = key.login
            if let open = logins.first(where: { $0.0 == key }) { return schedulerClient(kind, runner: open.1.runner) }
            let opened = try context.login(key)
            logins.append((key, opened))
            return schedulerClient(kind, runner: opened.runner)
        }, connectNode: { record in
            let scheduler = try sessions(record)
            return try context.node(scheduler.chain)
        })
        return status.look(records, owner: { $0.user })
    }
}
