import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The file operations domain code needs, so that it can be unit-tested on a temp directory
/// and so that every write of a user's file goes through one careful path.
public protocol FileSystem: Sendable {
    /// Reads a whole file of the given kind: a regular file no larger than the kind's limit.
    /// Anything else (a directory, a FIFO, a device, a larger file) is refused with a
    /// `FileSystemError` naming the file, never read (a FIFO never blocks, /dev/zero never fills memory).
    func read(_ path: String, as kind: FileKind) throws -> Data
    func exists(_ path: String) -> Bool
    func isDirectory(_ path: String) -> Bool
    /// Writes through a temporary file in the same directory, fsyncs, then renames over `path`.
    /// An existing file keeps its mode unless `mode` is given; a new one gets `mode ?? 0o600`.
    func writeAtomically(_ data: Data, to path: String, mode: mode_t?) throws
    /// Appends bytes to `path` (created with `mode` if missing).
    func append(_ data: Data, to path: String, mode: mode_t) throws
    func createDirectory(_ path: String, mode: mode_t) throws
    func remove(_ path: String) throws
    func mode(of path: String) throws -> mode_t
    func setMode(_ mode: mode_t, of path: String) throws
    /// Runs `body` holding an exclusive `flock` on `lockPath` (created if missing).
    func withExclusiveLock<T>(_ lockPath: String, _ body: () throws -> T) throws -> T
    /// The path with every symlink resolved, as the calling user sees it (realpath): throws
    /// when a component does not exist or cannot be entered by this user.
    func realPath(_ path: String) throws -> String
}

extension FileSystem {
    /// For file systems without symlinks (test fakes): the path itself, when it exists.
    public func realPath(_ path: String) throws -> String {
        guard exists(path) else { throw FileSystemError.io(path: path, operation: "resolve", errno: ENOENT) }
        return path
    }
}

extension FileSystem {
    /// Reads `path` if it exists and drops the bytes: an odd file (a directory, a FIFO, one too
    /// large) is refused before a command changes anything else.
    public func checkIfPresent(_ path: String, as kind: FileKind) throws {
        if exists(path) { _ = try read(path, as: kind) }
    }
}

/// Every kind of file dbgbox reads, with how large it may be and whether a symbolic link to it
/// is followed: the one place these limits are named. The raw value names it in messages.
public enum FileKind: String, Sendable, CaseIterable {
    case privateKey = "a private key"
    case publicKey = "a public key"
    case knownHosts = "a known_hosts file"
    case sshConfig = "an ssh config file"
    case template = "a template"
    case dockerfilePart = "a Dockerfile part"
    case config = "a config.yaml"
    case sessionRecord = "a session record"
    case gpuFile = "a GPU file"
    /// A background tunnel's log, read back to say when it is ready.
    case log = "a log file"
    /// /proc/PID/stat and /proc/PID/cmdline.
    case procFile = "a /proc file"
    /// A VS Code `.vscode/launch.json` that `ide vscode --write` merges into.
    case launchConfig = "a launch.json"

    public static let kiB = 1024
    public static let miB = 1024 * 1024

    /// The largest size read; a larger file is refused.
    public var limit: Int {
        switch self {
        case .privateKey, .publicKey, .gpuFile: return 64 * Self.kiB
        case .knownHosts, .sshConfig: return 16 * Self.miB
        case .template, .dockerfilePart, .config, .sessionRecord, .log, .procFile, .launchConfig: return Self.miB
        }
    }

    /// Users' files may be symbolic links (dotfile managers link ~/.ssh/config, keys, known_hosts);
    /// files dbgbox writes itself (session records) and /proc files never are.
    public var followsSymlinks: Bool {
        switch self {
        case .sessionRecord, .procFile: return false
        default: return true
        }
    }

    /// "64 KiB", "16 MiB".
    public static func size(_ bytes: Int) -> String {
        bytes % miB == 0 ? "\(bytes / miB) MiB" : bytes % kiB == 0 ? "\(bytes / kiB) KiB" : "\(bytes) bytes"
    }
}

