import SSH
#if canImport(Glibc)
import Glibc
#endif

/// The hand-over policy of one connected pair of hops (one per `Tunnel.Generation`, owned by the
/// Tunnel): which thread does which hop's work.
///
/// Each hop has a thread of its own that holds its hop's lock while it works and releases it while
/// it sleeps in poll. The other hop's thread may take it meanwhile (`tryLock` only, never waiting:
/// each thread waits only for its own hop's lock while holding nothing, so there is no deadlock)
/// and do a pass of that hop itself. That saves the sleeping thread a wake-up on the way of
/// small messages: an echo's request goes client → node session → login session → socket on the
/// node thread alone, and its answer socket → login session → node session → client on the
/// login thread alone, where OpenSSH's `ssh -L` + `ssh -W` wake two processes each way.
/// Bulk transfers still wake the other thread at once (`FlowPolicy.handOverLimit`), so both
/// threads work in parallel.
///
/// A hop's loop: `lock(role)`; then per round `holdWake(from: role)`, its own pass,
/// `handOver(from: role)`, and around its poll `unlock(role)` / `lock(role)`; at the end
/// `finish(role)`. The hops never call each other: the coordinator runs the other hop's
/// `foreignPass` (`HandOverHop`) under that hop's lock.
final class HandOverCoordinator: @unchecked Sendable {
    private let loginLock = HopLock()
    private let nodeLock = HopLock()
    /// login → node: the node transport's inbox got bytes (wakes the node thread).
    let toNode: HeldWake
    /// node → login: the node transport's outbox got bytes (wakes the login thread).
    let toLogin: HeldWake
    /// Set before the login thread starts.
    private weak var login: HandOverHop?
    /// Set under the login hop's lock once forwarding runs (the login thread reads it).
    private weak var node: HandOverHop?
    private let counter: HandOverCounter

    /// Plugs the held wakes into `nodeTransport` (before any thread uses it). `loginWake` wakes the
    /// login hop's thread; `counter` counts passes done for the other hop (`TunnelStats.handOvers`).
    init(nodeTransport: SessionTransport, loginWake: WakeFD, counter: HandOverCounter) {
        toNode = HeldWake(nodeTransport.inboxWake)
        toLogin = HeldWake(loginWake)
        self.counter = counter
        nodeTransport.inboxWaker = toNode
        nodeTransport.outboxWaker = toLogin
    }

    /// The login hop, before its thread starts.
    func attach(login hop: HandOverHop) { login = hop }

    /// The node hop, once it forwards: from then on either thread may do the other's passes.
    func attach(node hop: HandOverHop) {
        loginLock.lock()
        node = hop
        loginLock.unlock()
    }

    func lock(_ role: TunnelHopRole) { hopLock(role).lock() }
    func unlock(_ role: TunnelHopRole) { hopLock(role).unlock() }

    /// Holds back the wake `role`'s pass would give the other hop's thread (see `HeldWake`).
    func holdWake(from role: TunnelHopRole) { wake(from: role).hold() }

    /// After `role`'s own pass, on its thread (which holds its lock): while that pass owes the
    /// other hop's thread a wake, does the other hop's pass here instead (at most
    /// `FlowPolicy.handOverRounds` times); when that pass brought work back for `role` (a window
    /// adjust, the next request), runs `passAgain`, whose non-nil result ends the loop and is
    /// returned. Then gives the wake if one is still owed.
    func handOver<End>(from role: TunnelHopRole, passAgain: () -> End?) -> End? {
        let outgoing = wake(from: role)
        defer { outgoing.release() }
        var rounds = 0
        while outgoing.isOwed, rounds < FlowPolicy.handOverRounds {
            rounds += 1
            guard case .ran(let owesBack) = runForeignPass(of: role.other) else { break }
            _ = outgoing.takeOwed()
            guard owesBack else { break }
            if let end = passAgain() { return end }
        }
        return nil
    }

