import ArgumentParser
import DbgboxKit
import Foundation
#if canImport(Glibc)
import Glibc
#endif

// Issue 14: `dbgbox up --scheduler slurm|pbs` and `up --job ID`. The flow is the Kit's
// (SchedulerSessionNode under SessionManager.up); this makes its connections and prints the result.
extension Up {
    func runScheduled(_ input: SchedulerUpInput, settings: DbgboxSettings, config: DbgboxConfig, me: UserIdentity,
                      home: String) throws {
        guard let login = settings.login else {
            throw DbgboxError("up --scheduler needs --login (or login: in \(DbgboxConfig.defaultPath(home: home)))")
        }
        let ttlValue = try TTL.parse(settings.ttl ?? TTL.defaultText)
        if let image = settings.image { try ImageReference.validateImage(image) }
        let (authorized, identityFile) = try SchedulerWiring.key(settings.key, home: home)
        let templates = try JobTemplates.load(directory: try Templates.directory(), kind: input.kind,
                                              header: input.attachTo == nil ? nil : JobTemplates.slurmAttachFile)
        var options = remote
        (options.login, options.node) = (login, nil)
        let flags = SessionWiring.remoteFlags(options)
        let started = Date()
        let manager = SessionWiring.manager(home: home, progress: SchedulerWiring.stepLine(started))
        let interruption = Interruption { signal in
            FileHandle.standardError.write(Data("dbgbox: error: up interrupted by \(Interruption.name(signal)): nothing had been made\n".utf8))
            _exit(128 + signal)
        }
        interruption.watch([SIGINT, SIGTERM])
        defer { interruption.stopWatching() }

        let loginRunner = try options.loginRunner()
        defer { loginRunner.close() }
        // The user as the cluster knows them (the login host shares accounts and homes with the nodes).
        let loginSide = NodeEnvironment(runner: loginRunner, remoteName: loginRunner.loginName)
        let user = try loginSide.identity(requested: nil)
        var mounts: [BindMount] = []
        for list in mountLists { mounts += try BindMount.parseList(list, fs: loginSide.files) }
        for volume in (mountLists.isEmpty && volumes.isEmpty ? (settings.mounts ?? []) : volumes) {
            mounts.append(try BindMount.parseVolume(volume, fs: loginSide.files))
        }
        let request = try input.jobRequest(user: user, image: settings.image ?? ContainerCreateRequest.defaultImage(for: user),
                                           authorizedKeyLine: authorized.line, ttl: ttlValue, mounts: mounts,
                                           profiles: config.gpuProfiles, now: Date())
        let client = schedulerClient(input.kind, runner: loginRunner)
        let node = SchedulerSessionNode(client: client, request: request, templates: templates, attachTo: input.attachTo,
                                        pinnedPath: PinnedHostKeys.defaultPath(home: home),
                                        connectNode: { try options.nodeEnvironment($0) })
        node.interruption = interruption
        node.waitLine = SchedulerWiring.waitLine()
        node.warn = ContainerWiring.warn
        let tunnels = node.tunnels { address in
            var detached = DetachedTunnels(login: login, node: address, flags: flags)
            detached.interruption = interruption
            return detached
        }
        let optionsData = try JSONEncoder().encode(SessionOptions(flags: flags))
        var steps = manager
        steps.interruption = interruption
        steps.afterStep = Self.testPause(interruption)
        let result = try steps.up(SessionManager.UpRequest(login: login, node: nil, identityFile: identityFile,
                                                           options: optionsData, foreground: false),
                                  node: node, tunnels: tunnels)
        let record = result.record
        if let instruction = result.instruction { ContainerWiring.warn(instruction) }
        let job = record.job
        print("""
            session      \(record.name) (container on \(job?.nodeName ?? record.node ?? "?"), port \(record.targetPort) → 127.0.0.1:\(record.localPort) here)
            job          \(job?.id ?? "?") (\(input.kind.rawValue)\(input.attachTo == nil ? "" : ", a step in your job")), GPUs \(record.gpus.isEmpty ? "none" : record.gpus.joined(separator: ","))
            up in        \(String(format: "%.1f", Date().timeIntervalSince(started))) s
            ssh          ssh \(record.alias)  (works now)
            PyCharm      dbgbox ide pycharm \(record.name)  (SSH interpreter values; tick "Parse config file ~/.ssh/config")
            VS Code      code --folder-uri vscode-remote://ssh-remote+\(record.alias)\(user.home)  (or: dbgbox ide vscode \(record.name))
            remove it    dbgbox down \(record.name)  (\(input.attachTo == nil ? "cancels the job" : "ends the step; your job keeps running"))
            """)
        fflush(nil)
    }
}
