import ArgumentParser
import DbgboxKit
import Foundation
import SSH
#if canImport(Glibc)
import Glibc
#endif

/// `dbgbox tunnel`: 127.0.0.1:LOCAL → login host → node → 127.0.0.1:PORT, in process.
struct TunnelCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tunnel",
        abstract: "Forward a local port to a container's sshd through the login host and the node.",
        discussion: """
        Each connection to 127.0.0.1:LOCAL is carried through an SSH session to the login host, a \
        second SSH session to the node inside the first, and a channel from the node to \
        127.0.0.1:PORT, where the container publishes its sshd. One process, libssh2, no shell on \
        any hop. HOST may be a Host alias from ~/.ssh/config (HostName, User, Port and IdentityFile \
        are resolved as `ssh -G` does). Host keys are checked on every hop against known_hosts.
        Example: dbgbox tunnel --login alice@login.cluster --node gpu07 --port 2201
        """)

    @Option(help: ArgumentHelp("The login host: [USER@]HOST[:PORT] or a Host alias.", valueName: "host"))
    var login: String

    @Option(help: ArgumentHelp("The node, as the login host reaches it: [USER@]HOST[:PORT] or a Host alias.", valueName: "host"))
    var node: String

    @Option(help: ArgumentHelp("The container's port on the node's 127.0.0.1.", valueName: "port"))
    var port: Int

    @Option(help: ArgumentHelp("The local port (default: the same as --port).", valueName: "port"))
    var localPort: Int?

    @Option(name: .customShort("i"), help: ArgumentHelp("An identity file for both hops (repeatable).", valueName: "key"))
    var identity: [String] = []

    @Option(help: ArgumentHelp("An identity file for the login host only (repeatable).", valueName: "key"))
    var loginKey: [String] = []

    @Option(help: ArgumentHelp("An identity file for the node only (repeatable).", valueName: "key"))
    var nodeKey: [String] = []

    @Option(help: ArgumentHelp("How the login host reaches the node: direct (a forwarded channel) or exec (`ssh -W` run on the login host).", valueName: "direct|exec"))
    var nodeVia: String = "direct"

    @Flag(help: "Append an unknown host key to known_hosts (one line) instead of refusing it.")
    var acceptNew = false

    @Option(help: ArgumentHelp("Check and record host keys in this file instead of ~/.ssh/known_hosts.", valueName: "file"))
    var knownHosts: String?

    @Option(help: ArgumentHelp("The local address to listen on (one other than 127.0.0.1, ::1 or localhost gets a warning: it opens the port to the network).", valueName: "addr"))
    var bind: String = "127.0.0.1"

    @Option(name: .customShort("F"), help: ArgumentHelp("The ssh config file to read instead of ~/.ssh/config.", valueName: "file"))
    var sshConfig: String?

    @Flag(help: "No live status line; events only.")
    var quiet = false

    /// The session of `dbgbox up` this tunnel serves (up passes it): named in its log lines.
    @Option(help: .hidden)
    var session: String?

    func validate() throws {
        guard TunnelRequest.NodeVia(rawValue: nodeVia) != nil else {
            throw DbgboxError("--node-via \(nodeVia): use direct or exec")
        }
    }

    func run() throws {
        let request = TunnelRequest(
            login: try HostSpec(parsing: login), node: try HostSpec(parsing: node),
            targetPort: port, localPort: localPort, bindAddress: bind,
            identityFiles: identity, loginIdentityFiles: loginKey, nodeIdentityFiles: nodeKey,
            nodeVia: TunnelRequest.NodeVia(rawValue: nodeVia) ?? .direct,
            acceptNew: acceptNew, knownHostsFile: knownHosts, sshConfigFile: sshConfig)
        let (plan, prompter, me) = try Self.makePlan(request)
        if let warning = request.bindWarning { ContainerWiring.warn(warning) }
        let checker = HostKeyChecker(prompter: prompter, knownHostsOverride: knownHosts, acceptNew: acceptNew)
        let console = TunnelConsole(plan: plan, checker: checker, user: me.name, session: session,
                                    live: !quiet && isatty(STDERR_FILENO) != 0)
        let tunnel = try DbgboxKit.Tunnel(configuration: plan.configuration, delegate: console)
        console.tunnel = tunnel
        let signals = SignalWatcher([SIGINT, SIGTERM]) { tunnel.stop() }
        defer { signals.cancel() }
        try tunnel.start()
        console.startStatus()
        MemoryTuning.releaseStartupPages()
        tunnel.run()
        console.finish()
    }

    /// Resolves both hops as ssh would, asks for key passphrases, and prints config warnings:
    /// shared by `tunnel` and every command that takes --login/--node.
    static func makePlan(_ request: TunnelRequest) throws -> (TunnelPlan, Prompter, UserIdentity) {
        guard let me = UserIdentity.lookup(uid: getuid()) else {
            throw DbgboxError("uid \(getuid()) has no passwd entry: dbgbox needs a user name and home directory")
        }
        // ssh expands ~ from the passwd entry, not $HOME; so does the resolver.
        let resolver = SSHConfigResolver(home: me.home, userName: me.name, localHostName: hostName())
        var plan = try TunnelPlanner(resolver: resolver, home: me.home).plan(request)
        let prompter: Prompter = TerminalPrompter().isInteractive ? TerminalPrompter() : NoPrompter()
        try askPassphrases(&plan, prompter: prompter)
        for warning in plan.login.resolved.warnings + plan.node.resolved.warnings {
            FileHandle.standardError.write(Data("dbgbox: warning: \(warning)\n".utf8))
        }
        return (plan, prompter, me)
    }

    /// Asks for the passphrase of each encrypted key; without a terminal such keys are dropped
    /// when something else can authenticate, and refused otherwise.
    static func askPassphrases(_ plan: inout TunnelPlan, prompter: Prompter) throws {
        var asked: [String: String] = [:]
        func fill(_ hop: inout PlannedHop) throws {
            var credentials: [TunnelCredential] = []
            for credential in hop.hop.credentials {
                guard case .keyFile(let path, _) = credential, hop.encryptedKeys.contains(path) else {
                    credentials.append(credential)
                    continue
                }
                if let known = asked[path] {
                    credentials.append(.keyFile(path: path, passphrase: known))
                } else if prompter.isInteractive, let secret = prompter.secret("Enter passphrase for key '\(path)': ") {
                    asked[path] = secret
                    credentials.append(.keyFile(path: path, passphrase: secret))
                }
            }
            if credentials.isEmpty, let first = hop.encryptedKeys.first {
                throw TunnelSetupError.missingPassphrase(path: first)
            }
            hop.hop.credentials = credentials
        }
        try fill(&plan.login)
        try fill(&plan.node)
        plan.configuration.login = plan.login.hop
        plan.configuration.node = plan.node.hop
    }

    static func hostName() -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        gethostname(&buffer, buffer.count)
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

