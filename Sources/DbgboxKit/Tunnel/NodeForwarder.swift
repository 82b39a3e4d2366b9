import CLibSSH2
import Foundation
import SSH
#if canImport(Glibc)
import Glibc
#endif

/// One local connection and its direct-tcpip channel on the node session.
final class ForwardedConnection {
    let id: Int
    let fd: Int32
    let peer: String
    var channel: SSHChannel?
    /// Our receive window for the channel, chosen when its open starts.
    var window = FlowPolicy.channelWindow
    /// Client → channel bytes read but not yet written.
    var up = ChunkBuffer()
    var upEOF = false
    var eofSent = false
    /// Channel → client bytes read but not yet sent.
    var down = ChunkBuffer()
    var downEOF = false
    var shutWrite = false
    /// The node closed the channel (not only EOF): what the client still sends has nowhere to
    /// go, so the connection ends once the client has what came before the close.
    var peerClosed = false
    /// Whether the last poll found the client readable (or was not asked): a recv otherwise
    /// would only say EAGAIN.
    var clientReadable = true
    var bytesUp: UInt64 = 0
    var bytesDown: UInt64 = 0
    var error: String?

    init(id: Int, fd: Int32, peer: String) {
        self.id = id
        self.fd = fd
        self.peer = peer
    }

    var isDone: Bool { error != nil || ((eofSent || peerClosed) && downEOF && down.isEmpty) }
}

/// Bytes of one read on their way out. A read goes into the forwarder's shared scratch buffer;
/// only what the other side does not take at once is copied into storage of the connection's own
/// (`settle`), exactly its size, freed when sent. So 64 connections cost memory in proportion to
/// their backlog, not 64 read-sized buffers each way.
struct ChunkBuffer {
    private var owned: UnsafeMutableRawPointer?
    private var current: UnsafeMutableRawPointer?
    var start = 0
    var end = 0

    var isEmpty: Bool { start == end }
    var pending: Int { end - start }
    var front: UnsafeMutableRawPointer { current! + start }

    /// The shared scratch buffer, for a new read (only when empty).
    mutating func space(_ scratch: UnsafeMutableRawPointer) -> UnsafeMutableRawPointer {
        current = scratch
        start = 0
        end = 0
        return scratch
    }

    mutating func filled(_ n: Int) { end = n }

    mutating func consumed(_ n: Int) {
        start += n
        if start == end { clear() }
    }

    /// Copies what is still pending out of the shared scratch (before anyone reads into it again).
    mutating func settle() {
        guard !isEmpty, current != owned else { return }
        let count = pending
        let storage = UnsafeMutableRawPointer.allocate(byteCount: count, alignment: 16)
        storage.copyMemory(from: current! + start, byteCount: count)
        owned = storage
        current = storage
        start = 0
        end = count
    }

    /// Drops what is pending and frees the connection's own storage.
    mutating func clear() {
        owned?.deallocate()
        owned = nil
        current = nil
        start = 0
        end = 0
    }
}

/// Thread 2, the node hop: owns the node session (over the carrier), the accepted client sockets
/// and their channels, and the channels other threads asked for (`NodeChannel`, served by
/// `ChannelJob`s under the same rules). `run()` returns when the hop dies or `stop` is requested.
/// Its passes: `ownPass` on its own thread (accept, retire, report), `movePass` on either thread
/// (see `HandOverCoordinator`; tuning: `FlowPolicy`).
///
/// The rules that keep one connection's bad day its own (issue 11; libssh2 1.10 keeps a call's
/// progress in session and channel state, so a call abandoned after EAGAIN breaks later ones):
/// - Every call that said EAGAIN is repeated, with the same arguments, until it ends: a channel
///   open stays `opening` (one at a time per session) until it succeeds or fails; a free that said
///   EAGAIN waits in `closing`; an EOF not yet sent is sent again next pass, or finished by the
///   free's own close. A client that goes away never cuts one of these short.
/// - A read bound (`SessionTransport.withReadAllowance`) covers one call and ends with it: every
///   other call must be able to read the transport to its end (the node-hop-down defect came from a
///   bound that outlived its read).
/// - A channel the peer closed ends its connection once the client has what came before the close;
///   its later bytes have nowhere to go (the peer never opens the window again). A `NodeChannel`
///   likewise ends (`.closed`, with the command's exit status) once its caller has its output.
final class NodeForwarder: HandOverHop {
    enum End {
        case stopped
        case failed(TunnelHopRole, String)
    }

