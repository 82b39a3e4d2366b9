import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Ctrl-C and SIGTERM for a command that makes things step by step and undoes them when it stops
/// halfway (`dbgbox up`). Until `beginUndoableSteps()`, a signal ends the process at once through
/// `nothingMade` (nothing needs undoing); from then on it is only recorded, and the command checks
/// between its steps and in its waits (`check()`, `signal`), then undoes what it made.
///
/// `watch` receives the signals with sigwait on a thread of its own while every other thread
/// blocks them, so no system call elsewhere is cut short: a signal handler would make poll() fail
/// with EINTR under libssh2, which then gives up the blocking session the undo needs.
public final class Interruption: @unchecked Sendable {
    private let lock = NSLock()
    private var received: Int32?
    private var undoable = false
    private let nothingMade: @Sendable (Int32) -> Void
    private var watched = sigset_t()
    private var waiter: pthread_t?
    private var stopping = false
    private var onSignal: (@Sendable (Int32) -> Void)?

    /// `nothingMade` runs on the signal's thread and should end the process.
    public init(nothingMade: @escaping @Sendable (Int32) -> Void) {
        self.nothingMade = nothingMade
    }

    /// Blocks `signals` in the calling thread, and so in every thread it starts from now on, and
    /// receives them on a thread of its own. Call it before the command starts other threads.
    public func watch(_ signals: [Int32]) {
        var set = sigset_t()
        sigemptyset(&set)
        for signal in signals { sigaddset(&set, signal) }
        pthread_sigmask(SIG_BLOCK, &set, nil)
        let started = DispatchSemaphore(value: 0)
        lock.lock()
        watched = set
        lock.unlock()
        let waitFor = set
        let thread = Thread { [self] in
            lock.lock()
            waiter = pthread_self()
            lock.unlock()
            started.signal()
            var set = waitFor
            while true {
                var signal: Int32 = 0
                guard sigwait(&set, &signal) == 0 else { continue }
                lock.lock()
                let done = stopping
                lock.unlock()
                if done { return }
                receive(signal)
            }
        }
        thread.name = "dbgbox-signals"
        thread.start()
        started.wait()
    }

    /// Ends `watch`: its thread stops and the calling thread takes the signals again as usual
    /// (threads started while watching keep them blocked).
    public func stopWatching() {
        lock.lock()
        let thread = waiter
        stopping = true
        waiter = nil
        var set = watched
        lock.unlock()
        guard let thread else { return }
        // One of the watched signals, to this thread only: it wakes, sees `stopping`, and ends.
        var first: Int32 = 1
        while first < 65 && sigismember(&set, first) == 0 { first += 1 }
        pthread_kill(thread, first)
        pthread_sigmask(SIG_UNBLOCK, &set, nil)
    }

    /// A signal arrived (from the signal watcher).
    public func receive(_ signal: Int32) {
        lock.lock()
        defer { lock.unlock() }
        if received == nil { received = signal }
        // Under the lock: `beginUndoableSteps` waits until this has ended the process.
        if !undoable { nothingMade(signal) }
        onSignal?(signal)
    }

    /// Once undoable steps began, `handler` runs (on the signal's thread) for every signal from
    /// now on, and at once when one has already arrived: how a running tunnel is told to stop.
    public func whenSignalled(_ handler: @escaping @Sendable (Int32) -> Void) {
        lock.lock()
        onSignal = handler
        let already = received
        lock.unlock()
        if let already { handler(already) }
    }

    /// Waits until a signal has arrived or `timeout` has passed; true when a signal arrived.
    @discardableResult
    public func wait(upTo timeout: TimeInterval, poll: TimeInterval = 0.02) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while signal == nil && Date() < deadline { Thread.sleep(forTimeInterval: poll) }
        return signal != nil
    }

    /// From now on a signal is recorded, and the command undoes what it made.
    public func beginUndoableSteps() {
        lock.lock()
        undoable = true
        lock.unlock()
    }

    /// The first signal received, if any.
    public var signal: Int32? {
        lock.lock()
        defer { lock.unlock() }
        return received
    }

    /// Throws `Interrupted` once a signal has arrived.
    public func check() throws {
        if let signal { throw Interrupted(signal: signal) }
    }

    /// "SIGINT", "SIGTERM", …
    public static func name(_ signal: Int32) -> String {
        switch signal {
        case SIGINT: return "SIGINT"
        case SIGTERM: return "SIGTERM"
        case SIGHUP: return "SIGHUP"
        default: return "signal \(signal)"
        }
    }
}

/// A step saw that the command was interrupted.
public struct Interrupted: Error, Equatable {
    public var signal: Int32
    /// What the step that was interrupted undid itself before it threw (e.g. a scheduler job it
    /// had submitted, now cancelled), in the order undone.
    public var undone: [String]
    public init(signal: Int32, undone: [String] = []) {
        self.signal = signal
        self.undone = undone
    }
}