/// Prints the tunnel's events and live status, and checks host keys for it.
final class TunnelConsole: TunnelDelegate, @unchecked Sendable {
    let plan: TunnelPlan
    let checker: HostKeyChecker
    let user: String
    let session: String?
    let live: Bool
    weak var tunnel: DbgboxKit.Tunnel?
    private let lock = NSLock()
    private var announced = false
    private var statusTimer: DispatchSourceTimer?
    private var statusShown = false
    private var log = TunnelEventLog()

    init(plan: TunnelPlan, checker: HostKeyChecker, user: String, session: String? = nil, live: Bool) {
        self.plan = plan
        self.checker = checker
        self.user = user
        self.session = session
        self.live = live
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
                // stdout is the result (scripts read it); write it unbuffered.
                FileHandle.standardOutput.write(Data("\(line)\nconnect with: ssh -p \(port) \(user)@127.0.0.1\n".utf8))
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
        FileHandle.standardError.write(Data("\r\u{1B}[K\(text)".utf8))
        statusShown = true
    }

    private func note(_ text: String) {
        lock.lock(); defer { lock.unlock() }
        let prefix = statusShown ? "\r\u{1B}[K" : ""
        statusShown = false
        FileHandle.standardError.write(Data("\(prefix)dbgbox: \(text)\n".utf8))
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

/// Runs `handler` (once per signal) when one of `signals` arrives; the default action is off
/// while it watches.
final class SignalWatcher {
    private var sources: [DispatchSourceSignal] = []

    init(_ signals: [Int32], handler: @escaping @Sendable () -> Void) {
        for number in signals {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: DispatchQueue.global())
            source.setEventHandler(handler: handler)
            source.resume()
            sources.append(source)
        }
    }

    func cancel() {
        sources.forEach { $0.cancel() }
    }
}
