import CLibSSH2
import Foundation
import SSH
#if canImport(Glibc)
import Glibc
#endif

/// A session's forwarded ports, in its tunnel process (issue 15): a libssh2 session into the
/// container's sshd (the host key checked against the pin `up` wrote, logged in with the session's
/// key through `HopAuthenticator`), carried by a direct-tcpip `NodeChannel` of the engine's node
/// session to 127.0.0.1:targetPort on the node. No ssh process, no port on the node.
///
/// - A forward: a listener on the laptop's 127.0.0.1:LOCAL (bound when the forward is added, and
///   kept across reconnects, like the tunnel's own); each connection becomes a direct-tcpip channel
///   of the container session to 127.0.0.1:PORT there.
/// - A reverse: `libssh2_channel_forward_listen_ex` on the container session (127.0.0.1:PORT
///   there); each connection it hands over is connected to the laptop's 127.0.0.1:LOCAL.
///
/// One thread (`forwarder`) owns the container session and every channel and socket of it, under
/// libssh2's rules (one open at a time, EAGAIN calls repeated as they were). It starts with the first
/// forward. When the node hop goes down, the carrier fails: the connections end, and the thread
/// opens a new container session on the tunnel's next generation (backoff 0.25 s doubling to 2 s);
/// listeners stay open meanwhile (connections wait in their backlog) and reverses are asked for again.
///
/// Other threads (the control channel, `ForwardControlServer`) change the set of forwards through
/// `add` and `remove`, which answer once the change took effect (a reverse: once the container
/// listens, or refused).
public final class ContainerForwarder: @unchecked Sendable {
    /// Where the container session goes and who logs in.
    public struct Target: Sendable {
        public var session: String
        /// The container's sshd port on the node's 127.0.0.1.
        public var targetPort: Int
        public var user: String
        public var identityFile: String
        /// The host key pinned for dbgbox-NAME.
        public var pinned: SSHPublicKey

        public init(session: String, targetPort: Int, user: String, identityFile: String, pinned: SSHPublicKey) {
            self.session = session
            self.targetPort = targetPort
            self.user = user
            self.identityFile = identityFile
            self.pinned = pinned
        }
    }

    public let target: Target
    private let tunnel: Tunnel
    private let log: @Sendable (String) -> Void
    /// Wakes the forwarder thread: a change of forwards, a carrier event, a stop.
    private let wake: WakeFD

    private let lock = NSLock()
    // Under `lock`.
    private var locals: [LocalEntry] = []
    private var reverses: [ReverseEntry] = []
    /// Listener fds of removed forwards, closed by the forwarder thread (it may be polling them).
    private var retiredListeners: [Int32] = []
    private var stopping = false
    private var started = false
    /// Until `begin()`: forwards are added (LOCALs bound) but no thread runs yet.
    private var held = true
    private let finished = DispatchSemaphore(value: 0)

    final class LocalEntry {
        let forward: PortForward
        let listener: Int32
        init(forward: PortForward, listener: Int32) {
            self.forward = forward
            self.listener = listener
        }
    }

    final class ReverseEntry {
        let forward: PortForward
        /// nil while asked for; "" once the container listens; else why it refused.
        var outcome: String?
        let answered = DispatchSemaphore(value: 0)
        var waiting = false
        init(forward: PortForward) { self.forward = forward }
    }

    /// Seconds an `add` of a reverse waits for the container session (which may be connecting).
    public var reverseTimeout: Double = 20

    public init(target: Target, tunnel: Tunnel, log: @escaping @Sendable (String) -> Void) throws {
        self.target = target
        self.tunnel = tunnel
        self.log = log
        wake = try WakeFD()
    }

    deinit {
        for entry in locals { Glibc.close(entry.listener) }
    }

    /// The forwards now, forwards first, in the order added.
    public var forwards: [PortForward] {
        lock.withLock { locals.map(\.forward) + reverses.map(\.forward) }
    }

