import Foundation
import SSH
#if canImport(Glibc)
import Glibc
#endif

/// Thread 1, the login hop: owns the TCP socket, the login session and the carrier channel.
/// Moves carrier reads into the node transport's inbox and the node transport's outbox into the
/// carrier, flushes the TCP outbox, sends keepalives. Stops on failure or `requestStop`.
final class LoginPump: HandOverHop, @unchecked Sendable {
    let session: NonBlockingSSHSession
    let carrier: SSHChannel
    let node: SessionTransport
    let wake: WakeFD
    /// Wakes the node thread (its control fd).
    let nodeWake: WakeFD
    let isExec: Bool
    /// Who does which hop's passes (see `HandOverCoordinator`).
    let coordinator: HandOverCoordinator

    private let lock = NSLock()
    private var stopRequested = false
    private var _failure: String?
    private var _finished = false
    /// The last bytes the exec route wrote to stderr (ssh -W's complaint).
    private var stderrTail = Data()
    private let done = DispatchSemaphore(value: 0)

    init(session: NonBlockingSSHSession, carrier: SSHChannel, node: SessionTransport, wake: WakeFD, nodeWake: WakeFD, isExec: Bool,
         coordinator: HandOverCoordinator) {
        self.session = session
        self.carrier = carrier
        self.node = node
        self.wake = wake
        self.nodeWake = nodeWake
        self.isExec = isExec
        self.coordinator = coordinator
        coordinator.attach(login: self)
    }

    /// Why the pump ended (nil while running or after a requested stop).
    var failure: String? { lock.withLock { _failure } }
    var finished: Bool { lock.withLock { _finished } }

    /// Asks the pump to send what the node session still queued, close the carrier, say goodbye
    /// to the login host and end (within about a second).
    func requestStop() {
        lock.withLock { stopRequested = true }
        wake.signal()
    }

    func start() {
        let thread = Thread { [self] in self.run() }
        thread.name = "dbgbox login hop"
        thread.stackSize = 1 << 20
        thread.start()
    }

    /// Waits for the thread to end.
    func join() { done.wait(); done.signal() }

    private func run() {
        let reason = loop()
        lock.withLock {
            _failure = reason
            _finished = true
        }
        node.carrierClosed()
        nodeWake.signal()
        done.signal()
    }

    // MARK: the loop and its passes

    private let buffer = UnsafeMutableRawPointer.allocate(byteCount: FlowPolicy.carrierReadSize, alignment: 16)
    private let staged = UnsafeMutableRawPointer.allocate(byteCount: FlowPolicy.carrierReadSize, alignment: 16)
    private var stagedPos = 0
    private var stagedLen = 0
    private var stopDeadline: Double?
    /// Outputs of a pass, for its poll plan.
    private var drainedAt: UInt64?
    private var windowBlocked = false
    private var nextKeepalive = -1
    /// The plan this hop's thread sleeps on (valid while it polls); a foreign pass that changes
    /// it wakes the thread.
    private var parkedPlan: Plan?
    /// A failure a foreign pass ran into: the thread returns it.
    private var pendingFailure: String?
    /// Set when the loop has ended (no foreign pass after that).
    private var ended = false

    deinit {
        buffer.deallocate()
        staged.deallocate()
    }

    /// What the thread polls for: the TCP socket's events, and whether to come back at once.
    private struct Plan: Equatable {
        var socketEvents: Int16
        var immediate: Bool
    }

