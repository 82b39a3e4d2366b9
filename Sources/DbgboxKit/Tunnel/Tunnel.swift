import CLibSSH2
import Foundation
import SSH
#if canImport(Glibc)
import Glibc
#endif

/// The chained tunnel: 127.0.0.1:LOCAL → SSH session to the login host → SSH session to the node
/// inside a channel of the first → a direct-tcpip channel per local connection from the node to
/// targetHost:targetPort. In process, on libssh2, no shell on any hop.
///
/// Threads: the login hop (TCP socket, login session, carrier channel) runs on its own thread;
/// the node hop (node session, listener, client sockets and their channels) runs on the thread
/// that calls `run()`. They exchange bytes through two bounded, locked queues. While one hop's
/// thread sleeps, the other may do that hop's pass itself for small messages (`HandOverCoordinator`): one
/// thread wake-up per direction instead of two.
///
/// Usage: `try start()` (binds, connects both hops once, throws a hop-naming `TunnelError`),
/// then `run()` (blocks, forwards, reconnects with backoff when a hop dies, until `stop()`).
///
/// While the hops are down, new local connections are accepted and closed at once (clients see
/// an immediate EOF rather than hanging); the listening socket stays open throughout.
public final class Tunnel: @unchecked Sendable {
    public let configuration: TunnelConfiguration
    private weak var delegate: TunnelDelegate?

    private let lock = NSLock()
    private var _stats = TunnelStats()
    private var stopRequested = false
    private var listener: Int32 = -1
    private var generation: Generation?
    private var connectionCounter = 0
    /// Wakes whichever thread is waiting (setup waits, the node loop, the backoff sleep).
    private let control: WakeFD

    /// The port the listener is bound to (useful with `localPort: 0`); 0 before `start()`.
    public private(set) var localPort: Int = 0

    /// Throws only when the process has no file descriptor left for the tunnel's wake fd.
    public init(configuration: TunnelConfiguration, delegate: TunnelDelegate) throws {
        self.configuration = configuration
        self.delegate = delegate
        control = try WakeFD()
    }

    deinit {
        if listener >= 0 { Glibc.close(listener) }
    }

    /// Counters, safe from any thread.
    public var stats: TunnelStats {
        var stats = lock.withLock { _stats }
        stats.handOvers = handOvers.value
        return stats
    }
    private let handOvers = HandOverCounter()

    /// Binds the listener and connects both hops. Throws `TunnelError`: `.localPort` when the
    /// port is taken, or an error naming the hop that failed (unreachable, host key refused,
    /// authentication failed, forwarding refused). On error nothing stays open.
    public func start() throws {
        LibSSH2.ensureInitialized()
        MemoryTuning.apply()
        let config = configuration
        do {
            if config.listens {
                listener = try SocketIO.listen(address: config.bindAddress, port: UInt16(clamping: config.localPort))
            }
        } catch let error as SocketIO.ListenError {
            let hint = error.errno == EADDRINUSE ? ": another program uses this port; choose another local port" : ""
            throw TunnelError(kind: .localPort, role: nil, hopName: nil,
                              detail: "cannot listen on \(config.bindAddress):\(config.localPort): \(error.message)\(hint)")
        }
        if listener >= 0 { localPort = Int(SocketIO.localPort(of: listener)) }
        do {
            let first = try connect(firstAttempt: true)
            lock.withLock { generation = first }
        } catch {
            if listener >= 0 { Glibc.close(listener) }
            listener = -1
            throw error
        }
        report(.ready(listening: "\(config.bindAddress):\(localPort)"))
    }