    /// Adds forwards, all or none. A forward's LOCAL is bound at once (0: a free port, returned
    /// resolved); a reverse is answered once the container listens (with `wait`), else it is asked
    /// for whenever the container session comes up. Throws `ForwardError`.
    @discardableResult
    public func add(_ new: [PortForward], wait: Bool = true) throws -> [PortForward] {
        var added: [PortForward] = []
        do {
            for forward in new { added.append(try addOne(forward, wait: wait)) }
        } catch {
            _ = try? remove(added)
            throw error
        }
        return added
    }

    private func addOne(_ forward: PortForward, wait: Bool) throws -> PortForward {
        if let (_, old) = PortForward.firstClash([forward], existing: forwards) {
            throw ForwardError.duplicate(new: forward, existing: old, session: target.session)
        }
        switch forward.direction {
        case .forward:
            let fd: Int32
            do {
                fd = try SocketIO.listen(address: "127.0.0.1", port: UInt16(clamping: forward.local))
            } catch let error as SocketIO.ListenError {
                throw ForwardError.localTaken(port: forward.local, why: error.message)
            }
            var resolved = forward
            resolved.local = Int(SocketIO.localPort(of: fd))
            let clash: PortForward? = lock.withLock {
                if let old = (locals.map(\.forward) + reverses.map(\.forward)).first(where: { $0.clashes(with: resolved) }) { return old }
                locals.append(LocalEntry(forward: resolved, listener: fd))
                return nil
            }
            if let clash {
                Glibc.close(fd)
                throw ForwardError.duplicate(new: forward, existing: clash, session: target.session)
            }
            startIfNeeded()
            wake.signal()
            log("forward \(resolved.summary)")
            return resolved
        case .reverse:
            let entry = ReverseEntry(forward: forward)
            entry.waiting = wait
            lock.withLock { reverses.append(entry) }
            startIfNeeded()
            wake.signal()
            guard wait else { return forward }
            let outcome: String
            if entry.answered.wait(timeout: .now() + reverseTimeout) == .timedOut {
                outcome = "the container session did not come up within \(Int(reverseTimeout)) s; see the tunnel's log"
            } else {
                outcome = lock.withLock { entry.outcome } ?? ""
            }
            if !outcome.isEmpty {
                _ = try? remove([forward])
                throw ForwardError.refusedInContainer(forward, why: outcome)
            }
            log("reverse \(forward.summary)")
            return forward
        }
    }

    /// Removes the forwards of these container ports (both directions); returns what went.
    /// Throws `ForwardError.notForwarded` when a port has none (then nothing is removed).
    @discardableResult
    public func remove(ports: [Int]) throws -> [PortForward] {
        let current = forwards
        for port in ports where !current.contains(where: { $0.port == port }) {
            throw ForwardError.notForwarded(name: target.session, port: port)
        }
        return try remove(current.filter { ports.contains($0.port) })
    }

    private func remove(_ gone: [PortForward]) throws -> [PortForward] {
        lock.withLock {
            for entry in locals where gone.contains(entry.forward) { retiredListeners.append(entry.listener) }
            locals.removeAll { gone.contains($0.forward) }
            reverses.removeAll { gone.contains($0.forward) }
        }
        wake.signal()
        for forward in gone { log("removed \(forward.summary)") }
        return gone
    }

    /// Stops the thread (the container session goes, listeners close). Waits up to 2 s.
    public func stop() {
        let wasStarted = lock.withLock { () -> Bool in
            stopping = true
            return started
        }
        wake.signal()
        if wasStarted { _ = finished.wait(timeout: .now() + 2) }
    }

    /// The tunnel is up: the forwarder may start (at once when forwards are there).
    public func begin() {
        lock.withLock { held = false }
        startIfNeeded()
    }

    private func startIfNeeded() {
        let start = lock.withLock { () -> Bool in
            guard !started && !stopping && !held && !(locals.isEmpty && reverses.isEmpty) else { return false }
            started = true
            return true
        }
        guard start else { return }
        let thread = Thread { [self] in
            run()
            finished.signal()
        }
        thread.name = "dbgbox-forwards"
        thread.start()
    }

