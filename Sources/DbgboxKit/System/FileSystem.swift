import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The file operations domain code needs, so that it can be unit-tested on a temp directory
/// and so that every write of a user's file goes through one careful path.
public protocol FileSystem: Sendable {
    func read(_ path: String) throws -> Data
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

public enum FileSystemError: UserFacingError, Equatable {
    case io(path: String, operation: String, errno: Int32)

    public var description: String {
        switch self {
        case .io(let path, let operation, let code):
            return "cannot \(operation) \(path): \(String(cString: strerror(code)))"
        }
    }
}

/// The real file system.
public struct LocalFileSystem: FileSystem {
    public init() {}

    public func read(_ path: String) throws -> Data {
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw FileSystemError.io(path: path, operation: "read", errno: errno == 0 ? ENOENT : errno)
        }
        defer { try? handle.close() }
        return handle.readDataToEndOfFile()
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
        let written = data.withUnsafeBytes { buf -> Bool in
            var offset = 0
            while offset < buf.count {
                let n = Glibc.write(fd, buf.baseAddress! + offset, buf.count - offset)
                if n < 0 { if errno == EINTR { continue }; return false }
                offset += n
            }
            return true
        }
        if !written { let e = errno; close(fd); throw FileSystemError.io(path: tmp, operation: "write", errno: e) }
        if fsync(fd) != 0 { let e = errno; close(fd); throw FileSystemError.io(path: tmp, operation: "fsync", errno: e) }
        close(fd)
        if rename(tmp, path) != 0 { throw FileSystemError.io(path: path, operation: "replace", errno: errno) }
        ok = true
    }

    public func append(_ data: Data, to path: String, mode: mode_t) throws {
        let fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, mode)
        guard fd >= 0 else { throw FileSystemError.io(path: path, operation: "open for appending", errno: errno) }
        defer { close(fd) }
        let ok = data.withUnsafeBytes { buf -> Bool in
            var offset = 0
            while offset < buf.count {
                let n = Glibc.write(fd, buf.baseAddress! + offset, buf.count - offset)
                if n < 0 { if errno == EINTR { continue }; return false }
                offset += n
            }
            return true
        }
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
