import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A container `up` made on the node, as the session needs it.
public struct SessionContainer: Sendable, Equatable {
    public var name: String
    /// Its sshd port on the node's 127.0.0.1.
    public var port: Int
    /// The login user inside the container.
    public var user: String
    public var image: String
    public var gpus: [String]
    public var expires: Date?
    /// The user's home inside the container.
    public var home: String?
    /// Its bind mounts (node path → container path), the home first.
    public var mounts: [PathMapping]
    /// The node the container runs on, as the login host reaches it, when only the container knows
    /// it (a scheduler job's node); nil: `UpRequest.node`.
    public var node: String?
    /// The scheduler job the container runs in.
    public var job: SessionJob?

    public init(name: String, port: Int, user: String, image: String, gpus: [String] = [], expires: Date? = nil,
                home: String? = nil, mounts: [PathMapping] = [], node: String? = nil, job: SessionJob? = nil) {
        self.name = name
        self.port = port
        self.user = user
        self.image = image
        self.gpus = gpus
        self.expires = expires
        self.home = home
        self.mounts = mounts
        self.node = node
        self.job = job
    }
}

/// The node side of a session (docker on the node, through the remote runner).
public protocol SessionNodeOperations {
    /// Makes sure the image exists (building it when it is missing and a base is known); returns it.
    func ensureImage() throws -> String
    /// Runs the container and pins its host key (on this machine, under `dbgbox-<name>`).
    func createContainer(image: String) throws -> SessionContainer
    /// Removes the container; succeeds when it is already gone.
    func removeContainer(_ name: String) throws
}

/// What a background tunnel is started with.
public struct TunnelLaunch: Sendable, Equatable {
    public var name: String
    public var targetPort: Int
    public var localPort: Int
    public var logFile: String
    /// The tunnel's forwarded ports and control channel (issue 15); nil: none.
    public var forwards: ForwardSetup?

    public init(name: String, targetPort: Int, localPort: Int, logFile: String, forwards: ForwardSetup? = nil) {
        self.name = name
        self.targetPort = targetPort
        self.localPort = localPort
        self.logFile = logFile
        self.forwards = forwards
    }
}

/// A started background tunnel: its pid and start time (clock ticks since boot).
public struct LaunchedTunnel: Sendable, Equatable {
    public var pid: Int32
    public var startTime: UInt64

    public init(pid: Int32, startTime: UInt64) {
        self.pid = pid
        self.startTime = startTime
    }
}

/// The laptop side of the tunnel.
public protocol SessionTunnelControl {
    /// `preferred` when it is free on this machine, else some free port.
    func localPort(preferring preferred: Int) throws -> Int
    /// Starts the detached tunnel and waits until it says ready. When it does not, it has been
    /// stopped again before this throws.
    func start(_ launch: TunnelLaunch) throws -> LaunchedTunnel
    /// Stops a tunnel `TunnelLiveness` found alive: SIGTERM, a few seconds' wait, then SIGKILL.
    func stop(pid: Int32)
}

/// Why `down` could not finish.
public enum SessionManagerError: UserFacingError, Equatable {
    case containerNotRemoved(session: String, container: String, why: String)
    case noSessions
    case ambiguous([String])
    case noSuchSession(String)
    /// `up` got SIGINT or SIGTERM and undid its steps (`undone`, in the order undone; `failed`:
    /// what could not be undone, with why).
    case interrupted(signal: Int32, undone: [String], failed: [String])
    /// A step of `up` failed and some of what was made could not be undone (`failed`, with why).
    case failedWithLeftovers(reason: String, failed: [String])

    public var exitCode: Int32 {
        if case .interrupted(let signal, _, _) = self { return 128 + signal }
        return 1
    }

