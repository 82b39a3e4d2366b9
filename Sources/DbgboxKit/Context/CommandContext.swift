import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The process-wide things every command works with, resolved in one place: who runs dbgbox
/// (the passwd entry, $HOME), this machine's files and programs, the clock, the terminal
/// (prompts, stdout, stderr), signals, and the way to the node (here, or through the chain).
///
/// `live()` wires the real ones; tests build one with fakes (a runner, a file system, a clock,
/// sinks that keep what is written, a `connect` that returns a fake node). Commands take it in
/// `run(_:)` and ask the Kit's services with it; nothing below the commands reaches for a global.
public struct CommandContext: Sendable {
    /// The process environment ($HOME, $XDG_STATE_HOME, DBGBOX_TEST_PAUSE_AFTER, …).
    public var environment: [String: String]
    public var realUID: UInt32
    public var users: UserDirectory
    /// Programs on this machine (docker when acting locally, `code`, ssh-keygen).
    public var runner: ProcessRunner
    /// This machine's files: keys, known_hosts, config.yaml, session records.
    public var files: FileSystem & DirectoryListing
    public var clock: WallClock
    public var stdout: OutputSink
    public var stderr: OutputSink
    public var prompter: Prompter
    public var workingDirectory: String
    public var hostName: String
    /// Whether stderr is a terminal (the tunnel's live status line).
    public var stderrIsTerminal: Bool
    /// Whether commands watch SIGINT/SIGTERM (off in tests, which send none).
    public var watchesSignals: Bool
    /// Opens the chain to the node for remote docker (`--login`/`--node`); tests return a fake node.
    public var connect: @Sendable (TunnelRequest, CommandContext) throws -> NodeEnvironment
    /// Opens the login host alone, where a scheduler's commands run (`login(_:)`); tests return a fake.
    public var connectLogin: @Sendable (TunnelRequest, CommandContext) throws -> NodeEnvironment
    /// The background tunnels of `up` and `down`; tests give fakes.
    public var tunnels: @Sendable (DetachedTunnels.Target, Interruption?, CommandContext) -> SessionTunnelControl

    public init(environment: [String: String], realUID: UInt32, users: UserDirectory, runner: ProcessRunner,
                files: FileSystem & DirectoryListing, clock: WallClock, stdout: OutputSink, stderr: OutputSink, prompter: Prompter,
                workingDirectory: String, hostName: String, stderrIsTerminal: Bool = false, watchesSignals: Bool = false,
                connect: @escaping @Sendable (TunnelRequest, CommandContext) throws -> NodeEnvironment = ChainSetup.open,
                connectLogin: @escaping @Sendable (TunnelRequest, CommandContext) throws -> NodeEnvironment = ChainSetup.openLogin,
                tunnels: @escaping @Sendable (DetachedTunnels.Target, Interruption?, CommandContext) -> SessionTunnelControl
                    = { DetachedTunnels(target: $0, interruption: $1, context: $2) }) {
        self.environment = environment
        self.realUID = realUID
        self.users = users
        self.runner = runner
        self.files = files
        self.clock = clock
        self.stdout = stdout
        self.stderr = stderr
        self.prompter = prompter
        self.workingDirectory = workingDirectory
        self.hostName = hostName
        self.stderrIsTerminal = stderrIsTerminal
        self.watchesSignals = watchesSignals
        self.connect = connect
        self.connectLogin = connectLogin
        self.tunnels = tunnels
    }

    /// The real process: its environment, uid, passwd, files, terminal and signals.
    public static func live() -> CommandContext {
        let terminal = TerminalPrompter()
        return CommandContext(
            environment: ProcessInfo.processInfo.environment, realUID: getuid(), users: SystemUserDirectory(),
            runner: LocalProcessRunner(), files: LocalFileSystem(), clock: SystemWallClock(),
            stdout: StandardStreamSink(.stdout), stderr: StandardStreamSink(.stderr),
            prompter: terminal.isInteractive ? terminal : NoPrompter(),
            workingDirectory: FileManager.default.currentDirectoryPath, hostName: Self.systemHostName(),
            stderrIsTerminal: isatty(STDERR_FILENO) != 0, watchesSignals: true)
    }