    let session: NonBlockingSSHSession
    /// The login hop, read for its state only (whether it ended, and why).
    let pump: LoginPump
    /// Who does which hop's passes (see `HandOverCoordinator`).
    let coordinator: HandOverCoordinator
    let listener: Int32
    let control: WakeFD
    let openMessage: [UInt8]
    let shouldStop: () -> Bool
    let report: (TunnelEvent) -> Void
    let publish: (_ open: Int, _ newConnections: Int, _ up: UInt64, _ down: UInt64) -> Void
    let nextID: () -> Int

    private var connections: [ForwardedConnection] = []
    /// The channel whose open is in progress (one at a time per session): a connection's, or a
    /// `NodeChannel`'s (which stays here until its exec request is answered too).
    private var opening: Opening?
    private enum Opening {
        case connection(ForwardedConnection)
        case job(ChannelJob)
    }
    /// The `NodeChannel`s being served (see `ChannelJob`).
    private var jobs: [ChannelJob] = []
    /// `NodeChannel`s submitted by other threads, not yet taken (under `submitLock`).
    private var submitted: [NodeChannel] = []
    private var acceptsJobs = true
    private let submitLock = NSLock()
    /// Channels whose free said EAGAIN (waiting for the node's CLOSE).
    private var closing: [SSHChannel] = []
    /// Every connection's reads land here first (see `ChunkBuffer`).
    private let upScratch = UnsafeMutableRawPointer.allocate(byteCount: FlowPolicy.upChunk, alignment: 16)
    private let downScratch = UnsafeMutableRawPointer.allocate(byteCount: FlowPolicy.downChunk, alignment: 16)

    init(session: NonBlockingSSHSession, pump: LoginPump, coordinator: HandOverCoordinator, listener: Int32, control: WakeFD, openMessage: [UInt8],
         shouldStop: @escaping () -> Bool, report: @escaping (TunnelEvent) -> Void,
         publish: @escaping (Int, Int, UInt64, UInt64) -> Void, nextID: @escaping () -> Int) {
        self.session = session
        self.pump = pump
        self.coordinator = coordinator
        self.listener = listener
        self.control = control
        self.openMessage = openMessage
        self.shouldStop = shouldStop
        self.report = report
        self.publish = publish
        self.nextID = nextID
    }

    deinit {
        upScratch.deallocate()
        downScratch.deallocate()
    }

    private var transport: SessionTransport { session.transport }

    /// Which of the control fd, the inbox eventfd and the listener the last poll found readable.
    private struct Ready {
        var control = true
        var inbox = true
        var listener = true
        /// Nothing known readable: a pass that follows no poll of this thread's.
        static let none = Ready(control: false, inbox: false, listener: false)
    }

    // MARK: the loop and its passes

    /// Connections accepted since the last `publish`.
    private var newConnections = 0
    /// Events of passes done on the login thread, reported by this hop's thread.
    private var deferredEvents: [TunnelEvent] = []
    /// True during a pass done on the login thread.
    private var inForeignPass = false
    /// How a pass done on the login thread found the hop ending: this hop's thread returns it.
    private var pendingEnd: End?
    /// Set when `run` has returned (no foreign pass after that).
    private var ended = false
    /// The plan this hop's thread sleeps on (valid while it polls).
    private var parkedPlan: Plan?
    /// Outputs of a pass, for its plan.
    private var interested = false
    private var nextKeepalive = -1

    /// What the thread polls for: control, inbox and listener (always), each client with channel
    /// and its events, and whether to come back at once.
    private struct Plan: Equatable {
        var clients: [Int32] = []
        var events: [Int16] = []
        var immediate = false
    }

