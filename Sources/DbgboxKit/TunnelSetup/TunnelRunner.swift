import Foundation
import SSH

/// Runs a tunnel in this process until a signal stops it: what `dbgbox tunnel` does, and
/// `dbgbox up --foreground` after the session is made (and the detached tunnel re-executes).
public struct TunnelRunner {
    public var context: CommandContext

    public init(context: CommandContext) {
        self.context = context
    }

    /// Plans the chain, listens, prints `ready: …` on stdout, and forwards until SIGINT/SIGTERM.
    /// `session`: the session of `dbgbox up` this tunnel serves, named in its log lines.
    /// `interruption`: the caller's, already watching (up's); without one, the tunnel watches
    /// from just before it starts (a signal before that ends dbgbox at once).
    /// `forwards`: the session's forwarded ports and control channel (their LOCALs are bound
    /// before `ready:`, so a taken one ends the tunnel with its error).
    public func run(_ request: TunnelRequest, session: String? = nil, quiet: Bool = false,
                    interruption: Interruption? = nil, forwards: ForwardSetup? = nil) throws {
        let (plan, me) = try ChainSetup.plan(request, context: context)
        if let warning = request.bindWarning { context.warn(warning) }
        let console = TunnelConsole(plan: plan, checker: ChainSetup.checker(request, context: context), user: me.name,
                                    session: session, live: !quiet && context.stderrIsTerminal, context: context)
        let tunnel = try Tunnel(configuration: plan.configuration, delegate: console)
        console.tunnel = tunnel
        let signals = interruption ?? context.interruption { signal in exit(128 + signal) }
        signals.beginUndoableSteps()
        signals.whenSignalled { _ in tunnel.stop() }
        defer { if interruption == nil { signals.stopWatching() } }
        let forwarder = try forwards.map { try startForwards($0, tunnel: tunnel, console: console) }
        defer {
            forwarder?.control.stop()
            forwarder?.forwarder.stop()
        }
        try tunnel.start()
        forwarder?.forwarder.begin()
        console.startStatus()
        MemoryTuning.releaseStartupPages()
        tunnel.run()
        console.finish()
    }
}

extension TunnelRunner {
    /// The forwarder of the session's ports and its control channel; the forwards' LOCALs bound.
    func startForwards(_ setup: ForwardSetup, tunnel: Tunnel, console: TunnelConsole)
        throws -> (forwarder: ContainerForwarder, control: ForwardControlServer) {
        let pinnedPath = PinnedHostKeys.defaultPath(home: try context.home())
        guard let pinned = try PinnedHostKeys(path: pinnedPath, fs: context.files).key(for: SessionName.alias(setup.session)) else {
            throw DbgboxError("no host key pinned for \(SessionName.alias(setup.session)) in \(pinnedPath): run `dbgbox down \(setup.session)` and `dbgbox up …` again")
        }
        let target = ContainerForwarder.Target(session: setup.session, targetPort: console.plan.configuration.targetPort,
                                               user: setup.user, identityFile: setup.identityFile, pinned: pinned)
        let forwarder = try ContainerForwarder(target: target, tunnel: tunnel) { [weak console] in console?.line($0) }
        try forwarder.add(setup.forwards, wait: false)
        let control: ForwardControlServer
        do {
            control = try ForwardControlServer(path: setup.controlPath) { forwarder.handle($0) }
        } catch {
            forwarder.stop()
            throw DbgboxError("cannot open the forwards' control socket \(setup.controlPath): \(error)")
        }
        return (forwarder, control)
    }
}

/// Prints the tunnel's events and live status, and checks host keys for it.
final class TunnelConsole: TunnelDelegate, @unchecked Sendable {
    let plan: TunnelPlan
    let checker: HostKeyChecker
    let user: String
    let session: String?
    let live: Bool
    let context: CommandContext
    weak var tunnel: Tunnel?
    private let lock = NSLock()
    private var announced = false
    private var statusTimer: DispatchSourceTimer?
    private var statusShown = false
    private var log = TunnelEventLog()

    init(plan: TunnelPlan, checker: HostKeyChecker, user: String, session: String?, live: Bool, context: CommandContext) {
        self.plan = plan
        self.checker = checker
        self.user = user
        self.session = session
        self.live = live
        self.context = context
    }

    func verifyHostKey(hop: TunnelHop, role: TunnelHopRole, key: HostKey) throws {
        try checker.check(plan.hop(role), key: key)
    }

    func tunnelEvent(_ event: TunnelEvent) {
        switch event {
        case .ready(let listening):
            let config = plan.configuration
            let line = "ready: \(listening) → \(plan.node.hop.host) → \(config.targetHost):\(config.targetPort)"
            lock.lock()
            let first = !announced
            announced = true
            lock.unlock()
            if first {
                let port = listening.split(separator: ":").last.map(String.init) ?? String(config.localPort)
                // stdout is the result (scripts read it); the sink writes it unbuffered.
                context.write("\(line)\nconnect with: ssh -p \(port) \(user)@127.0.0.1\n")
            } else {
                for text in lock.withLock({ log.lines(for: event) }) { note(text) }
            }
        case .hopDown, .reconnecting:
            for text in lock.withLock({ log.lines(for: event) }) { note(text) }
        case .connectionRefused(let peer, let reason):
            let config = plan.configuration
            note(TunnelEventLog.refusedLine(peer: peer, reason: reason, target: "\(config.targetHost):\(config.targetPort)",
                                            session: session))
        case .hopUp, .connectionOpened, .connectionClosed:
            break
        }
    }

    /// A status line on the terminal, rewritten once a second.
    func startStatus() {
        guard live else { return }
        let timer = DispatchSource.makeTimerSource(queue: DispatchQueue.global())
        timer.schedule(deadline: .now() + 1, repeating: 1)
        timer.setEventHandler { [weak self] in self?.drawStatus() }
        timer.resume()
        statusTimer = timer
    }

    private func drawStatus() {
        guard let stats = tunnel?.stats else { return }
        let hops = "login \(stats.loginUp ? "up" : "down"), node \(stats.nodeUp ? "up" : "down")"
        let text = "\(hops) | \(stats.openConnections) open, \(stats.totalConnections) total | ↑ \(Self.bytes(stats.bytesUp)) ↓ \(Self.bytes(stats.bytesDown))"
        lock.lock(); defer { lock.unlock() }
        context.stderr.write(Data("\r\u{1B}[K\(text)".utf8))
        statusShown = true
    }

    /// A line of the forwarder's (`dbgbox: …` on stderr, the session's log).
    func line(_ text: String) { note(text) }

    private func note(_ text: String) {
        lock.lock(); defer { lock.unlock() }
        let prefix = statusShown ? "\r\u{1B}[K" : ""
        statusShown = false
        context.stderr.write(Data("\(prefix)dbgbox: \(text)\n".utf8))
    }

    func finish() {
        statusTimer?.cancel()
        note("tunnel closed")
    }

    static func bytes(_ n: UInt64) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var value = Double(n)
        var unit = 0
        while value >= 1024 && unit < units.count - 1 { value /= 1024; unit += 1 }
        return unit == 0 ? "\(n) B" : String(format: "%.1f %@", value, units[unit])
    }
}