    /// Forwards connections until `stop()`; reconnects with backoff when a hop dies. Returns
    /// after a clean shutdown (channels closed, sessions disconnected, listener closed).
    public func run() {
        var backoff = Backoff()
        var lastError: String?
        while !isStopping {
            if let gen = generation {
                let end = gen.forwarder.run()
                teardown(gen)
                // `stop()` reads it from other threads.
                lock.withLock { generation = nil }
                setHops(login: false, node: false)
                switch end {
                case .stopped:
                    break
                case .failed(let role, let reason):
                    let hop = role == .login ? configuration.login : configuration.node
                    report(.hopDown(role, label: hop.label, endpoint: hop.endpoint, reason: reason))
                    lastError = "\(hop.label) \(hop.endpoint): \(reason)"
                    backoff.reset()
                }
                continue
            }
            let delay = backoff.next()
            report(.reconnecting(attempt: backoff.attempt, delay: delay, lastError: lastError))
            refuseWhileDown(for: delay)
            if isStopping { break }
            do {
                let next = try connect(firstAttempt: false)
                lock.withLock { generation = next }
                lock.withLock { _stats.reconnects += 1 }
                report(.ready(listening: "\(configuration.bindAddress):\(localPort)"))
            } catch {
                lastError = "\(error)"
            }
        }
        if listener >= 0 { Glibc.close(listener); listener = -1 }
    }

    /// Opens a channel on the node session from any thread: an exec channel for a remote command,
    /// or a direct-tcpip channel from the node (see `NodeChannel`). The node hop's thread opens
    /// and drives it beside the forwarded connections. Throws when the hops are not connected
    /// (before `start()`, while reconnecting, after `stop()`); a hop that goes down later ends the
    /// channel with `.failed`.
    /// `eventWake`: signalled whenever the channel has an event, for a caller that polls.
    public func openNodeChannel(_ kind: NodeChannel.Kind, eventWake: WakeFD? = nil) throws -> NodeChannel {
        try submit(NodeChannel(kind: kind, wakeEngine: control, eventWake: eventWake))
    }

    /// A direct-tcpip channel from the node to host:port that carries a nested SSH session: the
    /// session runs on `handle.transport` (see `NodeChannel.transport`), whose queues the node hop
    /// fills and drains directly. `eventWake` hears the channel's end.
    public func openCarrier(host: String, port: Int, eventWake: WakeFD) throws -> NodeChannel {
        try submit(NodeChannel(kind: .directTCPIP(host: host, port: port), wakeEngine: control, eventWake: eventWake, carrying: true))
    }

    private func submit(_ handle: NodeChannel) throws -> NodeChannel {
        guard let forwarder = lock.withLock({ generation?.forwarder }), forwarder.submit(handle) else {
            throw TunnelError(kind: .disconnected, role: .node, hopName: nil, detail: "the node hop is not connected")
        }
        return handle
    }

    /// Asks `run()` (or a `start()` in progress) to shut down. Thread-safe; returns at once.
    public func stop() {
        lock.withLock { stopRequested = true }
        control.signal()
        lock.withLock { generation }?.pumpWakeForStop()
    }

    private var isStopping: Bool { lock.withLock { stopRequested } }

    private func report(_ event: TunnelEvent) { delegate?.tunnelEvent(event) }

    private func setHops(login: Bool, node: Bool) {
        lock.withLock {
            _stats.loginUp = login
            _stats.nodeUp = node
            if !login || !node { _stats.openConnections = 0 }
        }
    }

    /// Sleeps `seconds`, accepting and closing local connections meanwhile; `stop()` wakes it.
    private func refuseWhileDown(for seconds: Double) {
        let deadline = monotonicNow() + seconds
        while !isStopping {
            let left = deadline - monotonicNow()
            if left <= 0 { return }
            var fds = [pollfd(fd: control.fd, events: Int16(POLLIN), revents: 0),
                       pollfd(fd: listener, events: Int16(POLLIN), revents: 0)]
            _ = poll(&fds, 2, Int32(left * 1000) + 1)
            while let (fd, peer) = SocketIO.accept(listener) {
                Glibc.close(fd)
                report(.connectionRefused(peer: peer, reason: "the tunnel is reconnecting"))
            }
        }
    }

    // MARK: connecting

    /// One connected pair of hops and their threads.
    final class Generation {
        let loginSession: NonBlockingSSHSession
        let carrier: SSHChannel
        let pump: LoginPump
        let nodeSession: NonBlockingSSHSession
        let coordinator: HandOverCoordinator
        var forwarder: NodeForwarder!