    private var isStopping: Bool { lock.withLock { stopping } }

    // MARK: the forwarder thread

    private func run() {
        var backoff = Backoff()
        while !isStopping {
            do {
                try ContainerSessionPump(owner: self).run()
                backoff.reset()
            } catch let failure as PumpFailure {
                log("forwards: \(failure.reason)")
            } catch {
                log("forwards: \(error)")
            }
            failPendingReverses()
            if isStopping { break }
            sleep(backoff.next())
        }
        let left = lock.withLock { () -> [Int32] in
            defer { retiredListeners.removeAll(); locals.removeAll() }
            return retiredListeners + locals.map(\.listener)
        }
        for fd in left { Glibc.close(fd) }
        failPendingReverses()
    }

    /// Answers the `add`s waiting for a reverse when the session went down before it was asked.
    private func failPendingReverses() {
        lock.withLock {
            for entry in reverses where entry.waiting && entry.outcome == nil {
                entry.outcome = "the container session went down"
                entry.waiting = false
                entry.answered.signal()
            }
        }
    }

    private func sleep(_ seconds: Double) {
        var fd = pollfd(fd: wake.fd, events: Int16(POLLIN), revents: 0)
        let deadline = Date().addingTimeInterval(seconds)
        while !isStopping, deadline.timeIntervalSinceNow > 0 {
            _ = poll(&fd, 1, Int32(deadline.timeIntervalSinceNow * 1000) + 1)
            wake.drain()
        }
    }

    // Shared with the pump (same thread).
    fileprivate var wakeFD: WakeFD { wake }
    fileprivate var tunnelEngine: Tunnel { tunnel }
    fileprivate func note(_ text: String) { log(text) }
    fileprivate var stopRequested: Bool { isStopping }

    /// The listeners to poll, the reverses wanted, and the listener fds to close.
    fileprivate func snapshot() -> (locals: [LocalEntry], reverses: [ReverseEntry], retired: [Int32]) {
        lock.withLock {
            defer { retiredListeners.removeAll() }
            return (locals, reverses, retiredListeners)
        }
    }

    fileprivate func answer(_ entry: ReverseEntry, _ outcome: String) {
        let waited = lock.withLock { () -> Bool in
            entry.outcome = outcome
            guard entry.waiting else { return false }
            entry.waiting = false
            entry.answered.signal()
            return true
        }
        if !waited && !outcome.isEmpty { log("forwards: \(entry.forward.summary): \(outcome)") }
    }
}

/// Why a container session ended.
struct PumpFailure: Error {
    var reason: String
}

/// One forwarded connection on the container session: a laptop socket and its channel (the
/// engine's `ForwardedConnection`), and the forward it belongs to.
final class ContainerConnection {
    let link: ForwardedConnection
    let forward: PortForward

    init(fd: Int32, forward: PortForward) {
        link = ForwardedConnection(id: 0, fd: fd, peer: "127.0.0.1")
        self.forward = forward
    }
}

/// One container session, from the carrier's open to its end: the forwarder thread's loop.
final class ContainerSessionPump {
    let owner: ContainerForwarder
    private var carrier: NodeChannel!
    private var session: NonBlockingSSHSession!
    private var transport: SessionTransport!
    private var carrierEnd: String?
    private var connections: [ContainerConnection] = []
    /// Accepted laptop connections waiting for their channel (opened one at a time).
    private var waitingOpen: [ContainerConnection] = []
    private var opening: ContainerConnection?
    /// Reverse listeners by container port.
    private var listening: [Int: (forward: PortForward, listener: SSHForwardListener)] = [:]
    /// A reverse being asked for, or a listener being cancelled (one request at a time).
    private var asking: ContainerForwarder.ReverseEntry?
    /// Container ports asked for on this session (refused ones are not asked again).
    private var asked: Set<Int> = []
    private var cancelling: SSHForwardListener?
    private var closing: [SSHChannel] = []
    private let upScratch = UnsafeMutableRawPointer.allocate(byteCount: FlowPolicy.upChunk, alignment: 16)
    private let downScratch = UnsafeMutableRawPointer.allocate(byteCount: FlowPolicy.downChunk, alignment: 16)
    private var progressed = false
    /// The listeners the last poll found readable (nil: not polled, try them all).
    private var readyListeners: Set<Int32>?