    /// The pump loop; returns the failure reason, or nil after a requested stop.
    private func loop() -> String? {
        let tcp = session.transport
        // A short recv emptied the socket: wait for poll rather than ask it again (the pass
        // tells the transport when poll finds it readable).
        tcp.waitAfterShortRead = true
        coordinator.lock(.login)
        defer {
            ended = true
            coordinator.finish(.login)
        }
        // What the last poll found readable (everything, before the first).
        var wakeReadable = true
        var socketReadable = true
        while true {
            if let failure = pendingFailure { return failure }
            coordinator.holdWake(from: .login)
            if let end = pass(wakeReadable: wakeReadable, socketReadable: socketReadable, foreign: false) { return end.reason }
            // Hand the node hop what this pass brought it, doing its pass here while its thread
            // sleeps; its answer (a window adjust, the next request) may come back to this hop.
            if let end = coordinator.handOver(from: .login, passAgain: { pass(wakeReadable: false, socketReadable: false, foreign: false) }) {
                return end.reason
            }

            let plan = makePlan()
            parkedPlan = plan
            var fds = [
                pollfd(fd: tcp.fd, events: plan.socketEvents, revents: 0),
                pollfd(fd: wake.fd, events: Int16(POLLIN), revents: 0),
            ]
            var timeout: Int32 = nextKeepalive > 0 ? Int32(nextKeepalive * 1000) : -1
            if stopDeadline != nil { timeout = 50 }
            if plan.immediate { timeout = 0 }
            coordinator.unlock(.login)
            let rc = poll(&fds, 2, timeout)
            let pollErrno = errno
            coordinator.lock(.login)
            parkedPlan = nil
            wakeReadable = rc < 0 || fds[1].revents != 0
            socketReadable = rc < 0 || fds[0].events & Int16(POLLIN) == 0 || fds[0].revents != 0
            if rc < 0 && pollErrno != EINTR { return "poll: \(String(cString: strerror(pollErrno)))" }
            if fds[0].revents & Int16(POLLERR | POLLHUP | POLLNVAL) != 0 {
                var soError: Int32 = 0
                var len = socklen_t(MemoryLayout<Int32>.size)
                getsockopt(tcp.fd, SOL_SOCKET, SO_ERROR, &soError, &len)
                return soError != 0 ? "connection lost: \(String(cString: strerror(soError)))" : "connection closed by the login host"
            }
        }
    }

    /// A pass of this hop done by the node hop's thread (`HandOverCoordinator`): moves the node
    /// session's queued output into the carrier and out to the socket, and hands on what libssh2
    /// already holds for the node. It reads nothing from the socket (the hop's thread polls it)
    /// and wakes the hop's thread when what it should wait for changed.
    func foreignPass() -> Bool {
        if ended || stopDeadline != nil || pendingFailure != nil || lock.withLock({ stopRequested }) { return false }
        if let end = pass(wakeReadable: false, socketReadable: false, foreign: true) {
            pendingFailure = end.reason ?? "stopped"
            wake.signal()
        } else if makePlan() != parkedPlan {
            wake.signal()
        }
        return true
    }

    private struct End { var reason: String? }

    /// One pass: carrier → node inbox, node outbox → carrier, keepalive, flush. Returns non-nil
    /// when the loop must end (a failure, or a requested stop once everything went out).
    private func pass(wakeReadable: Bool, socketReadable: Bool, foreign: Bool) -> End? {
        let tcp = session.transport
        if wakeReadable { wake.drain() }
        if socketReadable { tcp.socketReadable() }
        if !foreign && stopDeadline == nil && lock.withLock({ stopRequested }) { stopDeadline = monotonicNow() + FlowPolicy.stopGrace }

        // Carrier → node inbox, while the node side keeps up.
        // When the last poll did not find the socket readable, only what libssh2 already
        // holds is read (allowance 0: no recv that would say EAGAIN).
        drainedAt = nil
        // Bytes already read ahead from the socket count as readable (`hasReadAhead`).
        var socketDrained = !socketReadable && !tcp.hasReadAhead
        while !node.inbox.isAboveHighWater {
            let n = tcp.withReadAllowance(socketDrained ? 0 : FlowPolicy.carrierReadSlice) { carrier.read(into: buffer, count: FlowPolicy.carrierReadSize) }
            if tcp.sawWouldBlock { socketDrained = true }
            if n > 0 { node.deliver(buffer, count: n); continue }
            if n == Int(NonBlockingSSHSession.again) {
                if !socketDrained && tcp.allowanceSpent { continue }
                socketDrained = true
                drainedAt = tcp.received
                break
            }
            if n == 0 {
                if carrier.isEOF { return End(reason: carrierEnded()) }
                drainedAt = tcp.received
                break
            }
            return End(reason: failureText(Int32(n), "reading the channel to the node"))
        }
        // The socket said EAGAIN just now: the writes below need not ask it again. The bound
        // ends with them (`withReadAllowance`).
        if let end = tcp.withReadAllowance(socketDrained ? 0 : FlowPolicy.carrierReadSlice, { moveOut() }) { return end }

        nextKeepalive = -1
        do {
            nextKeepalive = try session.sendKeepalive()
        } catch {
            return End(reason: "\(error)")
        }

        if let deadline = stopDeadline, (stagedPos == stagedLen && node.outbox.isEmpty) || monotonicNow() > deadline {
            _ = carrier.sendEOF()
            _ = carrier.close()
            session.disconnect()
            _ = tcp.flush()
            return End(reason: nil)
        }

        guard tcp.flush() else { return End(reason: "connection lost: \(String(cString: strerror(tcp.socketError)))") }
        if tcp.socketError == -1 { return End(reason: "connection closed by the login host") }
        if tcp.socketError > 0 { return End(reason: "connection lost: \(String(cString: strerror(tcp.socketError)))") }
        return nil
    }

