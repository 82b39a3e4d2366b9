import CLibSSH2
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The transport adapter: where a non-blocking session's bytes go, through libssh2's SEND/RECV
/// callbacks, and the queues between the tunnel's two hop threads. It only queues and wakes
/// (`QueueWaker`); which thread does the work is the engine's hand-over policy (DbgboxKit's
/// `HandOverCoordinator`) and its sizes are the engine's `FlowPolicy`.
///
/// In both kinds SEND accepts the whole buffer into an outbox (never short, never EAGAIN), so
/// libssh2 never holds a half-sent packet and the "repeat the same call after EAGAIN" rule can
/// only concern waiting for input (libssh2.md). RECV returns -EAGAIN (errno's -11) when nothing
/// is there, and 0 only when the carrier really closed. Calls for any other socket (ssh-agent
/// traffic) pass through to plain send/recv.
public final class SessionTransport: @unchecked Sendable {
    public enum Kind: Sendable {
        /// The session's own TCP socket; the owner flushes `outbox` to it (`flush()`).
        case tcp
        /// Another session's channel ("carrier"): `inbox` is filled and `outbox` drained by the
        /// thread that owns the carrier; `fd` (an eventfd) is readable when `inbox` got data.
        case carrier
    }

    public let kind: Kind
    /// The fd libssh2 knows: the TCP socket, or the inbox eventfd.
    public let fd: Int32
    /// Bytes libssh2 sent, waiting to go out (to the socket, or into the carrier channel).
    public let outbox: ByteQueue
    /// `.carrier` only: bytes from the carrier for libssh2 to read.
    public let inbox: ByteQueue
    /// `.carrier` only: signalled when `inbox` becomes non-empty (owned by this transport).
    public let inboxWake: WakeFD?
    /// `.carrier` only: wakes the carrier's thread when `outbox` becomes non-empty or `inbox`
    /// drops below its high-water mark.
    public let carrierWake: WakeFD?
    /// `.tcp` only: the errno of a failed send/recv, or -1 for an orderly close by the peer.
    public private(set) var socketError: Int32 = 0
    /// Bytes libssh2 has taken in through the RECV callback (socket or inbox). Only the session's
    /// own thread touches it. Any libssh2 call may read input (channel_write, open and free all
    /// read the transport first) and file the packets for any channel, where no fd says so: a
    /// loop that sees this counter move after a channel's read said EAGAIN must not sleep.
    public private(set) var received: UInt64 = 0
    /// Bytes the RECV callback may still hand libssh2 before it says EAGAIN (`withReadAllowance`).
    public private(set) var readAllowance = Int.max
    /// Whether the allowance ran out in the last `withReadAllowance`: input may still be waiting, unseen.
    public private(set) var allowanceSpent = false

    /// Bounds what libssh2 may take in during `body` (one call, or one phase of a pass), then
    /// lifts the bound. A channel read decrypts *everything* waiting before it returns anything
    /// (it reads the transport until EAGAIN); with a bound each call hands on a slice at once, so
    /// the next thread works on it while this one goes on decrypting, instead of the two threads
    /// taking turns. Input held back stays in the socket (level-triggered poll sees it) or in the
    /// inbox (the owner checks `allowanceSpent`).
    ///
    /// The rule (issue 11): a bound never outlives the call it was set for. Every other libssh2
    /// call on the session (channel open, free, close, send_eof, keepalive) must be able to read
    /// the transport to its end. Before this was scoped, a bound left spent by a connection's last
    /// read stayed in force after that connection was retired; the next `channel_open` then saw
    /// EAGAIN from RECV while its confirmation sat in the inbox behind the dead channel's data,
    /// spun, and after LIBSSH2_READ_TIMEOUT (60 s) libssh2's `_libssh2_packet_requirev`
    /// (packet.c:1315 in 1.10.0) said LIBSSH2_ERROR_TIMEOUT, reported by `_libssh2_channel_open`
    /// as "Unexpected error" (channel.c:239): the node hop went down with every connection on it.
    @inline(__always)
    public func withReadAllowance<T>(_ bytes: Int, _ body: () throws -> T) rethrows -> T {
        readAllowance = bytes
        allowanceSpent = false
        sawWouldBlock = false
        defer { readAllowance = .max }
        return try body()
    }

    /// Whether no bound is in force (outside `withReadAllowance`).
    public var readsUnbounded: Bool { readAllowance == .max }

    /// `.tcp`: whether a recv said EAGAIN since the last `withReadAllowance` began: the socket was empty then, so a
    /// read that follows need not ask it again before the next poll.
    public private(set) var sawWouldBlock = false

