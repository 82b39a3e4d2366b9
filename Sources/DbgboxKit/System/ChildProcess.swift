import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A child process started with posix_spawn and reaped with its own `waitpid(pid)`.
///
/// Foundation's `Process` is not used: on Linux its single reaper thread blocks in `wait4()` on a
/// long-running child (a tunnel, a test sshd) and then never reaps short-lived ones, so
/// `waitUntilExit()` hangs. Here every child is waited for by pid, and every pipe end is
/// close-on-exec, so no child inherits another's pipes.
public final class ChildProcess: @unchecked Sendable {
    public let pid: pid_t
    /// Our ends of the child's stdin / stdout / stderr pipes (nil where not piped).
    public private(set) var stdinFD: Int32?
    public let stdoutFD: Int32?
    public let stderrFD: Int32?
    private var exitStatus: Int32?
    private let lock = NSLock()

    public enum Stdio: Sendable {
        /// A pipe whose other end this object holds.
        case pipe
        /// /dev/null.
        case null
        /// This process's own descriptor of the same number.
        case inherit
        /// A file opened for appending (stdout/stderr) or reading (stdin).
        case file(String)
    }

    /// Starts `argv` (looked up on PATH when it has no slash).
    ///
    /// `detached`: the child starts a session of its own (setsid: no terminal, no Ctrl-C of ours),
    /// with SIGINT, SIGTERM and SIGHUP at their defaults, and inherits no descriptor above 2 (the
    /// node connection, a caller's pipes): a background process that outlives this one.
    public init(_ argv: [String], environment: [String: String]? = nil,
                stdin: Stdio = .null, stdout: Stdio = .pipe, stderr: Stdio = .pipe, detached: Bool = false) throws {
        precondition(!argv.isEmpty, "empty argv")
        guard let exe = LocalProcessRunner.resolve(argv[0]) else { throw ProcessError.notFound(argv[0]) }

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        var toCloseInParent: [Int32] = []
        var ours: [Int32?] = [nil, nil, nil]

        func setup(_ stdio: Stdio, target: Int32) throws {
            switch stdio {
            case .inherit:
                break
            case .null:
                posix_spawn_file_actions_addopen(&actions, target, "/dev/null", target == 0 ? O_RDONLY : O_WRONLY, 0)
            case .file(let path):
                posix_spawn_file_actions_addopen(&actions, target, path,
                                                 target == 0 ? O_RDONLY : (O_WRONLY | O_CREAT | O_APPEND), 0o600)
            case .pipe:
                var fds: [Int32] = [0, 0]
                guard pipe(&fds) == 0 else {
                    throw ProcessError.launchFailed(argv[0], String(cString: strerror(errno)))
                }
                // (Glibc's pipe2 is not visible to Swift here.) Set close-on-exec at once.
                _ = fcntl(fds[0], F_SETFD, FD_CLOEXEC)
                _ = fcntl(fds[1], F_SETFD, FD_CLOEXEC)
                // fds[0] read end, fds[1] write end. The child gets one end dup2'ed (dup2 clears CLOEXEC).
                let childEnd = target == 0 ? fds[0] : fds[1]
                let parentEnd = target == 0 ? fds[1] : fds[0]
                posix_spawn_file_actions_adddup2(&actions, childEnd, target)
                toCloseInParent.append(childEnd)
                ours[Int(target)] = parentEnd
            }
        }
        do {
            try setup(stdin, target: 0)
            try setup(stdout, target: 1)
            try setup(stderr, target: 2)
            if detached { Self.addCloseFrom(&actions, 3) }
        } catch {
            toCloseInParent.forEach { close($0) }
            ours.compactMap { $0 }.forEach { close($0) }
            throw error
        }

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        // The child starts with default signal dispositions (we may ignore SIGPIPE ourselves).
        var defaults = sigset_t()
        sigemptyset(&defaults)
        sigaddset(&defaults, SIGPIPE)
        if detached {
            sigaddset(&defaults, SIGINT)
            sigaddset(&defaults, SIGTERM)
            sigaddset(&defaults, SIGHUP)
        }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attributes, &empty)
        // POSIX_SPAWN_SETSID (glibc 2.26+) is 0x80; the Swift overlay does not export it.
        let setsid: Int32 = detached ? 0x80 : 0
        posix_spawnattr_setflags(&attributes, Int16(Int32(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK) | setsid))

        let env = (environment ?? ProcessInfo.processInfo.environment).map { "\($0.key)=\($0.value)" }
        var childPID: pid_t = 0
        let rc = withCStrings(argv) { argvPointers in
            withCStrings(env) { envPointers in
                posix_spawn(&childPID, exe, &actions, &attributes, argvPointers, envPointers)
            }
        }
        toCloseInParent.forEach { close($0) }
        guard rc == 0 else {
            ours.compactMap { $0 }.forEach { close($0) }
            throw ProcessError.launchFailed(argv[0], String(cString: strerror(rc)))
        }
        pid = childPID
        stdinFD = ours[0]
        stdoutFD = ours[1]
        stderrFD = ours[2]
    }

    deinit {
        closeStdin()
        if let stdoutFD { close(stdoutFD) }
        if let stderrFD { close(stderrFD) }
    }

    /// Closes our end of the child's stdin (EOF for the child).
    public func closeStdin() {
        lock.lock(); defer { lock.unlock() }
        if let fd = stdinFD { close(fd); stdinFD = nil }
    }

    /// Sends `signal` to the child.
    public func signal(_ signal: Int32) {
        if exitStatusIfDone() == nil { kill(pid, signal) }
    }

    /// Waits for the child to end; returns its exit code, or 128 + signal when a signal killed it.
    @discardableResult
    public func wait() -> Int32 {
        lock.lock(); defer { lock.unlock() }
        if let exitStatus { return exitStatus }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let code = Self.decode(status)
        exitStatus = code
        return code
    }

    /// The exit code if the child has ended, without blocking.
    public func exitStatusIfDone() -> Int32? {
        lock.lock(); defer { lock.unlock() }
        if let exitStatus { return exitStatus }
        var status: Int32 = 0
        let r = waitpid(pid, &status, WNOHANG)
        guard r == pid else { return nil }
        exitStatus = Self.decode(status)
        return exitStatus
    }

    /// glibc 2.34's posix_spawn_file_actions_addclosefrom_np, which the Swift overlay does not
    /// export: looked up at run time (an older glibc leaves the descriptors, as before it).
    private static func addCloseFrom(_ actions: inout posix_spawn_file_actions_t, _ lowest: Int32) {
        typealias CloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32
        guard let symbol = dlsym(nil, "posix_spawn_file_actions_addclosefrom_np") else { return }
        _ = unsafeBitCast(symbol, to: CloseFrom.self)(&actions, lowest)
    }

    private static func decode(_ status: Int32) -> Int32 {
        let signal = status & 0x7f
        return signal == 0 ? (status >> 8) & 0xff : 128 + signal
    }
}

/// Calls `body` with a NULL-terminated C array of the strings.
private func withCStrings<R>(_ strings: [String], _ body: ([UnsafeMutablePointer<CChar>?]) -> R) -> R {
    var pointers: [UnsafeMutablePointer<CChar>?] = strings.map { strdup($0) }
    pointers.append(nil)
    defer { pointers.forEach { free($0) } }
    return body(pointers)
}