        init(loginSession: NonBlockingSSHSession, carrier: SSHChannel, pump: LoginPump, nodeSession: NonBlockingSSHSession,
             coordinator: HandOverCoordinator) {
            self.loginSession = loginSession
            self.carrier = carrier
            self.pump = pump
            self.nodeSession = nodeSession
            self.coordinator = coordinator
        }

        func pumpWakeForStop() { pump.wake.signal() }
    }

    private func teardown(_ gen: Generation) {
        // The login thread may still try a pass of the node hop (it finds it ended and does
        // nothing, but takes the hop's wake flags under the hop's lock): the disconnect writes
        // to the node session, so it holds that lock too.
        gen.coordinator.lock(.node)
        gen.nodeSession.disconnect()
        gen.coordinator.unlock(.node)
        gen.pump.requestStop()
        gen.pump.join()
        gen.nodeSession.free()
        gen.loginSession.free()
        Glibc.close(gen.loginSession.transport.fd)
    }

    /// Thrown by waiters; mapped to a hop-naming TunnelError.
    private struct WaitFailure: Error {
        var kind: TunnelError.Kind
        var detail: String
    }

    private func connect(firstAttempt: Bool) throws -> Generation {
        let config = configuration
        let login = config.login
        let node = config.node
        let deadline = monotonicNow() + config.connectTimeout

        // Login hop: TCP, handshake, host key, authentication.
        let tcpTimeout = firstAttempt ? config.connectTimeout : min(config.connectTimeout, 3)
        let fd: Int32
        do {
            fd = try SocketIO.connectTCP(host: login.host, port: UInt16(clamping: login.port), timeout: tcpTimeout)
        } catch let error as SSHError {
            throw TunnelError(error.kind == .timeout ? .timeout : .unreachable, .login, login, "cannot connect: \(error.message)")
        }
        SocketIO.setKeepalive(fd, idle: max(1, config.keepaliveInterval), interval: max(1, config.keepaliveInterval / 3),
                              count: 3, userTimeout: config.deadPeerTimeout)
        let tcp = SessionTransport(tcpSocket: fd, outboxHighWater: FlowPolicy.tcpOutboxHighWater, readAheadSize: FlowPolicy.tcpReadAhead)
        let loginSession: NonBlockingSSHSession
        do {
            loginSession = try NonBlockingSSHSession(transport: tcp, waiter: tcpWaiter(deadline: deadline))
        } catch {
            Glibc.close(fd)
            throw TunnelError(.handshake, .login, login, "\(error)")
        }
        var pump: LoginPump?
        var nodeSession: NonBlockingSSHSession?
        var success = false
        defer {
            if !success {
                if let pump { pump.requestStop(); pump.join() }
                nodeSession?.free()
                loginSession.free()
                Glibc.close(fd)
            }
        }
        try establish(loginSession, hop: login, role: .login)
        report(.hopUp(.login, label: login.label, endpoint: login.endpoint))

        // The carrier: a channel from the login host to the node's sshd.
        let carrier: SSHChannel
        var isExec = false
        do {
            switch config.nodeVia {
            case .direct:
                let message = DirectTCPIP.openMessage(host: node.host, port: UInt32(node.port), originatorHost: "127.0.0.1", originatorPort: 0)
                carrier = try loginSession.openChannel(type: DirectTCPIP.channelType, window: FlowPolicy.carrierWindow,
                                                      packetSize: FlowPolicy.carrierPacket, message: message)
            case .exec(let argv):
                isExec = true
                carrier = try loginSession.openChannel(type: "session", window: FlowPolicy.carrierWindow, packetSize: FlowPolicy.carrierPacket, message: [])
                try carrier.exec(shellQuote(argv))
            }
        } catch let failure as WaitFailure {
            throw TunnelError(failure.kind, .login, login, failure.detail)
        } catch let error as SSHError {
            if isExec { throw TunnelError(.forwarding, .login, login, "cannot start the forwarding command: \(error.message)") }
            if error.code == LIBSSH2_ERROR_CHANNEL_FAILURE {
                // The login host tried and could not connect (or forwarding is not allowed there).
                throw TunnelError(.unreachable, .node, node, "the login host \(login.endpoint) cannot connect to it: \(error.message)")
            }
            throw TunnelError(.forwarding, .login, login, "cannot open a channel to the node \(node.endpoint): \(error.message)")
        }

        // The node hop, inside the carrier; the pump thread moves its bytes from now on.
        let pumpWake = try WakeFD()
        let nodeTransport = try SessionTransport(carrierWake: pumpWake, highWater: FlowPolicy.queueHighWater)
        let coordinator = HandOverCoordinator(nodeTransport: nodeTransport, loginWake: pumpWake, counter: handOvers)
        let thePump = LoginPump(session: loginSession, carrier: carrier, node: nodeTransport, wake: pumpWake,
                                nodeWake: control, isExec: isExec, coordinator: coordinator)
        pump = thePump
        loginSession.waiter = { _ in throw WaitFailure(kind: .disconnected, detail: "login session used off its thread") }
        thePump.start()
        let theNode = try NonBlockingSSHSession(transport: nodeTransport, waiter: carrierWaiter(deadline: deadline, pump: thePump))
        nodeSession = theNode
        do {
            try establish(theNode, hop: node, role: .node)
        } catch let error as TunnelError where thePump.finished && error.kind != .stopped {
            // The carrier died under the handshake: say why (e.g. ssh -W's error).
            throw TunnelError(.forwarding, .node, node, "cannot reach it through the login host: \(thePump.failure ?? error.detail)")
        }
        theNode.configureKeepalive(interval: config.keepaliveInterval)
        report(.hopUp(.node, label: node.label, endpoint: node.endpoint))
        setHops(login: true, node: true)

        let gen = Generation(loginSession: loginSession, carrier: carrier, pump: thePump, nodeSession: theNode,
                             coordinator: coordinator)
        let openMessage = DirectTCPIP.openMessage(host: config.targetHost, port: UInt32(config.targetPort),
                                                  originatorHost: "127.0.0.1", originatorPort: 0)
        gen.forwarder = NodeForwarder(
            session: theNode, pump: thePump, coordinator: coordinator, listener: listener, control: control, openMessage: openMessage,
            shouldStop: { [unowned self] in self.isStopping },
            report: { [weak self] in self?.report($0) },
            publish: { [weak self] open, new, up, down in
                guard let self else { return }
                self.lock.withLock {
                    self._stats.openConnections = open
                    self._stats.totalConnections += new
                    self._stats.bytesUp += up
                    self._stats.bytesDown += down
                }
            },
            nextID: { [unowned self] in self.lock.withLock { self.connectionCounter += 1; return self.connectionCounter } })
        // From now on the two hop threads may do each other's passes (see `HandOverCoordinator`).
        coordinator.attach(node: gen.forwarder)
        // Has the node's sshd set TCP_NODELAY on its side of this connection (`FlowPolicy`
        // says why). Runs beside the forwarding; if the node refuses it, nothing else changes.
        if let noDelay = try? NodeChannel(kind: .exec(command: FlowPolicy.nodeNoDelayCommand), wakeEngine: control) {
            _ = gen.forwarder.submit(noDelay)
        }
        success = true
        return gen
    }