    func run() -> End {
        coordinator.lock(.node)
        defer {
            ended = true
            let left = submitLock.withLock {
                acceptsJobs = false
                defer { submitted.removeAll() }
                return submitted
            }
            for handle in left { handle.deliver(.failed("the node hop went down")) }
            coordinator.finish(.node)
        }
        var ready = Ready()
        while true {
            coordinator.holdWake(from: .node)
            if let end = ownPass(ready) { return end }
            // Hand the login hop what this pass queued for it, doing its pass here while its
            // thread sleeps; what that brings back for this hop is done here too.
            if let end = coordinator.handOver(from: .node, passAgain: { ownPass(.none) }) { return end }

            // Sleep until something can move.
            let plan = makePlan()
            parkedPlan = plan
            var fds: [pollfd] = [
                pollfd(fd: control.fd, events: Int16(POLLIN), revents: 0),
                pollfd(fd: transport.fd, events: Int16(POLLIN), revents: 0),
                pollfd(fd: listener, events: Int16(POLLIN), revents: 0),
            ]
            for (fd, events) in zip(plan.clients, plan.events) { fds.append(pollfd(fd: fd, events: events, revents: 0)) }
            var timeout: Int32 = nextKeepalive > 0 ? Int32(nextKeepalive * 1000) : -1
            if plan.immediate { timeout = 0 }
            coordinator.unlock(.node)
            let polled = poll(&fds, nfds_t(fds.count), timeout)
            let pollErrno = errno
            coordinator.lock(.node)
            parkedPlan = nil
            ready = polled < 0 ? Ready() : Ready(control: fds[0].revents != 0, inbox: fds[1].revents != 0, listener: fds[2].revents != 0)
            // The connections polled are still there (only this thread retires them), in order;
            // a pass on the login thread may have opened channels for others meanwhile.
            var index = 3
            for c in connections where c.channel != nil {
                if index < fds.count && fds[index].fd == c.fd {
                    let asked = fds[index].events & Int16(POLLIN) != 0
                    c.clientReadable = polled < 0 || !asked || fds[index].revents != 0
                    index += 1
                } else {
                    c.clientReadable = true
                }
            }
            if polled < 0 && pollErrno != EINTR {
                closeAll(reason: "poll failed")
                return .failed(.node, "poll: \(String(cString: strerror(pollErrno)))")
            }
        }
    }

    /// A pass of this hop done by the login hop's thread (`HandOverCoordinator`): hands what came
    /// in to the connections, finishes channel opens, sends what clients wrote earlier
    /// (`movePass`). It accepts nothing, retires nothing and reports through this hop's thread,
    /// and it wakes that thread when what it should wait for changed.
    func foreignPass() -> Bool {
        // A stop is this hop's thread's to carry out (`ownPass`); control woke it already.
        if ended || pendingEnd != nil || shouldStop() { return false }
        inForeignPass = true
        let end = movePass()
        inForeignPass = false
        if let end {
            pendingEnd = end.end
            control.signal()
        } else if !deferredEvents.isEmpty || connections.contains(where: { $0.isDone }) || !transport.inbox.isEmpty
                    || makePlan() != parkedPlan {
            control.signal()
        }
        return true
    }

    /// Reports an event now, or through this hop's thread when on the other one.
    private func emit(_ event: TunnelEvent) {
        if inForeignPass { deferredEvents.append(event) } else { report(event) }
    }

    /// The hop's own pass, on its thread: reports what foreign passes deferred, ends on a stop or
    /// a hop down, accepts, moves (`movePass`) and retires. Returns non-nil when the loop must end.
    private func ownPass(_ ready: Ready) -> End? {
        if !deferredEvents.isEmpty {
            let events = deferredEvents
            deferredEvents.removeAll()
            for event in events { report(event) }
        }
        if let pendingEnd {
            if case .failed(let role, _) = pendingEnd { closeAll(reason: "\(role.rawValue) hop down") }
            return pendingEnd
        }
        // Only what the last poll said is readable (a read or accept that finds nothing is a
        // wasted system call on every pass; the first pass looks at everything).
        if ready.control { control.drain() }
        if ready.inbox { transport.inboxWake?.drain() }
        if shouldStop() {
            shutdown()
            return .stopped
        }
        if pump.finished {
            closeAll(reason: "login hop down")
            return .failed(.login, pump.failure ?? "the login hop ended")
        }

        // Accept everything pending.
        while ready.listener, let (fd, peer) = SocketIO.accept(listener) {
            let c = ForwardedConnection(id: nextID(), fd: fd, peer: peer)
            connections.append(c)
            newConnections += 1
        }

        switch movePass(retire: { connections.removeAll { c in
            guard c.isDone else { return false }
            finish(c)
            return true
        } }) {
        case nil:
            return nil
        case .session(let end)?:
            // Retire everything.
            connections.removeAll { c in finish(c); return true }
            return end
        case .keepalive(let end)?:
            closeAll(reason: "node hop down")
            return end
        }
    }