    init(owner: ContainerForwarder) { self.owner = owner }

    deinit {
        upScratch.deallocate()
        downScratch.deallocate()
    }

    func run() throws {
        let target = owner.target
        do {
            carrier = try owner.tunnelEngine.openCarrier(host: "127.0.0.1", port: target.targetPort, eventWake: owner.wakeFD)
        } catch {
            throw PumpFailure(reason: "waiting for the tunnel (\(error))")
        }
        defer { carrier.close() }
        guard let carried = carrier.transport else { throw PumpFailure(reason: "the carrier has no transport") }
        transport = carried
        let deadline = Date().addingTimeInterval(15)
        session = try NonBlockingSSHSession(transport: transport) { [unowned self] _ in try self.setupWait(deadline) }
        defer { teardown() }
        do {
            try session.handshake()
        } catch let failure as PumpFailure {
            throw failure
        } catch {
            throw PumpFailure(reason: "container sshd 127.0.0.1:\(target.targetPort) on the node: handshake failed: \(carrierEnd ?? "\(error)")")
        }
        guard let key = session.hostKey else { throw PumpFailure(reason: "the container presented no host key") }
        let presented = SSHPublicKey(type: key.typeName, blob: key.blob)
        guard presented.isSameKey(as: target.pinned) else {
            throw PumpFailure(reason: "the container presents host key \(presented.fingerprintSHA256), not \(target.pinned.fingerprintSHA256) pinned for dbgbox-\(target.session): refusing to forward")
        }
        let hop = TunnelHop(host: "127.0.0.1", port: target.targetPort, user: target.user,
                            credentials: [.keyFile(path: target.identityFile, passphrase: nil), .agent(socketPath: nil)],
                            label: "container")
        if let failure = try HopAuthenticator(hop: hop, allowsPassword: false).logIn(session) {
            throw PumpFailure(reason: "authentication as \(target.user) in the container failed: \(failure.lastError)")
        }
        session.configureKeepalive(interval: 15)
        owner.note("forwards: container session up")
        try loop()
    }

    /// Setup-time waiting: sleep on the wake fd and the transport's inbox.
    private func setupWait(_ deadline: Date) throws {
        if owner.stopRequested { throw PumpFailure(reason: "stopped") }
        if !moveCarrier() { throw PumpFailure(reason: "the channel to the container closed: \(carrierEnd ?? "")") }
        if !transport.inbox.isEmpty { return }
        let left = deadline.timeIntervalSinceNow
        if left <= 0 { throw PumpFailure(reason: "the container's sshd did not answer within 15 s") }
        var fds = [pollfd(fd: owner.wakeFD.fd, events: Int16(POLLIN), revents: 0),
                   pollfd(fd: transport.fd, events: Int16(POLLIN), revents: 0)]
        _ = poll(&fds, 2, Int32(min(left, 1) * 1000) + 1)
        if fds[0].revents != 0 { owner.wakeFD.drain() }
        if fds[1].revents != 0 { transport.inboxWake?.drain() }
        if !moveCarrier() { throw PumpFailure(reason: "the channel to the container closed: \(carrierEnd ?? "")") }
    }

    /// The carrier's end, if it came (the node hop moves the bytes itself: `NodeChannel.transport`).
    /// False once the carrier ended (`carrierEnd`) and its last bytes were read.
    @discardableResult
    private func moveCarrier() -> Bool {
        guard let carrier: NodeChannel = carrier else { return false }
        while carrierEnd == nil, let event = carrier.take() {
            switch event {
            case .stdout, .stderr:
                break
            case .closed:
                carrierEnd = "the container's sshd closed the connection"
            case .failed(let why):
                carrierEnd = why
            }
        }
        return carrierEnd == nil || !transport.inbox.isEmpty
    }