    /// Reads ssh -W's stderr (exec route) and moves the node outbox into the carrier, while the
    /// TCP outbox is not backed up. Returns non-nil when the hop failed.
    private func moveOut() -> End? {
        let tcp = session.transport
        if isExec {
            // Drain ssh -W's stderr: it shares the window, and it explains failures.
            while true {
                let n = carrier.read(into: buffer, count: FlowPolicy.carrierReadSize, stream: 1)
                if n <= 0 { break }
                stderrTail.append(buffer.assumingMemoryBound(to: UInt8.self), count: n)
                if stderrTail.count > FlowPolicy.stderrLimit { stderrTail = stderrTail.suffix(FlowPolicy.stderrKeep) }
            }
        }

        // Node outbox → carrier, while the TCP outbox is not backed up.
        windowBlocked = false
        while true {
            if stagedPos == stagedLen {
                let (n, resumed) = node.outbox.take(into: staged, max: FlowPolicy.carrierReadSize)
                if resumed { nodeWake.signal() }
                stagedPos = 0
                stagedLen = n
                if n == 0 { break }
            }
            if tcp.outbox.isAboveHighWater { break }
            let n = carrier.write(staged + stagedPos, count: stagedLen - stagedPos)
            if n > 0 { stagedPos += n; continue }
            if n == 0 || n == Int(NonBlockingSSHSession.again) { windowBlocked = true; break }
            return End(reason: failureText(Int32(n), "writing the channel to the node"))
        }

        return nil
    }

    /// What to poll for after a pass.
    private func makePlan() -> Plan {
        let tcp = session.transport
        var plan = Plan(socketEvents: 0, immediate: false)
        if !node.inbox.isAboveHighWater || windowBlocked { plan.socketEvents |= Int16(POLLIN) }
        if !tcp.outbox.isEmpty { plan.socketEvents |= Int16(POLLOUT) }
        // channel_write (and keepalive) read the socket first: carrier data they filed after
        // the read loop said EAGAIN sits in libssh2 with the socket no longer readable.
        if let drainedAt, tcp.received != drainedAt, !node.inbox.isAboveHighWater { plan.immediate = true }
        // Input read ahead from the socket that poll cannot see.
        if tcp.hasReadAhead && !node.inbox.isAboveHighWater { plan.immediate = true }
        // The node session queued more (e.g. a window adjust) after the take above.
        if stagedPos == stagedLen && !node.outbox.isEmpty && !windowBlocked && !tcp.outbox.isAboveHighWater { plan.immediate = true }
        return plan
    }

    private func carrierEnded() -> String {
        if isExec {
            let status = carrier.exitStatus
            let text = String(decoding: stderrTail, as: UTF8.self)
                .split(whereSeparator: \.isNewline).last.map(String.init) ?? ""
            return "the login host's forwarding command ended (exit status \(status))" + (text.isEmpty ? "" : ": \(text)")
        }
        return "the login host closed the channel to the node"
    }

    private func failureText(_ code: Int32, _ what: String) -> String {
        let tcp = session.transport
        if tcp.socketError == -1 { return "connection closed by the login host" }
        if tcp.socketError > 0 { return "connection lost: \(String(cString: strerror(tcp.socketError)))" }
        return "\(what): \(session.lastError("libssh2", code: code).message) (libssh2 error \(code))"
    }
}

/// Seconds on a monotonic clock.
func monotonicNow() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}