    /// How a `movePass` found the hop ending.
    private enum PassFailure {
        /// The session failed under a channel call.
        case session(End)
        /// Sending a keepalive failed.
        case keepalive(End)

        var end: End {
            switch self {
            case .session(let end), .keepalive(let end): return end
            }
        }
    }

    /// The part of a pass either thread may do: channel opens, frees, bytes both ways, counters,
    /// keepalive. `retire` (the own pass's) runs after the bytes moved and before the counters
    /// are published: retiring closes client fds, which only this hop's thread polls.
    private func movePass(retire: () -> Void = {}) -> PassFailure? {
        var up: UInt64 = 0
        var down: UInt64 = 0
        interested = false
        var sessionFailure: String?

        takeSubmitted()
        // Open channels one at a time.
        while sessionFailure == nil {
            if opening == nil, let job = jobs.first(where: { $0.channel == nil && !$0.done }) {
                opening = .job(job)
            } else if opening == nil, let next = connections.first(where: { $0.channel == nil && $0.error == nil }) {
                // Chosen once: a retried open must repeat the same call.
                let open = connections.reduce(0) { $0 + ($1.channel != nil ? 1 : 0) }
                next.window = open >= FlowPolicy.manyChannels ? FlowPolicy.manyChannelsWindow : FlowPolicy.channelWindow
                opening = .connection(next)
            }
            guard let next = opening else { break }
            guard case .connection(let c) = next else {
                if case .job(let job) = next { sessionFailure = openJob(job) }
                if interested { break }
                continue
            }
            // A fresh slice for each attempt (`withReadAllowance`): the open reads on while data
            // for other channels streams in, at most a slice at a time (filed for them, not
            // piled up in libssh2), and never with a bound left over from another call.
            let attempt = transport.withReadAllowance(FlowPolicy.channelReadSlice) {
                session.tryOpenChannel(type: DirectTCPIP.channelType, window: c.window,
                                       packetSize: FlowPolicy.channelPacket, message: openMessage)
            }
            switch attempt {
            case .opened(let channel):
                c.channel = channel
                opening = nil
                emit(.connectionOpened(id: c.id, peer: c.peer))
            case .wouldBlock:
                interested = true
            case .failed(let error):
                opening = nil
                if isSessionError(error.code) {
                    sessionFailure = describe(error)
                } else {
                    c.error = "\(TunnelEventLog.targetUnreachable): \(error.message)"
                    emit(.connectionRefused(peer: c.peer, reason: c.error!))
                }
            }
            if interested { break }
        }

        // Finish closing channels.
        if sessionFailure == nil && !closing.isEmpty {
            closing.removeAll { $0.free() != NonBlockingSSHSession.again }
            if !closing.isEmpty { interested = true }
        }

        // Move bytes.
        moreBuffered = false
        drainedAt = .max
        if sessionFailure == nil {
            for c in connections where c.channel != nil && c.error == nil {
                if let failure = pumpConnection(c, interested: &interested, up: &up, down: &down) {
                    sessionFailure = failure
                    break
                }
            }
        }
        if sessionFailure == nil && !jobs.isEmpty {
            for job in jobs where job.channel != nil && !job.done {
                if let failure = pumpJob(job) {
                    sessionFailure = failure
                    break
                }
            }
            jobs.removeAll { $0.done }
        }

        if let sessionFailure {
            publish(0, newConnections, up, down)
            newConnections = 0
            return .session(.failed(pump.finished ? .login : .node, pump.finished ? (pump.failure ?? sessionFailure) : sessionFailure))
        }
        retire()
        publish(connections.count, newConnections, up, down)
        newConnections = 0

        nextKeepalive = -1
        do { nextKeepalive = try session.sendKeepalive() } catch {
            return .keepalive(.failed(.node, "\(error)"))
        }
        return nil
    }

    /// What to poll for after a pass.
    private func makePlan() -> Plan {
        var plan = Plan()
        let outboxFull = transport.outbox.isAboveHighWater
        for c in connections where c.channel != nil {
            var events: Int16 = 0
            if !c.upEOF && c.up.isEmpty && !outboxFull { events |= Int16(POLLIN) }
            if !c.down.isEmpty { events |= Int16(POLLOUT) }
            plan.clients.append(c.fd)
            plan.events.append(events)
        }
        // libssh2 files input for every channel whenever any call reads the transport: a
        // channel whose read said EAGAIN earlier in this pass may hold data now, with no fd
        // readable. Go round again at once instead of sleeping on it.
        if transport.received != drainedAt && drainedAt != .max { moreBuffered = true }
        if (interested && !transport.inbox.isEmpty) || moreBuffered { plan.immediate = true }
        return plan
    }