    static func systemHostName() -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count) == 0 else { return "localhost" }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    // MARK: Identity

    /// The passwd entry of the user running dbgbox.
    public func me() throws -> UserIdentity { try users.entry(uid: realUID) }

    /// The user to act for on this machine: the invoking user, or `--user NAME` (root only).
    public func identity(requested: String?) throws -> UserIdentity {
        try UserIdentity.resolve(requested: requested, realUID: realUID, users: users)
    }

    /// The laptop's dot files: $HOME when absolute (as ssh and keygen use), else the passwd home.
    public func home() throws -> String {
        if let home = environment["HOME"], home.hasPrefix("/") {
            return home.count > 1 && home.hasSuffix("/") ? String(home.dropLast()) : home
        }
        return try me().home
    }

    /// Where the dot files of the user acted for live (keys, known_hosts, config): $HOME when acting
    /// for yourself, as ssh and `dbgbox keygen` do; with --user, that user's passwd home; with a
    /// node, this machine's user's (`user` is then the node's). The container mounts the passwd
    /// home, which is what the image was built with.
    public func dotHome(for user: UserIdentity, requestedUser: String?, remote: Bool) -> String {
        if requestedUser == nil, let home = environment["HOME"], home.hasPrefix("/") { return home }
        if remote, let me = try? me() { return me.home }
        return user.home
    }

    // MARK: Files and configuration

    /// A path the user typed, absolute (`~` is $HOME; a relative one is under the working directory).
    public func absolute(_ path: String) -> String {
        if path.hasPrefix("/") { return path }
        if path == "~" || path.hasPrefix("~/") { return (environment["HOME"] ?? "") + path.dropFirst() }
        return workingDirectory + "/" + path
    }

    /// `~/.config/dbgbox/config.yaml` under `home` (an absent file is the built-ins).
    public func config(home: String) throws -> DbgboxConfig {
        try DbgboxConfig.load(path: DbgboxConfig.defaultPath(home: home), fs: files)
    }

    /// `up`, `down`, `status` and `ide`'s view of the sessions under `home`.
    public func sessionManager(home: String, progress: @escaping (String) -> Void = { _ in }) throws -> SessionManager {
        let passwdHome = (try? me().home) ?? home
        let hostConfig = SSHClientConfigFile(path: SSHClientConfigFile.defaultPath(home: home), fs: files)
        // ssh expands ~ from the passwd entry: with another $HOME, the Include names the file absolutely.
        let target = home == passwdHome ? SSHConfigInclude.defaultTarget : hostConfig.path
        let include = SSHConfigInclude(home: passwdHome, dbgboxConfig: hostConfig, userConfigPath: "\(home)/.ssh/config",
                                       includeTarget: target, fs: files)
        let store = SessionStore(directory: SessionStore.defaultDirectory(environment: environment, home: home), fs: files)
        return SessionManager(store: store, hostConfig: hostConfig, include: include,
                              pinnedPath: PinnedHostKeys.defaultPath(home: home),
                              knownHostsPath: "\(home)/.ssh/known_hosts",
                              stateDirectory: SessionManager.defaultStateDirectory(sessionsDirectory: store.directory),
                              fs: files, clock: clock, progress: progress)
    }

    /// Run by root for `--user NAME`, files dbgbox created in that user's home must be theirs.
    public func giveToUser(_ user: UserIdentity, paths: [String]) {
        for path in paths where files.exists(path) {
            _ = chown(path, user.uid, user.gid)
        }
    }

    // MARK: The node

    /// Where docker runs: this machine without a chain, else the node through a fresh chain
    /// (close it with `close()`).
    public func node(_ chain: TunnelRequest?) throws -> NodeEnvironment {
        guard let chain else {
            let context = self
            return .local(runner: runner, identity: { try context.identity(requested: $0) })
        }
        return try connect(chain, self)
    }

    /// The container domain on `node`, with this context's files and clock.
    public func containers(_ node: NodeEnvironment) -> ContainerService {
        ContainerService(docker: DockerClient(runner: node.runner), fs: files, clock: clock, portProbe: node.portProbe)
    }

    // MARK: Signals

    /// SIGINT and SIGTERM, watched from now on (see `Interruption`); `nothingMade` ends the process
    /// while nothing needs undoing.
    public func interruption(nothingMade: @escaping @Sendable (Int32) -> Void) -> Interruption {
        let interruption = Interruption(nothingMade: nothingMade)
        if watchesSignals { interruption.watch([SIGINT, SIGTERM]) }
        return interruption
    }

    /// SIGINT and SIGTERM for a command that makes things step by step (`up`): until its first
    /// undoable step, a signal ends dbgbox at once with `dbgbox: error: WHAT interrupted by SIGNAL:
    /// nothing had been made` and exit 128+signal; from then on the command undoes its steps.
    public func interruption(ending what: String) -> Interruption {
        let stderr = self.stderr
        return interruption { signal in
            stderr.write(Data("dbgbox: error: \(what) interrupted by \(Interruption.name(signal)): nothing had been made\n".utf8))
            _exit(128 + signal)
        }
    }

    // MARK: Output

    /// One line on stdout.
    public func say(_ line: String) {
        stdout.write(Data((line + "\n").utf8))
    }

    /// Text on stdout as it is.
    public func write(_ text: String) {
        stdout.write(Data(text.utf8))
    }

    /// `dbgbox: warning: …`, one line, on stderr.
    public func warn(_ message: String) {
        stderr.write(Data("dbgbox: warning: \(OneLine.message(message))\n".utf8))
    }

    /// `dbgbox: error: …`, one line, on stderr (the command then exits non-zero).
    public func error(_ message: String) {
        stderr.write(Data("dbgbox: error: \(OneLine.message(message))\n".utf8))
    }

    /// `dbgbox: …` on stderr: progress and events.
    public func note(_ message: String) {
        stderr.write(Data("dbgbox: \(message)\n".utf8))
    }

    /// One JSON value on stdout, keys sorted (the stable shape scripts read).
    public func printJSON<T: Encodable>(_ value: T) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        say(String(decoding: try encoder.encode(value), as: UTF8.self))
    }
}
