#if canImport(Glibc)
import Glibc
#endif

/// The lock of one hop's state (its session and everything its passes touch).
///
/// Each hop has a thread of its own that holds the lock while it works and releases it while it
/// sleeps in poll. The other hop's thread may take it meanwhile (`tryLock` only, never waiting:
/// each thread waits only for its own hop's lock while holding nothing, so there is no deadlock)
/// and do a pass of that hop itself. That saves the sleeping thread a wake-up on the way of
/// small messages: an echo's request goes client → node session → login session → socket on the
/// node thread alone, and its answer socket → login session → node session → client on the
/// login thread alone, where OpenSSH's `ssh -L` + `ssh -W` wake two processes each way.
/// Bulk transfers still wake the other thread at once (`HeldWake.handOverLimit`), so
/// both threads work in parallel.
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

/// What a foreign pass (a pass of the other hop, `runForeignPass`) did.
enum ForeignPass {
    /// It did not run (the hop's thread holds its lock, or the hop is ending): wake the thread.
    case busy
    /// It ran; `owesBack` says it left work for the caller's own hop (bytes for its session).
    case ran(owesBack: Bool)
}

/// Counts foreign passes (`TunnelStats.handOvers`); shared by both hops of a tunnel.
final class HandOverCounter: @unchecked Sendable {
    private let lock = HopLock()
    private var count = 0

    func add() { lock.lock(); count += 1; lock.unlock() }
    var value: Int { lock.lock(); defer { lock.unlock() }; return count }
}