    /// Moves what can move for one connection. Returns a session failure, if any.
    /// Set when a channel may still hold readable data in libssh2's buffers.
    private var moreBuffered = false
    /// The smallest `transport.received` at which a channel read said EAGAIN in this pass.
    private var drainedAt: UInt64 = .max

    private func pumpConnection(_ c: ForwardedConnection, interested: inout Bool, up: inout UInt64, down: inout UInt64) -> String? {
        guard let channel = c.channel else { return nil }
        defer {
            c.up.settle()
            c.down.settle()
        }
        // Client → channel.
        var rounds = 0
        while !c.peerClosed && rounds < FlowPolicy.roundsPerConnection && !transport.outbox.isAboveHighWater {
            rounds += 1
            if c.up.isEmpty && !c.upEOF && c.clientReadable {
                let n = Glibc.recv(c.fd, c.up.space(upScratch), FlowPolicy.upChunk, 0)
                // A short read took all there was.
                if n < FlowPolicy.upChunk { c.clientReadable = false }
                if n > 0 { c.up.filled(n) } else if n == 0 { c.upEOF = true } else {
                    let e = errno
                    if e != EAGAIN && e != EWOULDBLOCK && e != EINTR { c.upEOF = true; c.error = String(cString: strerror(e)); return nil }
                }
            }
            if c.up.isEmpty { break }
            var blocked = false
            while !c.up.isEmpty && !transport.outbox.isAboveHighWater {
                let n = channel.write(c.up.front, count: c.up.pending)
                if n > 0 { c.up.consumed(n); c.bytesUp += UInt64(n); up += UInt64(n); continue }
                if n == 0 || n == Int(NonBlockingSSHSession.again) { interested = true; blocked = true; break }
                return channelError(c, Int32(n))
            }
            if blocked || !c.up.isEmpty { break }
        }
        if c.upEOF && c.up.isEmpty && !c.eofSent && !c.peerClosed {
            let rc = channel.sendEOF()
            if rc == 0 { c.eofSent = true } else if rc == NonBlockingSSHSession.again { interested = true } else {
                return channelError(c, rc)
            }
        }
        // Channel → client. libssh2 may hold more than one read's worth (no fd says so): if the
        // rounds run out while data flows, ask for another pass at once.
        rounds = 0
        while true {
            if rounds == FlowPolicy.roundsPerConnection { if c.down.isEmpty && !c.downEOF { moreBuffered = true }; break }
            rounds += 1
            if c.down.isEmpty && !c.downEOF {
                // The slice bounds this read only (`withReadAllowance`): the opens, frees and
                // writes that follow must read the transport to its end.
                let space = c.down.space(downScratch)
                let n = transport.withReadAllowance(FlowPolicy.channelReadSlice) { channel.read(into: space, count: FlowPolicy.downChunk) }
                if n > 0 { c.down.filled(n) } else if n == 0 || n == Int(NonBlockingSSHSession.again) {
                    if channel.isEOF { c.downEOF = true } else if transport.allowanceSpent {
                        // Input held back by the slice: this channel may have more behind it.
                        interested = true
                        moreBuffered = true
                    } else {
                        interested = true
                        drainedAt = Swift.min(drainedAt, transport.received)
                    }
                } else {
                    return channelError(c, Int32(n))
                }
            }
            if c.down.isEmpty { break }
            let n = Glibc.send(c.fd, c.down.front, c.down.pending, Int32(MSG_NOSIGNAL))
            if n > 0 {
                c.down.consumed(n)
                c.bytesDown += UInt64(n)
                down += UInt64(n)
                if !c.down.isEmpty { break }
            } else {
                let e = errno
                if e == EAGAIN || e == EWOULDBLOCK || e == EINTR { break }
                c.error = String(cString: strerror(e))
                return nil
            }
        }
        // A target that closes while its client still sends (a server that gives up mid-upload):
        // sshd closes the channel and never opens its window again, so the client's bytes would
        // wait for ever. As OpenSSH's client does, end the connection once the close arrived
        // (checked after the reads above, which may have filed the close with the EOF).
        if c.downEOF && !c.peerClosed && !c.upEOF && transport.withReadAllowance(FlowPolicy.channelReadSlice, { channel.isClosedByPeer }) {
            c.peerClosed = true
            c.upEOF = true
            c.up.clear()
        }
        if c.downEOF && c.down.isEmpty && !c.shutWrite {
            c.shutWrite = true
            Glibc.shutdown(c.fd, Int32(SHUT_WR))
        }
        return nil
    }

