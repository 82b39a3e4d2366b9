import Foundation
import SSH
#if canImport(Glibc)
import Glibc
#endif

/// Thread 1, the login hop: owns the TCP socket, the login session and the carrier channel.
/// Moves carrier reads into the node transport's inbox and the node transport's outbox into the
/// carrier, flushes the TCP outbox, sends keepalives. Stops on failure or `requestStop`.
final class LoginPump: @unchecked Sendable {
    let session: NonBlockingSSHSession
    let carrier: SSHChannel
    let node: SessionTransport
    let wake: WakeFD
    /// Wakes the node thread (its control fd).
    let nodeWake: WakeFD
    let isExec: Bool

    private let lock = NSLock()
    private var stopRequested = false
    private var _failure: String?
    private var _finished = false
    /// The last bytes the exec route wrote to stderr (ssh -W's complaint).
    private var stderrTail = Data()
    private let done = DispatchSemaphore(value: 0)

    static let readSize = 256 * 1024
    /// What one carrier read may take from the socket (`SessionTransport.allowReads`): the node
    /// thread starts on each slice while this one decrypts the next.
    static let readSlice = 64 * 1024

    init(session: NonBlockingSSHSession, carrier: SSHChannel, node: SessionTransport, wake: WakeFD, nodeWake: WakeFD, isExec: Bool) {
        self.session = session
        self.carrier = carrier
        self.node = node
        self.wake = wake
        self.nodeWake = nodeWake
        self.isExec = isExec
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

    /// The pump loop; returns the failure reason, or nil after a requested stop.
    private func loop() -> String? {
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: Self.readSize, alignment: 16)
        let staged = UnsafeMutableRawPointer.allocate(byteCount: Self.readSize, alignment: 16)
        defer { buffer.deallocate(); staged.deallocate() }
        var stagedPos = 0
        var stagedLen = 0
        var stopDeadline: Double?
        var wakeReadable = true
        var socketReadable = true
        let tcp = session.transport

        while true {
            if wakeReadable { wake.drain() }
            if stopDeadline == nil && lock.withLock({ stopRequested }) { stopDeadline = monotonicNow() + 1 }

            // Carrier → node inbox, while the node side keeps up.
            // When the last poll did not find the socket readable, only what libssh2 already
            // holds is read (allowance 0: no recv that would say EAGAIN).
            var drainedAt: UInt64?
            var socketDrained = !socketReadable
            while !node.inbox.isAboveHighWater {
                tcp.allowReads(socketDrained ? 0 : Self.readSlice)
                let n = carrier.read(into: buffer, count: Self.readSize)
                if tcp.sawWouldBlock { socketDrained = true }
                if n > 0 { node.deliver(buffer, count: n); continue }
                if n == Int(NonBlockingSSHSession.again) {
                    if !socketDrained && tcp.allowanceSpent { continue }
                    socketDrained = true
                    drainedAt = tcp.received
                    break
                }
                if n == 0 {
                    if carrier.isEOF { return carrierEnded() }
                    drainedAt = tcp.received
                    break
                }
                return failureText(Int32(n), "reading the channel to the node")
            }
            // The socket said EAGAIN just now: the writes below need not ask it again.
            tcp.allowReads(socketDrained ? 0 : Self.readSlice)
            if isExec {
                // Drain ssh -W's stderr: it shares the window, and it explains failures.
                while true {
                    let n = carrier.read(into: buffer, count: Self.readSize, stream: 1)
                    if n <= 0 { break }
                    stderrTail.append(buffer.assumingMemoryBound(to: UInt8.self), count: n)
                    if stderrTail.count > 2048 { stderrTail = stderrTail.suffix(1024) }
                }
            }

            // Node outbox → carrier, while the TCP outbox is not backed up.
            var windowBlocked = false
            while true {
                if stagedPos == stagedLen {
                    let (n, resumed) = node.outbox.take(into: staged, max: Self.readSize)
                    if resumed { nodeWake.signal() }
                    stagedPos = 0
                    stagedLen = n
                    if n == 0 { break }
                }
                if tcp.outbox.isAboveHighWater { break }
                let n = carrier.write(staged + stagedPos, count: stagedLen - stagedPos)
                if n > 0 { stagedPos += n; continue }
                if n == 0 || n == Int(NonBlockingSSHSession.again) { windowBlocked = true; break }
                return failureText(Int32(n), "writing the channel to the node")
            }

            var nextKeepalive = -1
            do {
                nextKeepalive = try session.sendKeepalive()
            } catch {
                return "\(error)"
            }

            if let deadline = stopDeadline, (stagedPos == stagedLen && node.outbox.isEmpty) || monotonicNow() > deadline {
                _ = carrier.sendEOF()
                _ = carrier.close()
                session.disconnect()
                _ = tcp.flush()
                return nil
            }

            guard tcp.flush() else { return "connection lost: \(String(cString: strerror(tcp.socketError)))" }
            if tcp.socketError == -1 { return "connection closed by the login host" }
            if tcp.socketError > 0 { return "connection lost: \(String(cString: strerror(tcp.socketError)))" }

            var fds = [
                pollfd(fd: tcp.fd, events: 0, revents: 0),
                pollfd(fd: wake.fd, events: Int16(POLLIN), revents: 0),
            ]
            if !node.inbox.isAboveHighWater || windowBlocked {
                fds[0].events |= Int16(POLLIN)
            }
            if !tcp.outbox.isEmpty { fds[0].events |= Int16(POLLOUT) }
            var timeout: Int32 = nextKeepalive > 0 ? Int32(nextKeepalive * 1000) : -1
            if stopDeadline != nil { timeout = 50 }
            // channel_write (and keepalive) read the socket first: carrier data they filed after
            // the read loop said EAGAIN sits in libssh2 with the socket no longer readable.
            if let drainedAt, tcp.received != drainedAt, !node.inbox.isAboveHighWater { timeout = 0 }
            // The node session queued more (e.g. a window adjust) after the take above.
            if stagedPos == stagedLen && !node.outbox.isEmpty && !windowBlocked && !tcp.outbox.isAboveHighWater { timeout = 0 }
            let rc = poll(&fds, 2, timeout)
            wakeReadable = rc < 0 || fds[1].revents != 0
            socketReadable = rc < 0 || fds[0].events & Int16(POLLIN) == 0 || fds[0].revents != 0
            if rc < 0 && errno != EINTR { return "poll: \(String(cString: strerror(errno)))" }
            if fds[0].revents & Int16(POLLERR | POLLHUP | POLLNVAL) != 0 {
                var soError: Int32 = 0
                var len = socklen_t(MemoryLayout<Int32>.size)
                getsockopt(tcp.fd, SOL_SOCKET, SO_ERROR, &soError, &len)
                return soError != 0 ? "connection lost: \(String(cString: strerror(soError)))" : "connection closed by the login host"
            }
        }
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
