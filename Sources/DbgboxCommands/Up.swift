import ArgumentParser
import DbgboxKit
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// `dbgbox up`: image (if missing) → container on the node → background tunnel → Host block.
struct Up: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Bring up a container on a node and make `ssh dbgbox-NAME` reach it through a tunnel.",
        discussion: """
        Builds the image on the node if it is missing (with --base, or base: in \
        ~/.config/dbgbox/config.yaml), creates the container, starts `dbgbox tunnel` as a detached \
        background process (log and record in $XDG_STATE_HOME/dbgbox), writes the Host block \
        dbgbox-NAME into ~/.ssh/dbgbox/config and makes ~/.ssh/config include it. Values not given \
        on the command line come from config.yaml (--profile, then defaults). \
        Anything failing midway, or Ctrl-C/SIGTERM, undoes what was done (exit 130/143 when \
        interrupted). Remove it all with dbgbox down.
        Example: dbgbox up --login alice@login.cluster --node gpu07 --gpu V --port auto
        With --scheduler slurm|pbs (no --node): the job script goes to sbatch/qsub on the login host \
        (on stdin); while the job waits, one line shows its state (Ctrl-C cancels it); the job runs \
        the container on its node with exactly its GPUs and removes it when the job ends; dbgbox then \
        pins the container's host key, starts the tunnel to that node and writes the Host block. \
        dbgbox down cancels the job. With --job ID: the container starts in a running Slurm job you \
        hold (srun --overlap), and down leaves the job running.
        Example: dbgbox up --scheduler slurm --login alice@login.cluster --gpus 1 --time 2h
        """)

    @Option(help: "A profile letter (P, V, G, GT, …), GPU ids such as 0,2, or none (default: none).")
    var gpu: String?

    @Option(help: "The node port for ssh (1024-65535), or auto (default).")
    var port: String?

    @Option(name: .customLong("mount"), help: "Bind mounts as \"SRC:DST;SRC:DST\" (absolute paths on the node).")
    var mountLists: [String] = []

    @Option(name: [.customShort("v"), .customLong("volume")], help: "A bind mount SRC:DST[:ro]; repeatable.")
    var volumes: [String] = []

    @Option(help: "A local base image on the node to build the image from when it is missing.")
    var base: String?

    @Option(help: "The image (default: <user>/ssh:latest).")
    var image: String?

    @Option(help: "How long the container lives: 12h, 90m, 30s, 1d, or 0 for no limit.")
    var ttl: String?

    @Option(help: "The public key to authorize (default: ~/.ssh/id_dbgbox.pub); its private half goes into the Host block.")
    var key: String?

    @Option(help: "A profile of ~/.config/dbgbox/config.yaml.")
    var profile: String?

    @Option(name: .customLong("gpu-runtime"), help: "How GPUs reach docker: gpus (--gpus) or nvidia (--runtime nvidia).")
    var gpuRuntime: String = GPURuntime.gpus.rawValue

    @Flag(help: "Run the tunnel in this process (Ctrl-C ends it and removes the session).")
    var foreground = false

    @OptionGroup(title: "The cluster") var remote: RemoteOptions

    // MARK: issue 14, scheduler sessions (begin)
    @Option(help: ArgumentHelp("Start the container in a new scheduler job: slurm or pbs (with --login; no --node: the node is the job's).", valueName: "slurm|pbs"))
    var scheduler: String?

    @Option(help: ArgumentHelp("GPUs the job asks for (Slurm --gres=gpu:N, PBS -l select=1:ngpus=N; default 1).", valueName: "n"))
    var gpus: String?

    @Option(help: ArgumentHelp("The job's time limit: 90m, 2h, 1d, or Slurm's MM, HH:MM:SS, D-HH:MM… The container's TTL never exceeds it.", valueName: "duration"))
    var time: String?

    @Option(help: ArgumentHelp("The Slurm partition or PBS queue.", valueName: "name"))
    var partition: String?

    @Option(name: .customLong("job-arg"), parsing: .unconditionalSingleValue,
            help: ArgumentHelp("An argument for sbatch/qsub, verbatim (repeatable), e.g. --job-arg=--account=proj1.", valueName: "arg"))
    var jobArgs: [String] = []

    @Option(help: ArgumentHelp("Attach to a running Slurm job you hold (salloc, sbatch): the container starts inside it with its GPUs (srun --jobid ID --overlap).", valueName: "id"))
    var job: String?
    // MARK: issue 14 (end)

    func run() throws {
        guard let me = UserIdentity.lookup(uid: getuid()) else {
            throw DbgboxError("uid \(getuid()) has no passwd entry: dbgbox needs a user name and home directory")
        }
        let home = SessionWiring.home(me)
        let config = try DbgboxConfig.load(path: DbgboxConfig.defaultPath(home: home))
        let settings = DbgboxSettings(login: remote.login, node: remote.node, key: key, image: image, base: base,
                                      gpu: gpu, mounts: mountLists.isEmpty && volumes.isEmpty ? nil : mountLists,
                                      port: port, ttl: ttl)
            .filling(from: try config.settings(profile: profile))
        // MARK: issue 14, scheduler sessions: one call into the Kit's flow (begin)
        let jobSettings = DbgboxSettings(scheduler: scheduler, partition: partition, time: time, gpus: gpus)
            .filling(from: try config.settings(profile: profile))
        if let input = try SchedulerUpInput.parse(
            scheduler: scheduler, job: job, settings: jobSettings, nodeGiven: remote.node != nil, gpu: settings.gpu,
            runtime: GPURuntime(rawValue: gpuRuntime) ?? .gpus, jobArguments: jobArgs, profiles: config.gpuProfiles) {
            guard GPURuntime(rawValue: gpuRuntime) != nil else {
                throw DbgboxError("--gpu-runtime '\(gpuRuntime)' is unknown: use gpus or nvidia")
            }
            if foreground { throw DbgboxError("--foreground does not go with --scheduler or --job: the session runs in the background; remove it with dbgbox down") }
            return try runScheduled(input, settings: settings, config: config, me: me, home: home)
        }
        // MARK: issue 14 (end)
        guard let login = settings.login, let nodeName = settings.node else {
            throw DbgboxError("up needs --login and --node (or login: and node: in \(DbgboxConfig.defaultPath(home: home)))")
        }
        guard let runtime = GPURuntime(rawValue: gpuRuntime) else {
            throw DbgboxError("--gpu-runtime '\(gpuRuntime)' is unknown: use gpus or nvidia")
        }
        let ttlValue = try TTL.parse(settings.ttl ?? TTL.defaultText)
        let portRequest = try PortRequest.parse(settings.port ?? "auto")
        if let image = settings.image { try ImageReference.validateImage(image) }
        let keyPath = settings.key.map(ContainerWiring.absolute) ?? AuthorizedKey.defaultPath(home: home)
        let authorized = try AuthorizedKey.load(path: keyPath, fs: LocalFileSystem())
        let identityFile = keyPath.hasSuffix(".pub") ? String(keyPath.dropLast(4)) : keyPath

        var options = remote
        options.login = login
        options.node = nodeName
        let flags = SessionWiring.remoteFlags(options)
        let started = Date()
        let stderr = StandardStreamSink(.stderr)
        let manager = SessionWiring.manager(home: home) { step in
            stderr.write(Data("dbgbox: up: \(step) (\(String(format: "%.1f", Date().timeIntervalSince(started))) s)\n".utf8))
        }

        // Ctrl-C or SIGTERM from here on: before the container exists, dbgbox just ends (a build on
        // the node ends with the connection); after, `up` undoes what it made and exits 128+signal.
        // Watched before the node connection starts its thread, so that every thread blocks them.
        let interruption = Interruption { signal in
            FileHandle.standardError.write(Data("dbgbox: error: up interrupted by \(Interruption.name(signal)): nothing had been made\n".utf8))
            _exit(128 + signal)
        }
        interruption.watch([SIGINT, SIGTERM])
        defer { interruption.stopWatching() }
        let (runner, node) = try options.environment()
        defer { node.close() }
        let operations = NodeOperations(
            runner: runner, node: node, home: home, gpuRequest: settings.gpu ?? "none", runtime: runtime,
            config: config, portRequest: portRequest, ttl: ttlValue, mountLists: mountLists,
            // config.yaml's mounts are -v values, each (used when the command line gives none).
            volumes: mountLists.isEmpty && volumes.isEmpty ? (settings.mounts ?? []) : volumes,
            authorizedKeyLine: authorized.line, image: settings.image, base: settings.base)
        var tunnels = DetachedTunnels(login: login, node: nodeName, flags: flags)
        let optionsData = try JSONEncoder().encode(SessionOptions(flags: flags))

        var steps = manager
        steps.interruption = interruption
        steps.afterStep = Self.testPause(interruption)
        tunnels.interruption = interruption
        let result: SessionManager.UpResult
        do {
            defer { interruption.stopWatching() }
            result = try steps.up(SessionManager.UpRequest(login: login, node: nodeName, identityFile: identityFile,
                                                           options: optionsData, foreground: foreground),
                                  node: operations, tunnels: tunnels)
        }
        let record = result.record
        if let instruction = result.instruction { ContainerWiring.warn(instruction) }
        print("""
            session      \(record.name) (container on \(nodeName), port \(record.targetPort) → 127.0.0.1:\(record.localPort) here)
            up in        \(String(format: "%.1f", Date().timeIntervalSince(started))) s
            ssh          ssh \(record.alias)  (works now)
            PyCharm      dbgbox ide pycharm \(record.name)  (SSH interpreter values; tick "Parse config file ~/.ssh/config")
            VS Code      code --folder-uri vscode-remote://ssh-remote+\(record.alias)\(me.home)  (or: dbgbox ide vscode \(record.name))
            remove it    dbgbox down \(record.name)
            """)
        fflush(nil)
        guard foreground else { return }
        // In process: the tunnel runs until Ctrl-C, then the session goes.
        let command = try TunnelCommand.parse(["--login", login, "--node", nodeName, "--port", String(record.targetPort),
                                               "--local-port", String(record.localPort), "--session", record.name] + flags)
        var tunnelError: Error?
        do { try command.run() } catch { tunnelError = error }
        var quiet = manager
        quiet.progress = { _ in }
        _ = try quiet.down(record, node: { operations }, tunnels: tunnels)
        if let tunnelError { throw tunnelError }
    }
}

