import ArgumentParser
import DbgboxKit
import Foundation

/// `dbgbox up`: image (if missing) → container on the node → background tunnel → Host block.
struct Up: DbgboxCommand {
    static let configuration = CommandConfiguration(
        abstract: "Bring up a container on a node and make `ssh dbgbox-NAME` reach it through a tunnel.",
        discussion: """
        Builds the image on the node if it is missing (with --base, or base: in \
        ~/.config/dbgbox/config.yaml), creates the container, starts `dbgbox tunnel` as a detached \
        background process (log and record in $XDG_STATE_HOME/dbgbox), writes the Host block \
        dbgbox-NAME into ~/.ssh/dbgbox/config (sharing one ssh connection: ControlMaster auto, its \
        socket in ~/.ssh/dbgbox/cm, 0700) and makes ~/.ssh/config include it. Values not given \
        on the command line come from config.yaml (--profile, then defaults). \
        Anything failing midway, or Ctrl-C/SIGTERM, undoes what was done (exit 130/143 when \
        interrupted). Remove it all with dbgbox down.
        Example: dbgbox up --login alice@login.cluster --node gpu07 --gpu V --port auto
        With --scheduler slurm|pbs (no --node): the job script goes to sbatch/qsub on the login host \
        (on stdin); while the job waits, one line shows its state (Ctrl-C cancels it); the job runs \
        the container on its node with exactly its GPUs and removes it when the job ends; dbgbox then \
        pins the container's host key, starts the tunnel to that node and writes the Host block. \
        dbgbox down cancels the job. With --job ID: the container starts in a running Slurm job you \
        hold (srun --overlap; its TTL never exceeds the job's time left), and down leaves the job running. \
        config.yaml may give scheduler:, partition:, time:, gpus: and job_args: (a profile's GPU type).
        Example: dbgbox up --scheduler slurm --login alice@login.cluster --gpus 1 --time 2h
        """)

    @OptionGroup(title: "The cluster") var chain: Chain<NodeFoundLater>

    @OptionGroup(title: "The scheduler job") var scheduler: SchedulerOptions

    @OptionGroup(title: "The container") var container: ContainerOptions

    @Flag(help: "Run the tunnel in this process (Ctrl-C ends it and removes the session).")
    var foreground = false

    // MARK: forwarded ports (issue 15)
    @OptionGroup(title: "Forwarded ports") var ports: ForwardOptions
    // MARK: end forwarded ports

    func run(_ context: CommandContext) throws {
        let me = try context.me()
        let home = try context.home()
        let planner = ContainerPlanner(config: try context.config(home: home), home: home, absolute: context.absolute)
        let plan = try planner.plan(container.choices, login: chain.login, node: chain.node)
        if let input = try planner.schedulerInput(scheduler.choices, container: container.choices, plan: plan,
                                                  nodeGiven: chain.node != nil) {
            if foreground {
                throw DbgboxError("--foreground does not go with --scheduler or --job: the session runs in the background; remove it with dbgbox down")
            }
            return try runScheduled(input, plan: plan, planner: planner, home: home, context: context)
        }
        guard let login = plan.settings.login, let nodeName = plan.settings.node else {
            throw DbgboxError("up needs --login and --node (or login: and node: in \(DbgboxConfig.defaultPath(home: home)))")
        }
        let authorized = try AuthorizedKey.load(path: plan.keyPath, fs: context.files)
        // Forwarded ports (issue 15): LOCALs checked (auto resolved) before anything is made.
        let forwards = try PortForward.resolveLocals(try ports.forwards())

        var chain = self.chain
        chain.login = login
        chain.node = nodeName
        let flags = chain.flags(context)
        let started = context.clock.now()
        let elapsed = { String(format: "%.1f", context.clock.now().timeIntervalSince(started)) }
        let manager = try context.sessionManager(home: home) { step in context.note("up: \(step) (\(elapsed()) s)") }

        // Ctrl-C or SIGTERM from here on: before the container exists, dbgbox just ends (a build on
        // the node ends with the connection); after, `up` undoes what it made and exits 128+signal.
        // Watched before the node connection starts its thread, so that every thread blocks them.
        let interruption = context.interruption(ending: "up")
        defer { interruption.stopWatching() }
        let node = try context.node(try chain.request())
        defer { node.close() }
        let operations = NodeSessionOperations(context: context, node: node, home: home)
        operations.planner = planner
        operations.plan = plan
        operations.authorizedKeyLine = authorized.line
        let tunnels = context.tunnels(DetachedTunnels.Target(login: login, node: nodeName, flags: flags), interruption, context)

        var steps = manager
        steps.interruption = interruption
        steps.afterStep = SessionManager.testPause(environment: context.environment, interruption: interruption, context: context)
        let result: SessionManager.UpResult
        do {
            result = try steps.up(SessionManager.UpRequest(login: login, node: nodeName, identityFile: plan.identityFile,
                                                           options: try SessionOptions(flags: flags).encoded(),
                                                           foreground: foreground, forwards: forwards),
                                  node: operations, tunnels: tunnels)
        } catch {
            interruption.stopWatching()
            throw error
        }
        // A foreground tunnel keeps the watch: a signal stops it, then the session goes.
        if !foreground { interruption.stopWatching() }
        let record = result.record
        if let instruction = result.instruction { context.warn(instruction) }
        context.say("""
            session      \(record.name) (container on \(nodeName), port \(record.targetPort) → 127.0.0.1:\(record.localPort) here)
            up in        \(elapsed()) s
            ssh          ssh \(record.alias)  (works now)
            PyCharm      dbgbox ide pycharm \(record.name)  (SSH interpreter values; tick "Parse config file ~/.ssh/config")
            VS Code      code --folder-uri vscode-remote://ssh-remote+\(record.alias)\(me.home)  (or: dbgbox ide vscode \(record.name))
            remove it    dbgbox down \(record.name)
            """)
        for forward in record.forwards ?? [] { context.say("\(forward.direction == .forward ? "forward" : "reverse")      \(forward.summary)") }
        guard foreground, let request = try chain.request(targetPort: record.targetPort, localPort: record.localPort) else { return }
        // In process: the tunnel runs until Ctrl-C, then the session goes.
        var tunnelError: Error?
        do {
            let setup = ForwardSetup(session: record.name, controlPath: manager.controlPath(record.name), user: record.user,
                                     identityFile: record.identityFile, forwards: record.forwards ?? [])
            try TunnelRunner(context: context).run(request, session: record.name, interruption: interruption, forwards: setup)
        } catch { tunnelError = error }
        var quiet = manager
        quiet.progress = { _ in }
        _ = try quiet.down(record, node: { operations }, tunnels: tunnels)
        if let tunnelError { throw tunnelError }
    }