    /// A read/write error: the connection's own (it is closed), or the session's (returned).
    private func channelError(_ c: ForwardedConnection, _ code: Int32) -> String? {
        let error = session.lastError("libssh2_channel", code: code)
        if isSessionError(code) { return describe(error) }
        c.error = error.message
        return nil
    }

    private func isSessionError(_ code: Int32) -> Bool {
        if transport.inbox.isClosedAndEmpty { return true }
        return !Self.isChannelOnly(code)
    }

    /// Whether a channel call's error concerns that channel only (the session goes on).
    static func isChannelOnly(_ code: Int32) -> Bool {
        switch code {
        case LIBSSH2_ERROR_CHANNEL_FAILURE, LIBSSH2_ERROR_CHANNEL_CLOSED, LIBSSH2_ERROR_CHANNEL_EOF_SENT,
             LIBSSH2_ERROR_CHANNEL_UNKNOWN, LIBSSH2_ERROR_CHANNEL_OUTOFORDER, LIBSSH2_ERROR_CHANNEL_REQUEST_DENIED:
            return true
        default:
            return false
        }
    }

    private func describe(_ error: SSHError) -> String {
        if transport.inbox.isClosedAndEmpty { return pump.failure ?? "the channel through the login host closed" }
        return "\(error.message) (libssh2 error \(error.code))"
    }

    private func finish(_ c: ForwardedConnection) {
        if let channel = c.channel {
            if channel.free() == NonBlockingSSHSession.again { closing.append(channel) }
            c.channel = nil
            report(.connectionClosed(id: c.id, bytesUp: c.bytesUp, bytesDown: c.bytesDown, error: c.error))
        }
        if case .connection(let o)? = opening, o === c { opening = nil }
        Glibc.close(c.fd)
        c.up.clear()
        c.down.clear()
    }

    /// Closes every client socket (the hop is gone: channels die with the session).
    func closeAll(reason: String) {
        for job in jobs where !job.done {
            job.done = true
            job.channel = nil
            job.handle.deliver(.failed(reason))
        }
        jobs.removeAll()
        for c in connections {
            if c.channel != nil, c.error == nil { c.error = reason }
            c.channel = nil
            report(.connectionClosed(id: c.id, bytesUp: c.bytesUp, bytesDown: c.bytesDown, error: c.error ?? reason))
            Glibc.close(c.fd)
            c.up.clear()
            c.down.clear()
        }
        connections.removeAll()
        closing.removeAll()
        opening = nil
    }

    /// Requested stop: close channels politely, then every client socket.
    private func shutdown() {
        for c in connections { if let channel = c.channel { _ = channel.close() } }
        for job in jobs { if let channel = job.channel { _ = channel.close() } }
        closeAll(reason: "tunnel stopped")
    }
}

// MARK: channels for other threads (`NodeChannel`)

/// One `NodeChannel` being served on the node session.
final class ChannelJob {
    let handle: NodeChannel
    var channel: SSHChannel?
    /// The exec request was answered (exec channels).
    var started = false
    /// Input taken from the handle that a write did not take yet (repeated as it is).
    var pending: Data?
    /// A carrier's write that said EAGAIN: its length, repeated as it was.
    var pendingLength: Int?
    var eofSent = false
    /// The peer sent EOF and everything before it was delivered.
    var downEOF = false
    var done = false

    init(handle: NodeChannel) { self.handle = handle }

    var channelType: String {
        if case .exec = handle.kind { return "session" }
        return DirectTCPIP.channelType
    }

    var openMessage: [UInt8] {
        guard case .directTCPIP(let host, let port) = handle.kind else { return [] }
        return DirectTCPIP.openMessage(host: host, port: UInt32(clamping: port), originatorHost: "127.0.0.1", originatorPort: 0)
    }
}

extension NodeForwarder {
    /// Takes a `NodeChannel` from another thread; false when the hop is ending (it never will be
    /// served). Wakes the hop's thread.
    func submit(_ handle: NodeChannel) -> Bool {
        let taken = submitLock.withLock {
            guard acceptsJobs else { return false }
            submitted.append(handle)
            return true
        }
        if taken { control.signal() }
        return taken
    }