extension Up {
    /// Test only: with DBGBOX_TEST_PAUSE_AFTER=STEP (image, container, tunnel, record or host block),
    /// `up` says so on stderr and waits after that step until a signal arrives (at most 60 s), so a
    /// test can interrupt it at a known point.
    static func testPause(_ interruption: Interruption) -> (String) -> Void {
        guard let pauseAfter = ProcessInfo.processInfo.environment["DBGBOX_TEST_PAUSE_AFTER"], !pauseAfter.isEmpty else {
            return { _ in }
        }
        return { step in
            guard step == pauseAfter else { return }
            FileHandle.standardError.write(Data("dbgbox: up: paused after \(step) (DBGBOX_TEST_PAUSE_AFTER, for tests)\n".utf8))
            let deadline = Date().addingTimeInterval(60)
            while interruption.signal == nil && Date() < deadline { usleep(20_000) }
        }
    }
}

/// The ssh flags `up` was given, kept for `down` (and passed to the tunnel).
struct SessionOptions: Codable {
    var flags: [String]
}

enum SessionWiring {
    /// The laptop's dot files: $HOME when absolute (as ssh and keygen use), else the passwd home.
    static func home(_ me: UserIdentity) -> String {
        if let home = ProcessInfo.processInfo.environment["HOME"], home.hasPrefix("/") {
            return home.count > 1 && home.hasSuffix("/") ? String(home.dropLast()) : home
        }
        return me.home
    }