    public var description: String {
        switch self {
        case .containerNotRemoved(let session, let container, let why):
            return "container \(container) of session \(session) could not be removed (\(why)); everything else is gone, the session record stays: run `dbgbox down \(session)` again when the node is reachable"
        case .noSessions:
            return "no dbgbox sessions (start one with dbgbox up)"
        case .ambiguous(let names):
            return "\(names.count) sessions are up (\(names.joined(separator: ", "))): name one, or use --all"
        case .noSuchSession(let name):
            return "no session named \(name) (see dbgbox status)"
        case .interrupted(let signal, let undone, let failed):
            let what = undone.isEmpty ? "nothing had been made" : "undid the " + undone.joined(separator: ", the ")
            guard !failed.isEmpty else { return "up interrupted by \(Interruption.name(signal)): \(what); nothing of the session is left" }
            return "up interrupted by \(Interruption.name(signal)): \(what); could not undo the \(failed.joined(separator: "; the ")): remove what is left with `dbgbox cleanup` (with --login and --node for the container)"
        case .failedWithLeftovers(let reason, let failed):
            return "\(reason); could not undo the \(failed.joined(separator: "; the ")): remove what is left with `dbgbox cleanup` (with --login and --node for the container)"
        }
    }
}

/// `dbgbox up` and `dbgbox down` as steps over the node, the tunnel and this machine's files.
/// Never prints; `progress` gets one short line per step.
///
/// `up` undoes every step it made, in reverse order, when a later one fails or when it is
/// interrupted (`interruption`: checked between steps). `down` tolerates every piece being gone
/// already (a dead tunnel, a removed container, a deleted block).
public struct SessionManager {
    public var store: SessionStore
    public var hostConfig: SSHClientConfigFile
    public var include: SSHConfigInclude
    /// dbgbox's pinned container host keys (`~/.ssh/dbgbox/known_hosts`).
    public var pinnedPath: String
    /// The user's known_hosts, cleaned of `[127.0.0.1]:PORT` / `[localhost]:PORT` by `down`.
    public var knownHostsPath: String
    /// Where tunnel logs and per-session option files live.
    public var stateDirectory: String
    public var liveness: TunnelLiveness
    public var fs: FileSystem
    public var clock: WallClock
    public var progress: (String) -> Void
    /// SIGINT/SIGTERM during `up`: nothing made yet ends the process; after that, `up` undoes its steps.
    public var interruption: Interruption?
    /// Called after each step of `up` with its name (image, container, tunnel, record, host block),
    /// before the interruption check: the test hook DBGBOX_TEST_PAUSE_AFTER waits here.
    /// A test may throw here to make that step fail.
    public var afterStep: (String) throws -> Void = { _ in }
    /// OpenSSH connection sharing for the Host blocks (nil: blocks without it). By default in
    /// `cm` beside the ssh config file.
    public var sharing: ConnectionSharing?

    public init(store: SessionStore, hostConfig: SSHClientConfigFile, include: SSHConfigInclude,
                pinnedPath: String, knownHostsPath: String, stateDirectory: String,
                liveness: TunnelLiveness = TunnelLiveness(), fs: FileSystem = LocalFileSystem(),
                clock: WallClock = SystemWallClock(), progress: @escaping (String) -> Void = { _ in }) {
        self.store = store
        self.hostConfig = hostConfig
        self.include = include
        self.pinnedPath = pinnedPath
        self.knownHostsPath = knownHostsPath
        self.stateDirectory = stateDirectory
        self.liveness = liveness
        self.fs = fs
        self.clock = clock
        self.progress = progress
        self.sharing = ConnectionSharing(directory: ConnectionSharing.defaultDirectory(config: hostConfig))
    }

    /// `<state>/dbgbox/tunnels` beside the sessions directory.
    public static func defaultStateDirectory(sessionsDirectory: String) -> String {
        (sessionsDirectory as NSString).deletingLastPathComponent + "/tunnels"
    }

    public func logPath(_ name: String) -> String { "\(stateDirectory)/\(name).log" }
    /// The options `down` needs to reach the node again (the ssh flags `up` was given).
    public func optionsPath(_ name: String) -> String { "\(stateDirectory)/\(name).options.json" }
    /// The tunnel's control socket (`dbgbox forward` talks to it; `ForwardControl`).
    public func controlPath(_ name: String) -> String { "\(stateDirectory)/\(name).sock" }