public enum FileSystemError: UserFacingError, Equatable {
    case io(path: String, operation: String, errno: Int32)
    /// Not a regular file: `what` is "a directory", "a FIFO", "a character device", ….
    case notRegularFile(path: String, what: String)
    case tooLarge(path: String, kind: FileKind)

    public var description: String {
        switch self {
        case .io(let path, let operation, let code):
            return "cannot \(operation) \(path): \(String(cString: strerror(code)))"
        case .notRegularFile(let path, _), .tooLarge(let path, _):
            return "\(path): \(reason)"
        }
    }

    /// What is wrong, without the path.
    public var reason: String {
        switch self {
        case .io(_, _, let code):
            return String(cString: strerror(code))
        case .notRegularFile(_, let what):
            return what == "a directory" ? "is a directory, not a file" : "is \(what), not a regular file"
        case .tooLarge(_, let kind):
            return "larger than \(FileKind.size(kind.limit)), too large for \(kind.rawValue)"
        }
    }

    /// Why reading failed, for a message that names the file itself: the `FileSystemError`'s
    /// reason, else `otherwise`.
    public static func reason(_ error: Error, otherwise: String) -> String {
        (error as? FileSystemError)?.reason ?? otherwise
    }

    /// "a directory", "a FIFO", … for a `st_mode`.
    static func typeName(_ mode: mode_t) -> String {
        switch mode & S_IFMT {
        case S_IFDIR: return "a directory"
        case S_IFIFO: return "a FIFO"
        case S_IFCHR: return "a character device"
        case S_IFBLK: return "a block device"
        case S_IFSOCK: return "a socket"
        case S_IFLNK: return "a symbolic link"
        default: return "not a regular file"
        }
    }
}

/// The real file system.
public struct LocalFileSystem: FileSystem {
    public init() {}