    /// `role`'s loop ended (its thread still holds its lock): gives any owed wake and unlocks.
    func finish(_ role: TunnelHopRole) {
        wake(from: role).release()
        unlock(role)
    }

    /// A pass of `role` on the other hop's thread, if `role`'s thread is asleep (its lock free).
    private func runForeignPass(of role: TunnelHopRole) -> ForeignPass {
        let lock = hopLock(role)
        guard lock.tryLock() else { return .busy }
        defer { lock.unlock() }
        guard let hop = role == .login ? login : node else { return .busy }
        let outgoing = wake(from: role)
        outgoing.hold()
        defer { outgoing.release() }
        guard hop.foreignPass() else { return .busy }
        counter.add()
        return .ran(owesBack: outgoing.takeOwed())
    }

    private func hopLock(_ role: TunnelHopRole) -> HopLock { role == .login ? loginLock : nodeLock }
    private func wake(from role: TunnelHopRole) -> HeldWake { role == .login ? toNode : toLogin }
}

/// One hop's side of the hand-over.
protocol HandOverHop: AnyObject {
    /// A pass of this hop on the other hop's thread, which holds this hop's lock (its own thread
    /// sleeps): it moves what can move without reading its own fds, and wakes its thread when what
    /// that should wait for changed. Returns false (doing nothing) when the hop is ending.
    func foreignPass() -> Bool
}

/// What a foreign pass (a pass of the other hop) did.
enum ForeignPass {
    /// It did not run (the hop's thread holds its lock, or the hop is ending): wake the thread.
    case busy
    /// It ran; `owesBack` says it left work for the caller's own hop (bytes for its session).
    case ran(owesBack: Bool)
}

extension TunnelHopRole {
    var other: TunnelHopRole { self == .login ? .node : .login }
}

/// A wake for another thread that its giver may hold back while it means to do that thread's
/// work itself. While held, the wake for a queue that became non-empty is only noted as owed,
/// until the queue reaches `FlowPolicy.handOverLimit`: then it is given at once, so bulk transfers
/// keep both threads (both cores) busy. Used by one thread at a time (the one holding the lock of
/// the hop it belongs to).
final class HeldWake: QueueWaker, @unchecked Sendable {
    private let wake: WakeFD?
    private var isHeld = false
    /// Whether a wake was held back and not yet given or taken.
    private(set) var isOwed = false

    init(_ wake: WakeFD?) { self.wake = wake }

    /// Holds back the wakes that follow.
    func hold() { isHeld = true }

    /// Stops holding; gives the wake if one is owed.
    func release() {
        isHeld = false
        if isOwed { isOwed = false; wake?.signal() }
    }

    /// Whether a wake was owed, clearing it: the caller did the other thread's work itself.
    func takeOwed() -> Bool {
        defer { isOwed = false }
        return isOwed
    }

    func queued(wasEmpty: Bool, count: Int) {
        guard isHeld else {
            if wasEmpty { wake?.signal() }
            return
        }
        if wasEmpty { isOwed = true }
        if isOwed && count >= FlowPolicy.handOverLimit {
            isOwed = false
            wake?.signal()
        }
    }
}

/// The lock of one hop's state (its session and everything its passes touch).
final class HopLock: @unchecked Sendable {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>

    init() {
        mutex = .allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        pthread_mutex_init(mutex, nil)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    func lock() { pthread_mutex_lock(mutex) }
    func unlock() { pthread_mutex_unlock(mutex) }
    func tryLock() -> Bool { pthread_mutex_trylock(mutex) == 0 }
}

/// Counts foreign passes (`TunnelStats.handOvers`) over the tunnel's life.
final class HandOverCounter: @unchecked Sendable {
    private let lock = HopLock()
    private var count = 0

    func add() { lock.lock(); count += 1; lock.unlock() }
    var value: Int { lock.lock(); defer { lock.unlock() }; return count }
}