    private func teardown() {
        for c in connections + waitingOpen { Glibc.close(c.link.fd); c.link.up.clear(); c.link.down.clear() }
        if let opening, !connections.contains(where: { $0 === opening }) { Glibc.close(opening.link.fd) }
        connections.removeAll()
        waitingOpen.removeAll()
        session?.disconnect()
        moveCarrier()
        session?.free()
    }

    // MARK: the pass

    private func loop() throws {
        var nextKeepalive = 15
        while !owner.stopRequested {
            progressed = false
            let received = transport.received
            let (locals, reverses, retired) = owner.snapshot()
            for fd in retired { Glibc.close(fd) }

            let full = transport.outbox.isAboveHighWater
            if !full {
                // Only the listeners the last poll found readable (all on the first pass).
                for entry in locals where readyListeners?.contains(entry.listener) ?? true {
                    while let (fd, _) = SocketIO.accept(entry.listener) {
                        waitingOpen.append(ContainerConnection(fd: fd, forward: entry.forward))
                        progressed = true
                    }
                    readyListeners?.remove(entry.listener)
                }
            }
            try openChannels()
            try reconcileReverses(reverses)
            try acceptReverses()
            for c in connections { try pump(c, holdUp: full) }
            retire()
            do { nextKeepalive = try session.sendKeepalive() } catch {
                throw PumpFailure(reason: "container session: \(error)")
            }
            if !moveCarrier() { throw PumpFailure(reason: "the channel to the container closed: \(carrierEnd ?? "")") }
            if progressed || transport.received != received { continue }
            // Input no call took (a laptop socket is full, an open waits): look again soon.
            let unread = !transport.inbox.isEmpty && !transport.inbox.isClosed
            sleep(locals: locals, keepalive: nextKeepalive, throttled: full || unread)
        }
    }

    private func sleep(locals: [ContainerForwarder.LocalEntry], keepalive: Int, throttled: Bool) {
        var fds = [pollfd(fd: owner.wakeFD.fd, events: Int16(POLLIN), revents: 0),
                   pollfd(fd: transport.fd, events: Int16(POLLIN), revents: 0)]
        let firstListener = fds.count
        if !throttled { for entry in locals { fds.append(pollfd(fd: entry.listener, events: Int16(POLLIN), revents: 0)) } }
        let firstClient = fds.count
        var polled: [ContainerConnection] = []
        for c in connections where c.link.channel != nil {
            var events: Int16 = 0
            if c.link.up.isEmpty && !c.link.upEOF && !throttled { events |= Int16(POLLIN) }
            if !c.link.down.isEmpty { events |= Int16(POLLOUT) }
            if events != 0 { fds.append(pollfd(fd: c.link.fd, events: events, revents: 0)); polled.append(c) }
        }
        var timeout = Int32(max(1, keepalive) * 1000)
        if throttled || asking != nil || opening != nil || cancelling != nil || !closing.isEmpty { timeout = min(timeout, 5) }
        let n = poll(&fds, nfds_t(fds.count), timeout)
        for c in connections { c.link.clientReadable = true }
        if n < 0 {
            readyListeners = nil
            return
        }
        if fds[0].revents != 0 { owner.wakeFD.drain() }
        if fds[1].revents != 0 { transport.inboxWake?.drain() }
        readyListeners = throttled ? nil : Set(fds[firstListener..<firstClient].filter { $0.revents != 0 }.map(\.fd))
        // A client asked for POLLIN is readable only if poll said so (a recv would say EAGAIN).
        for (c, fd) in zip(polled, fds[firstClient...]) where fd.events & Int16(POLLIN) != 0 {
            c.link.clientReadable = fd.revents != 0
        }
    }

    private func sessionFailure(_ call: String, _ code: Int32) -> PumpFailure {
        if let carrierEnd { return PumpFailure(reason: "the channel to the container closed: \(carrierEnd)") }
        return PumpFailure(reason: "container session: \(session.lastError(call, code: code))")
    }