    /// Handshake, host key check, authentication, keepalive: one hop.
    private func establish(_ session: NonBlockingSSHSession, hop: TunnelHop, role: TunnelHopRole) throws {
        do {
            try session.handshake()
        } catch let failure as WaitFailure {
            throw TunnelError(failure.kind, role, hop, failure.detail)
        } catch let error as SSHError {
            throw TunnelError(.handshake, role, hop, "SSH handshake failed: \(error.message)")
        }
        guard let key = session.hostKey else { throw TunnelError(.handshake, role, hop, "the server presented no host key") }
        do {
            try delegate?.verifyHostKey(hop: hop, role: role, key: key)
        } catch {
            throw TunnelError(.hostKey, role, hop, "host key not accepted: \(error)")
        }
        try authenticate(session, hop: hop, role: role)
        if role == .login { session.configureKeepalive(interval: configuration.keepaliveInterval) }
    }

    /// The hop's credentials (`HopAuthenticator`; nobody is asked: the tunnel runs unattended).
    private func authenticate(_ session: NonBlockingSSHSession, hop: TunnelHop, role: TunnelHopRole) throws {
        let failure: HopAuthenticator.Failure
        do {
            guard let refused = try HopAuthenticator(hop: hop, allowsPassword: false).logIn(session) else { return }
            failure = refused
        } catch let failure as WaitFailure {
            throw TunnelError(failure.kind, role, hop, failure.detail)
        } catch let error as SSHError {
            throw TunnelError(.disconnected, role, hop, "connection lost during authentication: \(error.message)")
        }
        let tried = failure.attempts.map { attempt -> String in
            var label = attempt.label
            if case .keyFile(let path) = attempt.method { label = Self.tildePath(path) }
            return attempt.note.map { "\(label) (\($0))" } ?? label
        }
        let with = tried.isEmpty ? "no credentials (no ssh-agent, no identity file)" : tried.joined(separator: ", ")
        var detail = "authentication failed for user \(hop.user) with \(with)"
        if !failure.advice.isEmpty {
            let advice = failure.advice.map { line -> String in
                guard let colon = line.range(of: ": ") else { return line }
                return Self.tildePath(String(line[..<colon.lowerBound])) + line[colon.lowerBound...]
            }
            detail += "; " + advice.joined(separator: "; ") + " and authorize the new key on this host"
        }
        throw TunnelError(.authentication, role, hop, detail)
    }