    public struct UpRequest: Sendable, Equatable {
        public var login: String?
        public var node: String?
        /// The private key for the Host block (absolute).
        public var identityFile: String
        /// Written to `optionsPath(name)` for `down`.
        public var options: Data?
        /// Start no background tunnel (the caller runs one in process).
        public var foreground: Bool
        /// Forwarded ports (LOCALs resolved: `PortForward.resolveLocals`).
        public var forwards: [PortForward]

        public init(login: String?, node: String?, identityFile: String, options: Data? = nil, foreground: Bool = false,
                    forwards: [PortForward] = []) {
            self.login = login
            self.node = node
            self.identityFile = identityFile
            self.options = options
            self.foreground = foreground
            self.forwards = forwards
        }
    }

    public struct UpResult: Sendable, Equatable {
        public var record: SessionRecord
        public var includeOutcome: SSHConfigInclude.EnsureOutcome
        /// What to tell the user about ~/.ssh/config, when anything.
        public var instruction: String?
    }

    public func up(_ request: UpRequest, node: SessionNodeOperations, tunnels: SessionTunnelControl) throws -> UpResult {
        var undo: [(String, () throws -> Void)] = []
        do {
            // A control socket directory dbgbox must not use is refused before anything is made.
            if let sharing, sharing.inspect(sharing.directory) != nil { try sharing.ensureDirectory() }
            progress("image")
            let image = try node.ensureImage()
            try checkpoint("image")
            // The container is the first thing to undo: from here an interruption is undone, not just ended.
            interruption?.beginUndoableSteps()
            progress("container")
            let container = try node.createContainer(image: image)
            let name = container.name
            try SessionName.validate(name)
            let alias = SessionName.alias(name)
            undo.append(("container \(name)", { try node.removeContainer(name) }))
            undo.append(("pinned host key", { _ = try PinnedHostKeys(path: pinnedPath, fs: fs).remove(alias: alias) }))

            if !fs.isDirectory(stateDirectory) { try fs.createDirectory(stateDirectory, mode: 0o700) }
            if let options = request.options {
                try fs.writeAtomically(options, to: optionsPath(name), mode: 0o600)
                undo.append(("options file", { try removeIfPresent(optionsPath(name)) }))
            }
            try checkpoint("container")
            let localPort = try tunnels.localPort(preferring: container.port)
            let log = logPath(name)
            var launched: LaunchedTunnel?
            if !request.foreground {
                progress("tunnel")
                undo.append(("tunnel log", { try removeIfPresent(log) }))
                let forwards = ForwardSetup(session: name, controlPath: controlPath(name), user: container.user,
                                            identityFile: request.identityFile, forwards: request.forwards)
                let started = try tunnels.start(TunnelLaunch(name: name, targetPort: container.port, localPort: localPort, logFile: log,
                                                             forwards: forwards))
                launched = started
                undo.append(("tunnel", { tunnels.stop(pid: started.pid) }))
                try checkpoint("tunnel")
            }

            let record = SessionRecord(
                name: name, container: name, login: request.login, node: container.node ?? request.node, gpus: container.gpus,
                targetPort: container.port, localPort: localPort, tunnelPID: launched?.pid,
                tunnelStartTime: launched?.startTime, created: clock.now(), expires: container.expires,
                image: container.image, user: container.user, identityFile: request.identityFile, logFile: log,
                home: container.home, mounts: container.mounts.isEmpty ? nil : container.mounts, job: container.job,
                forwards: request.forwards.isEmpty ? nil : request.forwards)
            try store.insert(record)
            undo.append(("session record", { try store.remove(name) }))
            try checkpoint("record")

            progress("host block")
            let controlPath = try sharing?.prepare(name: name)
            try hostConfig.upsert(SessionHostBlock(name: name, port: localPort, user: container.user,
                                                   identityFile: request.identityFile, knownHostsFile: pinnedPath,
                                                   controlPath: controlPath))
            undo.append(("Host block \(alias)", {
                sharing?.close(name: name)
                try hostConfig.remove(name: name)
            }))
            let outcome = try include.ensureInclude()
            try checkpoint("host block")
            return UpResult(record: record, includeOutcome: outcome, instruction: include.instruction(for: outcome))
        } catch {
            var undone: [String] = []
            var failed: [String] = []
            for (what, step) in undo.reversed() {
                do {
                    try step()
                    undone.append(what)
                } catch {
                    failed.append("\(what) (\(condense("\(error)", limit: 120)))")
                }
            }
            // The Include line goes once no block is left (a no-op when the block was never written).
            _ = try? include.removeIncludeIfUnused()
            if let signal = interruption?.signal ?? (error as? Interrupted)?.signal {
                // The interrupted step's own undo came first (a job submitted, then cancelled).
                let byStep = (error as? Interrupted)?.undone ?? []
                throw SessionManagerError.interrupted(signal: signal, undone: byStep + undone, failed: failed)
            }
            // Whatever failed, the user hears what is left (an unexpected error as much as a known one).
            if !failed.isEmpty { throw SessionManagerError.failedWithLeftovers(reason: "\(error)", failed: failed) }
            throw error
        }
    }