    private func isSessionError(_ code: Int32) -> Bool {
        if carrierEnd != nil && transport.inbox.isEmpty { return true }
        return !NodeForwarder.isChannelOnly(code)
    }

    /// One channel open at a time (and no global request meanwhile): repeated as it was after EAGAIN.
    private func openChannels() throws {
        if opening == nil, asking == nil, cancelling == nil, !waitingOpen.isEmpty { opening = waitingOpen.removeFirst() }
        guard let c = opening else { return }
        let message = DirectTCPIP.openMessage(host: "127.0.0.1", port: UInt32(c.forward.port), originatorHost: "127.0.0.1", originatorPort: 0)
        switch session.tryOpenChannel(type: DirectTCPIP.channelType, window: FlowPolicy.channelWindow,
                                      packetSize: FlowPolicy.channelPacket, message: message) {
        case .opened(let channel):
            c.link.channel = channel
            connections.append(c)
            opening = nil
            progressed = true
        case .wouldBlock:
            break
        case .failed(let error):
            opening = nil
            if isSessionError(error.code) { throw sessionFailure("libssh2_channel_open_ex", error.code) }
            owner.note("forwards: container port \(c.forward.port) refused a connection: \(error.message)")
            Glibc.close(c.link.fd)
            progressed = true
        }
    }

    /// Asks for missing reverses and cancels removed ones, one request at a time.
    private func reconcileReverses(_ wanted: [ContainerForwarder.ReverseEntry]) throws {
        if let listener = cancelling {
            let rc = listener.cancel()
            if rc == NonBlockingSSHSession.again { return }
            cancelling = nil
            progressed = true
        }
        if let entry = asking {
            switch session.tryForwardListen(host: "127.0.0.1", port: entry.forward.port) {
            case .wouldBlock:
                return
            case .listening(let listener):
                asking = nil
                listening[entry.forward.port] = (entry.forward, listener)
                owner.answer(entry, "")
                progressed = true
            case .failed(let error):
                asking = nil
                if error.code != LIBSSH2_ERROR_REQUEST_DENIED && isSessionError(error.code) {
                    throw sessionFailure("libssh2_channel_forward_listen_ex", error.code)
                }
                owner.answer(entry, error.code == LIBSSH2_ERROR_REQUEST_DENIED ? "the container's sshd refused" : error.message)
                progressed = true
            }
            return
        }
        guard opening == nil else { return }
        if let (port, gone) = listening.first(where: { port, active in !wanted.contains { $0.forward == active.forward } }) {
            listening[port] = nil
            cancelling = gone.listener
            progressed = true
            return
        }
        if let entry = wanted.first(where: { listening[$0.forward.port] == nil && !asked.contains($0.forward.port) }) {
            asking = entry
            asked.insert(entry.forward.port)
            progressed = true
        }
    }

    /// Connections the container forwarded to a reverse: each connected to the laptop's 127.0.0.1:LOCAL.
    private func acceptReverses() throws {
        for (_, active) in listening {
            while true {
                switch active.listener.tryAccept() {
                case .none:
                    break
                case .failed(let error):
                    if isSessionError(error.code) { throw sessionFailure("libssh2_channel_forward_accept", error.code) }
                case .accepted(let channel):
                    progressed = true
                    do {
                        let fd = try SocketIO.connectTCP(host: "127.0.0.1", port: UInt16(active.forward.local), timeout: 2)
                        SocketIO.setNonBlocking(fd)
                        let c = ContainerConnection(fd: fd, forward: active.forward)
                        c.link.channel = channel
                        connections.append(c)
                    } catch {
                        owner.note("forwards: \(active.forward.summary): nothing answers on 127.0.0.1:\(active.forward.local) here (\(error))")
                        if channel.free() == NonBlockingSSHSession.again { closing.append(channel) }
                    }
                    continue
                }
                break
            }
        }
    }