    /// `.tcp`: bytes read from the socket ahead of libssh2, which asks for 16 KiB at a time. One
    /// recv takes what the socket holds (up to `readAheadSize`) and libssh2's calls are served from
    /// here: far fewer system calls, and the receive queue is emptied in one go.
    private var readAhead: UnsafeMutableRawPointer?
    private var aheadStart = 0
    private var aheadEnd = 0
    /// How much one recv may read ahead (the owner's tuning).
    public let readAheadSize: Int

    /// `.tcp`: after a recv that took less than it asked for (it emptied the socket), say EAGAIN
    /// instead of asking the socket again until `socketReadable()`. Such a recv finds nothing
    /// almost always (one wasted system call per message), and the owner's level-triggered poll
    /// sees whatever came since. Off unless the owner sets it; it must then call
    /// `socketReadable()` whenever its poll finds the socket readable (or did not ask).
    public var waitAfterShortRead = false
    private var emptiedByShortRead = false

    /// The owner's poll found the socket readable: the next read may ask it again.
    public func socketReadable() { emptiedByShortRead = false }

    /// `.tcp`: input already taken from the socket that libssh2 has not had yet. A poll does not
    /// see it: the owner must not wait on the socket while this holds bytes.
    public var hasReadAhead: Bool { aheadEnd > aheadStart }

    deinit { readAhead?.deallocate() }

    /// A transport over a connected TCP socket (made non-blocking here). `outboxHighWater`: what
    /// may queue for the socket before the owner holds back; `readAheadSize`: what one recv takes.
    public init(tcpSocket: Int32, outboxHighWater: Int, readAheadSize: Int) {
        kind = .tcp
        self.readAheadSize = readAheadSize
        fd = tcpSocket
        outbox = ByteQueue(highWater: outboxHighWater)
        inbox = ByteQueue(highWater: 1, initialCapacity: 16)
        inboxWake = nil
        carrierWake = nil
        outboxWaker = WakeWhenEmpty(nil)
        inboxWaker = WakeWhenEmpty(nil)
        SocketIO.setNonBlocking(tcpSocket)
    }

    /// A transport over a carrier channel owned by another thread.
    public init(carrierWake: WakeFD, highWater: Int) throws {
        kind = .carrier
        readAheadSize = 0
        let wake = try WakeFD()
        inboxWake = wake
        fd = wake.fd
        self.carrierWake = carrierWake
        outboxWaker = WakeWhenEmpty(carrierWake)
        inboxWaker = WakeWhenEmpty(wake)
        // Producers stop at the mark and add at most one step (<= 256 KiB) beyond it: with twice
        // the mark the buffers never grow (and only touched pages count).
        outbox = ByteQueue(highWater: highWater, initialCapacity: 2 * highWater)
        inbox = ByteQueue(highWater: highWater, initialCapacity: 2 * highWater)
    }

    // MARK: carrier side (called by the thread that owns the carrier channel)

    /// Puts bytes read from the carrier into the inbox, waking the session's thread if needed
    /// as `inboxWaker` decides.
    public func deliver(_ bytes: UnsafeRawPointer, count: Int) {
        let (wasEmpty, queued) = inbox.appendCounting(bytes, count: count)
        inboxWaker.queued(wasEmpty: wasEmpty, count: queued)
    }

    // MARK: wakes (set by the owner before any thread uses the transport)

    /// `.carrier`: decides when the carrier's thread hears that `outbox` got bytes (by default:
    /// when it was empty). Called by whoever drives this session.
    public var outboxWaker: QueueWaker
    /// `.carrier`: decides when the session's thread hears that `inbox` got bytes (by default:
    /// when it was empty). Called by whoever holds the carrier.
    public var inboxWaker: QueueWaker

    /// The carrier is gone: the session reads what is left, then sees the peer close.
    public func carrierClosed() {
        inbox.close()
        inboxWake?.signal()
    }

    // MARK: tcp side

    /// Writes as much of the outbox to the socket as it takes. Returns false on a socket error
    /// (see `socketError`); true otherwise (the outbox may still hold bytes: wait for POLLOUT).
    public func flush() -> Bool {
        precondition(kind == .tcp)
        while outbox.count > 0 {
            var error: Int32 = 0
            let n = outbox.withFront { pointer, length -> (Int, Int) in
                let n = Glibc.send(fd, pointer, length, Int32(MSG_NOSIGNAL))
                if n < 0 { error = errno }
                return (n, max(n, 0))
            }
            if n < 0 {
                if error == EAGAIN || error == EWOULDBLOCK { return true }
                if error == EINTR { continue }
                socketError = error
                return false
            }
        }
        return true
    }