    static func manager(home: String, progress: @escaping (String) -> Void = { _ in }) -> SessionManager {
        let passwdHome = UserIdentity.lookup(uid: getuid())?.home ?? home
        let hostConfig = SSHClientConfigFile(path: SSHClientConfigFile.defaultPath(home: home))
        // ssh expands ~ from the passwd entry: with another $HOME, the Include names the file absolutely.
        let target = home == passwdHome ? SSHConfigInclude.defaultTarget : hostConfig.path
        let include = SSHConfigInclude(home: passwdHome, dbgboxConfig: hostConfig, userConfigPath: "\(home)/.ssh/config",
                                       includeTarget: target)
        let store = SessionStore(directory: SessionStore.defaultDirectory(home: home))
        return SessionManager(store: store, hostConfig: hostConfig, include: include,
                              pinnedPath: PinnedHostKeys.defaultPath(home: home),
                              knownHostsPath: "\(home)/.ssh/known_hosts",
                              stateDirectory: SessionManager.defaultStateDirectory(sessionsDirectory: store.directory),
                              progress: progress)
    }

    /// RemoteOptions' ssh flags (not --login/--node), paths made absolute.
    static func remoteFlags(_ r: RemoteOptions) -> [String] {
        var flags: [String] = []
        if let config = r.sshConfig { flags += ["-F", ContainerWiring.absolute(config)] }
        if let known = r.knownHosts { flags += ["--known-hosts", ContainerWiring.absolute(known)] }
        for identity in r.identity { flags += ["-i", ContainerWiring.absolute(identity)] }
        if r.nodeVia != "direct" { flags += ["--node-via", r.nodeVia] }
        return flags
    }
}