    /// Moves what can move for one connection, both ways.
    private func pump(_ c: ContainerConnection, holdUp: Bool) throws {
        guard let channel = c.link.channel, c.link.error == nil else { return }
        defer {
            c.link.up.settle()
            c.link.down.settle()
        }
        // Laptop → container.
        for _ in 0..<FlowPolicy.roundsPerConnection {
            if c.link.up.isEmpty && !c.link.upEOF && !holdUp && c.link.clientReadable {
                let n = Glibc.recv(c.link.fd, c.link.up.space(upScratch), FlowPolicy.upChunk, 0)
                // A short read took all there was.
                if n < FlowPolicy.upChunk { c.link.clientReadable = false }
                if n > 0 { c.link.up.filled(n); progressed = true } else if n == 0 { c.link.upEOF = true; progressed = true } else if errno != EAGAIN && errno != EINTR {
                    c.link.error = "failed"
                    return
                }
            }
            guard !c.link.up.isEmpty else { break }
            let n = channel.write(c.link.up.front, count: c.link.up.pending)
            if n > 0 { c.link.up.consumed(n); progressed = true; continue }
            if n == 0 || n == Int(NonBlockingSSHSession.again) { break }
            if isSessionError(Int32(n)) { throw sessionFailure("libssh2_channel_write_ex", Int32(n)) }
            c.link.error = "failed"
            return
        }
        if c.link.upEOF && c.link.up.isEmpty && !c.link.eofSent {
            let rc = channel.sendEOF()
            if rc == 0 { c.link.eofSent = true; progressed = true } else if rc != NonBlockingSSHSession.again {
                if isSessionError(rc) { throw sessionFailure("libssh2_channel_send_eof", rc) }
                c.link.eofSent = true
            }
        }
        // Container → laptop.
        for _ in 0..<FlowPolicy.roundsPerConnection {
            if c.link.down.isEmpty && !c.link.downEOF {
                // A slice per read, as on the node hop: each reaches the laptop while the node hop
                // files the next (the bound ends with the read).
                let space = c.link.down.space(downScratch)
                let n = transport.withReadAllowance(FlowPolicy.channelReadSlice) {
                    channel.read(into: space, count: FlowPolicy.downChunk)
                }
                if n > 0 { c.link.down.filled(n); progressed = true } else if n == 0 || n == Int(NonBlockingSSHSession.again) {
                    if channel.isEOF { c.link.downEOF = true; progressed = true }
                } else if isSessionError(Int32(n)) {
                    throw sessionFailure("libssh2_channel_read_ex", Int32(n))
                } else {
                    c.link.error = "failed"
                    return
                }
            }
            guard !c.link.down.isEmpty else { break }
            let n = Glibc.send(c.link.fd, c.link.down.front, c.link.down.pending, Int32(MSG_NOSIGNAL))
            if n > 0 { c.link.down.consumed(n); progressed = true; if !c.link.down.isEmpty { break } } else {
                if errno == EAGAIN || errno == EINTR { break }
                c.link.error = "failed"
                return
            }
        }
        if c.link.downEOF && c.link.down.isEmpty && !c.link.shutWrite {
            c.link.shutWrite = true
            Glibc.shutdown(c.link.fd, Int32(SHUT_WR))
        }
        // The container end closed while the laptop end still sends: as OpenSSH does, end it.
        if c.link.downEOF && !c.link.eofSent && !c.link.peerClosed && channel.isClosedByPeer {
            c.link.peerClosed = true
            c.link.upEOF = true
            c.link.up.clear()
        }
    }

    private func retire() {
        closing.removeAll { $0.free() != NonBlockingSSHSession.again }
        connections.removeAll { c in
            guard c.link.isDone else { return false }
            if let channel = c.link.channel, channel.free() == NonBlockingSSHSession.again { closing.append(channel) }
            c.link.channel = nil
            Glibc.close(c.link.fd)
            c.link.up.clear()
            c.link.down.clear()
            progressed = true
            return true
        }
    }
}