    /// After a step of `up`: the test hook, then whether a signal arrived.
    private func checkpoint(_ step: String) throws {
        try afterStep(step)
        try interruption?.check()
    }

    public struct DownReport: Sendable, Equatable {
        public var name: String
        public var tunnel: TunnelState
        /// Whether a live tunnel was stopped.
        public var stoppedTunnel = false
        public var removedHostBlock = false
        /// Whether a control socket (a live master's or a stale one) was there and is gone.
        public var closedMaster = false
        public var removedPinnedKey = false
        public var knownHostsEntries: [RemovedKnownHostsEntry] = []
        /// What to tell the user about ~/.ssh/config, when anything.
        public var instruction: String?
    }

    /// Tears the session down. `node` is asked for only once the tunnel is stopped (connecting
    /// may fail: then the rest is still cleaned, the record stays, and this throws).
    public func down(_ record: SessionRecord, node: () throws -> SessionNodeOperations,
                     tunnels: SessionTunnelControl) throws -> DownReport {
        let name = record.name
        var report = DownReport(name: name, tunnel: liveness.state(of: record))
        // The ssh master first: it rides the tunnel, and must not outlive the session.
        report.closedMaster = sharing?.close(name: name) ?? false
        if report.tunnel == .alive, let pid = record.tunnelPID {
            progress("tunnel")
            tunnels.stop(pid: pid)
            report.stoppedTunnel = true
        }
        progress("container")
        var containerError: String?
        do {
            try node().removeContainer(record.container)
        } catch {
            containerError = "\(error)"
        }
        report.removedPinnedKey = fs.exists(pinnedPath)
            ? try PinnedHostKeys(path: pinnedPath, fs: fs).remove(alias: record.alias) : false
        report.removedHostBlock = try hostConfig.remove(name: name)
        if let sharing, try hostConfig.names().isEmpty { rmdir(sharing.directory) }
        report.instruction = include.instruction(for: try include.removeIncludeIfUnused())
        report.knownHostsEntries = try KnownHostsFile(path: knownHostsPath, fs: fs)
            .remove(hosts: ["[127.0.0.1]:\(record.localPort)", "[localhost]:\(record.localPort)"])
        if let why = containerError {
            throw SessionManagerError.containerNotRemoved(session: name, container: record.container, why: why)
        }
        try removeIfPresent(record.logFile)
        try removeIfPresent(optionsPath(name))
        try removeIfPresent(controlPath(name))
        try store.remove(name)
        return report
    }

    /// The sessions `down` acts on: `name`, all with `all`, or the only one.
    public func select(name: String?, all: Bool) throws -> [SessionRecord] {
        let records = try store.list().records
        if let name {
            guard let record = try store.load(name) else { throw SessionManagerError.noSuchSession(name) }
            return [record]
        }
        if all { return records }
        guard !records.isEmpty else { throw SessionManagerError.noSessions }
        guard records.count == 1 else { throw SessionManagerError.ambiguous(records.map(\.name)) }
        return records
    }

    private func removeIfPresent(_ path: String) throws {
        if fs.exists(path) { try fs.remove(path) }
    }
}