    /// Opens once (O_NONBLOCK, so a FIFO cannot block; O_NOCTTY; O_NOFOLLOW unless the kind
    /// follows links), checks the opened file with fstat (no window between check and read), and
    /// reads at most the kind's limit.
    public func read(_ path: String, as kind: FileKind) throws -> Data {
        let flags = O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC | (kind.followsSymlinks ? 0 : O_NOFOLLOW)
        var fd: Int32
        repeat { fd = open(path, flags) } while fd < 0 && errno == EINTR
        guard fd >= 0 else {
            let code = errno
            if code == ELOOP && !kind.followsSymlinks {
                throw FileSystemError.notRegularFile(path: path, what: "a symbolic link")
            }
            throw FileSystemError.io(path: path, operation: "read", errno: code)
        }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw FileSystemError.io(path: path, operation: "stat", errno: errno) }
        guard st.st_mode & S_IFMT == S_IFREG else {
            // The null device reads as empty, as ssh's idioms expect (-F /dev/null,
            // UserKnownHostsFile /dev/null); checked on the opened file, like the rest.
            if Self.isNullDevice(st) { return Data() }
            throw FileSystemError.notRegularFile(path: path, what: FileSystemError.typeName(st.st_mode))
        }
        guard st.st_size <= kind.limit else { throw FileSystemError.tooLarge(path: path, kind: kind) }
        // st_size is a hint (files in /proc say 0; a file may grow): the limit holds while reading.
        var data = Data()
        data.reserveCapacity(Int(st.st_size))
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw FileSystemError.io(path: path, operation: "read", errno: errno)
            }
            if n == 0 { return data }
            guard data.count + n <= kind.limit else { throw FileSystemError.tooLarge(path: path, kind: kind) }
            data.append(contentsOf: buffer[0..<n])
        }
    }

    /// Whether `st` is /dev/null's (the same character device).
    static func isNullDevice(_ st: stat) -> Bool {
        var null = stat()
        return st.st_mode & S_IFMT == S_IFCHR && stat("/dev/null", &null) == 0
            && null.st_mode & S_IFMT == S_IFCHR && st.st_rdev == null.st_rdev
    }

    public func exists(_ path: String) -> Bool {
        var st = stat()
        return lstat(path, &st) == 0
    }

    public func realPath(_ path: String) throws -> String {
        guard let resolved = Glibc.realpath(path, nil) else {
            throw FileSystemError.io(path: path, operation: "resolve", errno: errno)
        }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    public func isDirectory(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR
    }

    public func writeAtomically(_ data: Data, to path: String, mode: mode_t?) throws {
        let dir = (path as NSString).deletingLastPathComponent
        let base = (path as NSString).lastPathComponent
        var template = Array("\(dir.isEmpty ? "." : dir)/.\(base).dbgbox-XXXXXX".utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard fd >= 0 else { throw FileSystemError.io(path: path, operation: "create a temporary file beside", errno: errno) }
        let tmp = String(decoding: template.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self)
        var ok = false
        defer {
            if !ok { unlink(tmp) }
        }
        var st = stat()
        let finalMode: mode_t
        if let mode {
            finalMode = mode
        } else if stat(path, &st) == 0 {
            finalMode = st.st_mode & 0o7777
        } else {
            finalMode = 0o600
        }
        // A rewritten file keeps its owner (matters when root edits a user's file with --user).
        if stat(path, &st) == 0 && (st.st_uid != geteuid() || st.st_gid != getegid()) {
            _ = fchown(fd, st.st_uid, st.st_gid)
        }
        if fchmod(fd, finalMode) != 0 { close(fd); throw FileSystemError.io(path: tmp, operation: "chmod", errno: errno) }
        let written = Self.writeAll(data, to: fd)
        if !written { let e = errno; close(fd); throw FileSystemError.io(path: tmp, operation: "write", errno: e) }
        if fsync(fd) != 0 { let e = errno; close(fd); throw FileSystemError.io(path: tmp, operation: "fsync", errno: e) }
        close(fd)
        if rename(tmp, path) != 0 { throw FileSystemError.io(path: path, operation: "replace", errno: errno) }
        ok = true
    }

    /// Writes all of `data` to `fd`, retrying after EINTR and short writes; false (errno set) on error.
    private static func writeAll(_ data: Data, to fd: Int32) -> Bool {
        data.withUnsafeBytes { buf -> Bool in
            guard let base = buf.baseAddress else { return true }
            var offset = 0
            while offset < buf.count {
                let n = Glibc.write(fd, base + offset, buf.count - offset)
                if n < 0 { if errno == EINTR { continue }; return false }
                offset += n
            }
            return true
        }
    }

    public func append(_ data: Data, to path: String, mode: mode_t) throws {
        let fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, mode)
        guard fd >= 0 else { throw FileSystemError.io(path: path, operation: "open for appending", errno: errno) }
        defer { close(fd) }
        let ok = Self.writeAll(data, to: fd)
        if !ok { throw FileSystemError.io(path: path, operation: "append to", errno: errno) }
    }

    public func createDirectory(_ path: String, mode: mode_t) throws {
        var prefix = path.hasPrefix("/") ? "" : "."
        for component in path.split(separator: "/") {
            prefix += "/\(component)"
            if mkdir(prefix, mode) != 0 && errno != EEXIST {
                throw FileSystemError.io(path: prefix, operation: "create directory", errno: errno)
            }
        }
    }

    public func remove(_ path: String) throws {
        if unlink(path) != 0 && errno != ENOENT {
            throw FileSystemError.io(path: path, operation: "remove", errno: errno)
        }
    }

    public func mode(of path: String) throws -> mode_t {
        var st = stat()
        guard stat(path, &st) == 0 else { throw FileSystemError.io(path: path, operation: "stat", errno: errno) }
        return st.st_mode & 0o7777
    }

    public func setMode(_ mode: mode_t, of path: String) throws {
        if chmod(path, mode) != 0 { throw FileSystemError.io(path: path, operation: "chmod", errno: errno) }
    }

    public func withExclusiveLock<T>(_ lockPath: String, _ body: () throws -> T) throws -> T {
        let fd = open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw FileSystemError.io(path: lockPath, operation: "open lock file", errno: errno) }
        defer { close(fd) }
        while flock(fd, LOCK_EX) != 0 {
            if errno != EINTR { throw FileSystemError.io(path: lockPath, operation: "lock", errno: errno) }
        }
        defer { flock(fd, LOCK_UN) }
        return try body()
    }
}