    fileprivate func takeSubmitted() {
        let new = submitLock.withLock {
            defer { submitted.removeAll() }
            return submitted
        }
        for handle in new { jobs.append(ChannelJob(handle: handle)) }
    }

    /// One step of opening `job`'s channel (and, for exec, starting its command): every call that
    /// said EAGAIN is repeated as it was (the job stays `opening`). Returns a session failure.
    fileprivate func openJob(_ job: ChannelJob) -> String? {
        if job.channel == nil {
            let attempt = transport.withReadAllowance(FlowPolicy.channelReadSlice) {
                session.tryOpenChannel(type: job.channelType, window: FlowPolicy.nodeChannelWindow,
                                       packetSize: FlowPolicy.channelPacket, message: job.openMessage)
            }
            switch attempt {
            case .opened(let channel):
                job.channel = channel
            case .wouldBlock:
                interested = true
                return nil
            case .failed(let error):
                opening = nil
                if isSessionError(error.code) { return describe(error) }
                job.done = true
                job.handle.deliver(.failed("the node could not open the channel: \(error.message)"))
                return nil
            }
        }
        if case .exec(let command) = job.handle.kind, !job.started, let channel = job.channel {
            let rc = transport.withReadAllowance(FlowPolicy.channelReadSlice) { channel.tryExec(command) }
            if rc == NonBlockingSSHSession.again {
                interested = true
                return nil
            }
            if rc != 0 {
                opening = nil
                let error = session.lastError("libssh2_channel_process_startup", code: rc)
                if isSessionError(rc) { return describe(error) }
                retire(job, .failed("the node did not start the command: \(error.message)"))
                return nil
            }
            job.started = true
        }
        opening = nil
        return nil
    }

    /// Moves what can move for one `NodeChannel`: input into the channel (then EOF), output to the
    /// handle while its caller keeps up, and its end once the peer closed. Returns a session failure.
    fileprivate func pumpJob(_ job: ChannelJob) -> String? {
        guard let channel = job.channel else { return nil }
        if let inner = job.handle.transport { return pumpCarrier(job, channel, inner) }
        if job.handle.isAbandoned {
            _ = channel.close()
            retire(job, .failed("closed"))
            return nil
        }
        // Input; dropped once the peer sent EOF (the command ended without reading it all).
        while !job.downEOF {
            if job.pending == nil { job.pending = job.handle.takeInput(max: SSHChannel.maxWrite) }
            guard let chunk = job.pending else { break }
            let n = chunk.withUnsafeBytes { channel.write($0.baseAddress!, count: chunk.count) }
            if n > 0 {
                job.pending = n == chunk.count ? nil : Data(chunk.dropFirst(n))
                continue
            }
            if n == 0 || n == Int(NonBlockingSSHSession.again) { interested = true; break }
            if isSessionError(Int32(n)) { return describe(session.lastError("libssh2_channel_write_ex", code: Int32(n))) }
            // The channel is closing: the input has nowhere to go.
            job.pending = nil
            job.downEOF = channel.isEOF
            break
        }
        if !job.eofSent && !job.downEOF && job.pending == nil && job.handle.inputDone {
            let rc = channel.sendEOF()
            if rc == 0 { job.eofSent = true } else if rc == NonBlockingSSHSession.again { interested = true } else if isSessionError(rc) {
                return describe(session.lastError("libssh2_channel_send_eof", code: rc))
            } else {
                job.eofSent = true
            }
        }
        // Output: stdout and stderr, a slice per read, while the caller keeps up.
        var rounds = 0
        while !job.downEOF && !job.handle.outputFull {
            if rounds == FlowPolicy.roundsPerConnection { moreBuffered = true; break }
            rounds += 1
            var progressed = false
            for stream: Int32 in [0, 1] {
                let n = transport.withReadAllowance(FlowPolicy.channelReadSlice) {
                    channel.read(into: downScratch, count: FlowPolicy.downChunk, stream: stream)
                }
                if n > 0 {
                    let data = Data(bytes: downScratch, count: n)
                    job.handle.deliver(stream == 0 ? .stdout(data) : .stderr(data))
                    progressed = true
                } else if n == 0 || n == Int(NonBlockingSSHSession.again) {
                    if transport.allowanceSpent {
                        interested = true
                        moreBuffered = true
                    } else {
                        drainedAt = Swift.min(drainedAt, transport.received)
                    }
                } else if isSessionError(Int32(n)) {
                    return describe(session.lastError("libssh2_channel_read_ex", code: Int32(n)))
                } else {
                    retire(job, .failed(session.lastError("libssh2_channel_read_ex", code: Int32(n)).message))
                    return nil
                }
            }
            // EOF counts once no data of either stream is left (libssh2_channel_eof says so).
            if channel.isEOF { job.downEOF = true }
            if !progressed { break }
        }
        if job.downEOF {
            if transport.withReadAllowance(FlowPolicy.channelReadSlice, { channel.isClosedByPeer }) {
                if case .exec = job.handle.kind { retire(job, .closed(channel.execStatus)) } else { retire(job, .closed(nil)) }
            } else {
                interested = true
            }
        } else if !job.handle.outputFull {
            interested = true
        }
        return nil
    }