    /// RECV for the session's own socket: from the read-ahead, refilled by one recv when empty.
    private func receiveAhead(into buffer: UnsafeMutableRawPointer, length: Int, flags: Int32) -> Int {
        if aheadStart == aheadEnd {
            if emptiedByShortRead {
                sawWouldBlock = true
                return -Int(EAGAIN)
            }
            if readAhead == nil { readAhead = .allocate(byteCount: readAheadSize, alignment: 16) }
            let n = Glibc.recv(fd, readAhead, readAheadSize, flags)
            if n < 0 {
                let e = errno
                if e == EAGAIN || e == EWOULDBLOCK { sawWouldBlock = true } else if e != EINTR { socketError = e }
                return -Int(e)
            }
            if n == 0 { socketError = -1; return 0 }
            if n < readAheadSize {
                if waitAfterShortRead { emptiedByShortRead = true }
                // The socket is drained: acknowledge now what it got (see `acknowledgeAtOnce`).
                SocketIO.acknowledgeAtOnce(fd)
            }
            aheadStart = 0
            aheadEnd = n
        }
        let n = min(length, aheadEnd - aheadStart)
        buffer.copyMemory(from: readAhead! + aheadStart, byteCount: n)
        aheadStart += n
        counted(n)
        return n
    }

    /// `n` bytes went to libssh2.
    private func counted(_ n: Int) {
        received &+= UInt64(n)
        if readAllowance != .max { readAllowance &-= n }
    }

    // MARK: libssh2 callbacks

    static let sendCallback: @convention(c) (libssh2_socket_t, UnsafeRawPointer?, Int, Int32,
                                             UnsafeMutablePointer<UnsafeMutableRawPointer?>?) -> Int = { sock, buffer, length, flags, abstract in
        guard let abstract, let pointer = abstract.pointee, let buffer else { return -Int(EINVAL) }
        let transport = Unmanaged<SessionTransport>.fromOpaque(pointer).takeUnretainedValue()
        if sock != transport.fd {
            let n = Glibc.send(sock, buffer, length, flags | Int32(MSG_NOSIGNAL))
            return n < 0 ? -Int(errno) : n
        }
        let (wasEmpty, queued) = transport.outbox.appendCounting(buffer, count: length)
        transport.outboxWaker.queued(wasEmpty: wasEmpty, count: queued)
        return length
    }

    static let recvCallback: @convention(c) (libssh2_socket_t, UnsafeMutableRawPointer?, Int, Int32,
                                             UnsafeMutablePointer<UnsafeMutableRawPointer?>?) -> Int = { sock, buffer, length, flags, abstract in
        guard let abstract, let pointer = abstract.pointee, let buffer else { return -Int(EINVAL) }
        let transport = Unmanaged<SessionTransport>.fromOpaque(pointer).takeUnretainedValue()
        if sock == transport.fd && transport.readAllowance <= 0 {
            transport.allowanceSpent = true
            return -Int(EAGAIN)
        }
        if sock == transport.fd && transport.kind == .tcp {
            return transport.receiveAhead(into: buffer, length: length, flags: flags)
        }
        if sock != transport.fd {
            // ssh-agent traffic.
            let n = Glibc.recv(sock, buffer, length, flags)
            return n < 0 ? -Int(errno) : n
        }
        let (n, resumed) = transport.inbox.take(into: buffer, max: length)
        if resumed { transport.carrierWake?.signal() }
        if n > 0 {
            transport.counted(n)
            return n
        }
        if transport.inbox.isClosedAndEmpty { return 0 }
        return -Int(EAGAIN)
    }
}

/// Told whenever a transport queue got bytes: decides whether (and when) to wake the thread that
/// empties it. The transport calls it from libssh2's SEND callback (outbox) and from `deliver`
/// (inbox), on the thread that produced the bytes. The engine's hand-over policy plugs in here.
public protocol QueueWaker: AnyObject {
    /// The queue got bytes: it was empty before, and now holds `count`.
    func queued(wasEmpty: Bool, count: Int)
}

/// The plain policy: wake the consumer when the queue was empty before (it may be asleep).
public final class WakeWhenEmpty: QueueWaker, @unchecked Sendable {
    private let wake: WakeFD?

    public init(_ wake: WakeFD?) { self.wake = wake }

    public func queued(wasEmpty: Bool, count: Int) {
        if wasEmpty { wake?.signal() }
    }
}