/// docker on the node for `up` and `down`.
final class NodeOperations: SessionNodeOperations {
    let runner: ProcessRunner
    let node: NodeEnvironment
    let home: String
    var gpuRequest = "none"
    var runtime = GPURuntime.gpus
    var config = DbgboxConfig()
    var portRequest = PortRequest.auto
    var ttl = TTL(seconds: 0)
    var mountLists: [String] = []
    var volumes: [String] = []
    var authorizedKeyLine = ""
    var image: String?
    var base: String?

    init(runner: ProcessRunner, node: NodeEnvironment, home: String) {
        self.runner = runner
        self.node = node
        self.home = home
    }

    convenience init(runner: ProcessRunner, node: NodeEnvironment, home: String, gpuRequest: String, runtime: GPURuntime,
                     config: DbgboxConfig, portRequest: PortRequest, ttl: TTL, mountLists: [String], volumes: [String],
                     authorizedKeyLine: String, image: String?, base: String?) {
        self.init(runner: runner, node: node, home: home)
        self.gpuRequest = gpuRequest
        self.runtime = runtime
        self.config = config
        self.portRequest = portRequest
        self.ttl = ttl
        self.mountLists = mountLists
        self.volumes = volumes
        self.authorizedKeyLine = authorizedKeyLine
        self.image = image
        self.base = base
    }

    private var identity: UserIdentity?
    func user() throws -> UserIdentity {
        if let identity { return identity }
        let found = try node.identity(requested: nil)
        identity = found
        return found
    }

    func ensureImage() throws -> String {
        let user = try user()
        let name = image ?? ContainerCreateRequest.defaultImage(for: user)
        let docker = DockerClient(runner: runner)
        if try docker.imageLabels(name) != nil { return name }
        guard let base else {
            throw DbgboxError("image \(name) is missing on \(node.name): give --base IMAGE (a local image on the node) to build it, or set base: in ~/.config/dbgbox/config.yaml")
        }
        let service = ImageService(docker: docker)
        let prepared = try service.prepare(ImageCreateRequest(base: base, name: name, identity: user), requireBase: true)
        let stderr = StandardStreamSink(.stderr)
        stderr.write(Data("dbgbox: building \(prepared.name) from \(base) on \(node.name)\n".utf8))
        try service.build(prepared, output: stderr)
        return prepared.name
    }

    func createContainer(image: String) throws -> SessionContainer {
        let user = try user()
        var mounts: [BindMount] = []
        for list in mountLists { mounts += try BindMount.parseList(list, fs: node.files) }
        for volume in volumes { mounts.append(try BindMount.parseVolume(volume, fs: node.files)) }
        try ContainerSpec.checkMountTargets(mounts, home: user.home)
        let request = try GPURequest.parse(gpuRequest, profiles: config.gpuProfiles)
        let selection: GPUSelection
        do {
            var env: [String: String] = [:]
            if case .profile = request { env = try node.gpuVariables() }
            selection = try GPUResolver(profiles: config.gpuProfiles, environment: env, runner: runner, fs: node.files)
                .resolve(request, runtime: runtime)
        } catch { throw node.explain(error) }
        for warning in selection.warnings { ContainerWiring.warn(warning) }
        let created = try ContainerWiring.service(node).create(
            ContainerCreateRequest(user: user, image: image, gpu: selection, port: portRequest, mounts: mounts,
                                   authorizedKeyLine: authorizedKeyLine, ttl: ttl),
            pinnedPath: PinnedHostKeys.defaultPath(home: home))
        let spec = created.spec
        return SessionContainer(name: spec.name, port: Int(spec.port), user: spec.user.name, image: spec.image,
                                gpus: spec.gpu.deviceIDs, expires: spec.expires, home: spec.user.home,
                                mounts: spec.allMounts.map { PathMapping(source: $0.source, target: $0.target) })
    }

    /// `docker rm -f`; a container already gone is fine.
    func removeContainer(_ name: String) throws {
        try DockerClient(runner: runner).forceRemove(name)
    }
}

/// Background tunnels: `dbgbox tunnel` re-executed from /proc/self/exe in its own session.
struct DetachedTunnels: SessionTunnelControl {
    var login: String
    var node: String
    var flags: [String]
    var readyTimeout: TimeInterval = 15
    var stopTimeout: TimeInterval = 4
    /// A signal while waiting for the tunnel to be ready stops it and throws `Interrupted`.
    var interruption: Interruption?

    func localPort(preferring preferred: Int) throws -> Int {
        if let port = UInt16(exactly: preferred), BindPortProbe().isFree(port) { return preferred }
        return try Self.freePort()
    }