    static func tildePath(_ path: String) -> String {
        guard let home = ProcessInfo.processInfo.environment["HOME"], !home.isEmpty, path.hasPrefix(home + "/") else { return path }
        return "~" + path.dropFirst(home.count)
    }

    /// Setup-time waiting on the login session's own socket.
    private func tcpWaiter(deadline: Double) -> (NonBlockingSSHSession) throws -> Void {
        { [unowned self] session in
            let transport = session.transport
            guard transport.flush() else {
                throw WaitFailure(kind: .disconnected, detail: "connection lost: \(String(cString: strerror(transport.socketError)))")
            }
            if transport.socketError == -1 { throw WaitFailure(kind: .disconnected, detail: "connection closed by the server") }
            try self.waitReadable([transport.fd], writable: transport.outbox.isEmpty ? nil : transport.fd, deadline: deadline)
        }
    }

    /// Setup-time waiting on the node session's inbox (the pump thread fills it).
    private func carrierWaiter(deadline: Double, pump: LoginPump) -> (NonBlockingSSHSession) throws -> Void {
        { [unowned self] session in
            if pump.finished && session.transport.inbox.isEmpty {
                throw WaitFailure(kind: .forwarding, detail: "cannot reach it through the login host: \(pump.failure ?? "the carrier closed")")
            }
            try self.waitReadable([session.transport.fd], writable: nil, deadline: deadline)
            session.transport.inboxWake?.drain()
        }
    }

    private func waitReadable(_ fds: [Int32], writable: Int32?, deadline: Double) throws {
        if isStopping { throw WaitFailure(kind: .stopped, detail: "stopped while connecting") }
        let left = deadline - monotonicNow()
        if left <= 0 { throw WaitFailure(kind: .timeout, detail: "no answer within \(Int(configuration.connectTimeout)) s") }
        var pfds = fds.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
        if let writable { pfds.append(pollfd(fd: writable, events: Int16(POLLOUT), revents: 0)) }
        pfds.append(pollfd(fd: control.fd, events: Int16(POLLIN), revents: 0))
        _ = poll(&pfds, nfds_t(pfds.count), Int32(min(left, 1) * 1000) + 1)
        if isStopping { throw WaitFailure(kind: .stopped, detail: "stopped while connecting") }
    }
}
