import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Background tunnels of `dbgbox up`: `dbgbox tunnel` re-executed from /proc/self/exe as a
/// detached `ChildProcess` (a session of its own, its output appended to the session's log),
/// ready once its log says `ready:`.
public struct DetachedTunnels: SessionTunnelControl {
    /// Where the tunnels go: the login host, the node, and the chain's ssh flags (-F,
    /// --known-hosts, -i, --node-via) as `up` recorded them.
    public struct Target: Sendable, Equatable {
        public var login: String
        public var node: String
        public var flags: [String]

        public init(login: String, node: String, flags: [String]) {
            self.login = login
            self.node = node
            self.flags = flags
        }
    }

    public var target: Target
    public var readyTimeout: TimeInterval = 15
    public var stopTimeout: TimeInterval = 4
    /// A signal while waiting for the tunnel to be ready stops it and throws `Interrupted`.
    public var interruption: Interruption?
    public var ports: LocalPortFinder = LoopbackPortFinder()
    public var files: FileSystem = LocalFileSystem()
    public var inspector: ProcessInspector = ProcFSInspector()
    public var executable: @Sendable () throws -> String = SelfExecutable.path

    public init(target: Target, interruption: Interruption?, context: CommandContext) {
        self.target = target
        self.interruption = interruption
        self.files = context.files
    }

    public func localPort(preferring preferred: Int) throws -> Int {
        try ports.port(preferring: preferred)
    }

    /// The argv of the background tunnel.
    public func argv(executable: String, _ launch: TunnelLaunch) -> [String] {
        [executable, "tunnel", "--login", target.login, "--node", target.node, "--port", String(launch.targetPort),
         "--local-port", String(launch.localPort), "--quiet", "--session", launch.name] + target.flags
            + (launch.forwards?.tunnelFlags ?? [])
    }

    public func start(_ launch: TunnelLaunch) throws -> LaunchedTunnel {
        let exe = try executable()
        let child: ChildProcess
        do {
            child = try ChildProcess(argv(executable: exe, launch), stdin: .null,
                                     stdout: .file(launch.logFile), stderr: .file(launch.logFile), detached: true)
        } catch {
            throw DbgboxError("cannot start the tunnel: \(error)")
        }
        let deadline = Date().addingTimeInterval(readyTimeout)
        var startTime = inspector.startTime(of: child.pid)
        while true {
            if let signal = interruption?.signal {
                stop(pid: child.pid)
                throw Interrupted(signal: signal)
            }
            let text = (try? files.read(launch.logFile, as: .log)).map { String(decoding: $0, as: UTF8.self) } ?? ""
            if text.contains("ready: ") || text.hasPrefix("ready:") {
                if let startTime { return LaunchedTunnel(pid: child.pid, startTime: startTime) }
            }
            let exited = child.exitStatusIfDone() != nil
            if exited || Date() >= deadline {
                if !exited { stop(pid: child.pid) }
                let last = text.split(separator: "\n").last.map(String.init) ?? "no output"
                let why = exited ? "it exited" : "not ready within \(Int(readyTimeout)) s"
                throw DbgboxError("the tunnel did not come up (\(why)): \(last) (log: \(launch.logFile))")
            }
            if startTime == nil { startTime = inspector.startTime(of: child.pid) }
            Thread.sleep(forTimeInterval: 0.05)
        }
    }

    /// SIGTERM, up to `stopTimeout` for it to go, then SIGKILL. A child of ours is reaped.
    public func stop(pid: Int32) {
        guard pid > 0 else { return }
        kill(pid, SIGTERM)
        let deadline = Date().addingTimeInterval(stopTimeout)
        while Date() < deadline {
            if Self.reap(pid) || inspector.startTime(of: pid) == nil { return }
            Thread.sleep(forTimeInterval: 0.05)
        }
        kill(pid, SIGKILL)
        _ = Self.reap(pid)
    }

    /// Whether `pid` was a child of ours that has ended (and is now reaped).
    private static func reap(_ pid: Int32) -> Bool {
        var status: Int32 = 0
        return waitpid(pid, &status, WNOHANG) == pid
    }
}