    static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw DbgboxError("no socket for a free local port: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = 0
        addr.sin_addr = in_addr(s_addr: UInt32(0x7f00_0001).bigEndian)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &addr) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0
            }
        }
        guard ok else { throw DbgboxError("no free local port: \(String(cString: strerror(errno)))") }
        return Int(UInt16(bigEndian: addr.sin_port))
    }

    static func executable() throws -> String {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard n > 0 else { throw DbgboxError("cannot find dbgbox's own executable (/proc/self/exe): \(String(cString: strerror(errno)))") }
        return String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    func start(_ launch: TunnelLaunch) throws -> LaunchedTunnel {
        let exe = try Self.executable()
        let argv = [exe, "tunnel", "--login", login, "--node", node, "--port", String(launch.targetPort),
                    "--local-port", String(launch.localPort), "--quiet", "--session", launch.name] + flags
        let pid = try Self.spawnDetached(argv, executable: exe, log: launch.logFile)
        let inspector = ProcFSInspector()
        let deadline = Date().addingTimeInterval(readyTimeout)
        var startTime = inspector.startTime(of: pid)
        while true {
            if let signal = interruption?.signal {
                stop(pid: pid)
                throw Interrupted(signal: signal)
            }
            let text = (try? LocalFileSystem().read(launch.logFile, as: .log)).map { String(decoding: $0, as: UTF8.self) } ?? ""
            if text.contains("ready: ") || text.hasPrefix("ready:") {
                if let startTime { return LaunchedTunnel(pid: pid, startTime: startTime) }
            }
            var status: Int32 = 0
            let exited = waitpid(pid, &status, WNOHANG) == pid
            if exited || Date() >= deadline {
                if !exited { stop(pid: pid) }
                let last = text.split(separator: "\n").last.map(String.init) ?? "no output"
                let why = exited ? "it exited" : "not ready within \(Int(readyTimeout)) s"
                throw DbgboxError("the tunnel did not come up (\(why)): \(last) (log: \(launch.logFile))")
            }
            if startTime == nil { startTime = inspector.startTime(of: pid) }
            usleep(50_000)
        }
    }

    func stop(pid: Int32) {
        guard pid > 0 else { return }
        kill(pid, SIGTERM)
        let deadline = Date().addingTimeInterval(stopTimeout)
        while Date() < deadline {
            var status: Int32 = 0
            if waitpid(pid, &status, WNOHANG) == pid { return }
            if ProcFSInspector().startTime(of: pid) == nil { return }
            usleep(50_000)
        }
        kill(pid, SIGKILL)
        var status: Int32 = 0
        _ = waitpid(pid, &status, WNOHANG)
    }

    /// posix_spawn with setsid: stdin /dev/null, stdout and stderr appended to `log`.
    static func spawnDetached(_ argv: [String], executable: String, log: String) throws -> Int32 {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, log, O_WRONLY | O_CREAT | O_APPEND, 0o600)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        // Nothing else of ours (the node connection, a caller's pipes) goes to the tunnel.
        // (glibc 2.34's posix_spawn_file_actions_addclosefrom_np, which the Swift overlay does not export.)
        typealias CloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32
        if let symbol = dlsym(nil, "posix_spawn_file_actions_addclosefrom_np") {
            _ = unsafeBitCast(symbol, to: CloseFrom.self)(&actions, 3)
        }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var defaults = sigset_t()
        sigemptyset(&defaults)
        sigaddset(&defaults, SIGPIPE)
        sigaddset(&defaults, SIGINT)
        sigaddset(&defaults, SIGTERM)
        sigaddset(&defaults, SIGHUP)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attributes, &empty)
        // POSIX_SPAWN_SETSID (glibc 2.26+) is 0x80; the Swift overlay does not export it.
        let setsid: Int32 = 0x80
        posix_spawnattr_setflags(&attributes, Int16(Int32(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK) | setsid))
        let env = ProcessInfo.processInfo.environment.map { "\($0.key)=\($0.value)" }
        var pid: pid_t = 0
        let cArgs = argv.map { strdup($0) } + [nil]
        let cEnv = env.map { strdup($0) } + [nil]
        defer { cArgs.forEach { free($0) }; cEnv.forEach { free($0) } }
        let rc = posix_spawn(&pid, executable, &actions, &attributes, cArgs, cEnv)
        guard rc == 0 else { throw DbgboxError("cannot start the tunnel: \(String(cString: strerror(rc)))") }
        return pid
    }
}