    /// Moves what can move for a channel that carries a nested session (`NodeChannel.transport`):
    /// the session's outbox straight into the channel, the channel's data straight into the
    /// session's inbox (a slice per read, as for connections) while it is below its high-water
    /// mark. The transport's wakers wake the session's thread and this hop's only when a queue was
    /// empty (or drops below its mark). Returns a session failure.
    fileprivate func pumpCarrier(_ job: ChannelJob, _ channel: SSHChannel, _ inner: SessionTransport) -> String? {
        // Input: what the nested session sent (its disconnect too, before an abandon closes it).
        while !job.downEOF && !transport.outbox.isAboveHighWater {
            var written = 0
            let queued = inner.outbox.withFront { pointer, count -> (Int, Int) in
                guard count > 0 else { return (0, 0) }
                // A write that said EAGAIN is repeated with the same length (the front stays put:
                // only this thread takes from it).
                let length = job.pendingLength ?? Swift.min(count, SSHChannel.maxWrite)
                written = channel.write(pointer, count: length)
                return (count, Swift.max(written, 0))
            }
            if queued == 0 { break }
            if written > 0 { job.pendingLength = nil; continue }
            if written == 0 || written == Int(NonBlockingSSHSession.again) {
                job.pendingLength = job.pendingLength ?? Swift.min(queued, SSHChannel.maxWrite)
                interested = true
                break
            }
            if isSessionError(Int32(written)) { return describe(session.lastError("libssh2_channel_write_ex", code: Int32(written))) }
            job.downEOF = channel.isEOF
            break
        }
        if job.handle.isAbandoned {
            _ = channel.close()
            retire(job, .failed("closed"))
            return nil
        }
        // Output, while the nested session keeps up.
        var rounds = 0
        while !job.downEOF && !inner.inbox.isAboveHighWater {
            if rounds == FlowPolicy.roundsPerConnection { moreBuffered = true; break }
            rounds += 1
            let n = transport.withReadAllowance(FlowPolicy.channelReadSlice) {
                channel.read(into: downScratch, count: FlowPolicy.downChunk, stream: 0)
            }
            if n > 0 {
                inner.deliver(downScratch, count: n)
                continue
            }
            if n == 0 || n == Int(NonBlockingSSHSession.again) {
                if channel.isEOF {
                    job.downEOF = true
                } else if transport.allowanceSpent {
                    interested = true
                    moreBuffered = true
                } else {
                    interested = true
                    drainedAt = Swift.min(drainedAt, transport.received)
                }
                break
            }
            if isSessionError(Int32(n)) { return describe(session.lastError("libssh2_channel_read_ex", code: Int32(n))) }
            retire(job, .failed(session.lastError("libssh2_channel_read_ex", code: Int32(n)).message))
            return nil
        }
        if job.downEOF {
            if transport.withReadAllowance(FlowPolicy.channelReadSlice, { channel.isClosedByPeer }) {
                retire(job, .closed(nil))
            } else {
                interested = true
            }
        }
        return nil
    }

    /// Ends a job: tells its caller, frees its channel (finished later when the free says EAGAIN).
    fileprivate func retire(_ job: ChannelJob, _ event: NodeChannel.Event) {
        job.done = true
        job.handle.deliver(event)
        if let channel = job.channel, channel.free() == NonBlockingSSHSession.again { closing.append(channel) }
        job.channel = nil
    }
}