    /// `up --scheduler` / `up --job`: the Kit's scheduler flow, then what to type.
    func runScheduled(_ input: SchedulerUpInput, plan: ContainerPlan, planner: ContainerPlanner, home: String,
                      context: CommandContext) throws {
        guard let login = plan.settings.login else {
            throw DbgboxError("up --scheduler needs --login (or login: in \(DbgboxConfig.defaultPath(home: home)))")
        }
        let authorized = try AuthorizedKey.load(path: plan.keyPath, fs: context.files)
        var chain = self.chain
        (chain.login, chain.node) = (login, nil)
        let flags = chain.flags(context)
        guard let loginChain = try chain.loginRequest() else { return }
        let started = context.clock.now()
        let elapsed = { String(format: "%.1f", context.clock.now().timeIntervalSince(started)) }
        var steps = try context.sessionManager(home: home) { step in context.note("up: \(step) (\(elapsed()) s)") }
        // As without a scheduler: until the job exists, a signal just ends dbgbox; after, up undoes.
        let interruption = context.interruption(ending: "up")
        defer { interruption.stopWatching() }
        steps.interruption = interruption
        steps.afterStep = SessionManager.testPause(environment: context.environment, interruption: interruption, context: context)
        let result = try SchedulerSessions(context: context, chain: loginChain).up(
            input, login: login, plan: plan, planner: planner, authorizedKeyLine: authorized.line, flags: flags, home: home,
            manager: steps, interruption: interruption)
        let record = result.session.record
        if let instruction = result.session.instruction { context.warn(instruction) }
        let job = record.job
        context.say("""
            session      \(record.name) (container on \(job?.nodeName ?? record.node ?? "?"), port \(record.targetPort) → 127.0.0.1:\(record.localPort) here)
            job          \(job?.id ?? "?") (\(result.kind.rawValue)\(result.attached ? ", a step in your job" : "")), GPUs \(record.gpus.isEmpty ? "none" : record.gpus.joined(separator: ","))
            up in        \(elapsed()) s
            ssh          ssh \(record.alias)  (works now)
            PyCharm      dbgbox ide pycharm \(record.name)  (SSH interpreter values; tick "Parse config file ~/.ssh/config")
            VS Code      code --folder-uri vscode-remote://ssh-remote+\(record.alias)\(result.user.home)  (or: dbgbox ide vscode \(record.name))
            remove it    dbgbox down \(record.name)  (\(result.attached ? "ends the step; your job keeps running" : "cancels the job"))
            """)
    }
}
