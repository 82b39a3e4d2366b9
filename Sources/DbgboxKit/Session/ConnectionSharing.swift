import Crypto
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// OpenSSH's connection sharing for a session's Host block: the first `ssh dbgbox-NAME` becomes
/// the master (`ControlMaster auto`), later ones ride its connection with no handshake, and the
/// master stays `ControlPersist` after the last one ends.
///
/// - The control sockets live in one directory of the user's own, mode 0700 (by default
///   `~/.ssh/dbgbox/cm`). One that exists with another owner, group or other access, or that is
///   not a directory, is refused: another user could otherwise reach or replace the master.
/// - A session's socket is `DIR/` + 16 hex digits of SHA-256 of its name: short and fixed, so
///   the path fits `sun_path` (ssh binds `PATH.` + 16 random characters first, then links it).
///   A directory too deep for that gets no connection sharing (the block stays usable).
/// - A socket a dead master left behind: `ssh` with `ControlMaster auto` finds the connection
///   refused, unlinks it and becomes the master itself (mux.c). `up` still clears the path, and
///   `down` asks a live master to exit (`ssh -O exit`, argv, no config but the socket) and
///   removes what is left, so no master outlives its session's tunnel.
public struct ConnectionSharing: Sendable {
    /// How long a master stays after its last session ends.
    public static let persist = "10m"
    /// sun_path's 104 bytes on the BSDs (108 on Linux) with its NUL, less the 17 characters ssh
    /// appends for its temporary socket.
    public static let maxSocketPathBytes = 104 - 1 - 17

    public let directory: String
    let runner: ProcessRunner
    /// lstat of a path: nil when nothing is there.
    let inspect: @Sendable (String) -> EntryInfo?
    let uid: uid_t

    /// What the sharing code needs of a directory entry (from lstat, so a link is a link).
    public struct EntryInfo: Sendable, Equatable {
        public var type: mode_t
        public var permissions: mode_t
        public var owner: uid_t
        public init(type: mode_t, permissions: mode_t, owner: uid_t) {
            self.type = type
            self.permissions = permissions
            self.owner = owner
        }
    }

    public init(directory: String, runner: ProcessRunner = LocalProcessRunner(), uid: uid_t = getuid(),
                inspect: @escaping @Sendable (String) -> EntryInfo? = ConnectionSharing.lstatEntry) {
        self.directory = directory
        self.runner = runner
        self.uid = uid
        self.inspect = inspect
    }

    /// `cm` beside dbgbox's ssh config (`~/.ssh/dbgbox/cm`).
    public static func defaultDirectory(config: SSHClientConfigFile) -> String { config.directory + "/cm" }

    /// The control socket of session `name`; nil when the directory is too deep for sun_path.
    public func socketPath(for name: String) -> String? {
        let digest = SHA256.hash(data: Data(name.utf8)).map { String(format: "%02x", $0) }.joined()
        let path = "\(directory)/\(digest.prefix(16))"
        return path.utf8.count <= Self.maxSocketPathBytes ? path : nil
    }

    /// Before `up` writes the block: makes the directory (0700) or checks it is the user's own
    /// and private, and clears whatever is at the session's socket path. Returns the path for
    /// the block, or nil when it would be too long (then the block has no connection sharing).
    public func prepare(name: String) throws -> String? {
        guard let path = socketPath(for: name) else { return nil }
        try ensureDirectory()
        close(name: name)
        return path
    }

    /// Makes the directory 0700 when missing (its parent is dbgbox's own 0700 directory);
    /// refuses one that is not a private directory of this user.
    public func ensureDirectory() throws {
        if inspect(directory) == nil { try LocalFileSystem().createDirectory(directory, mode: 0o700) }
        guard let entry = inspect(directory) else {
            throw FileSystemError.io(path: directory, operation: "create directory", errno: ENOENT)
        }
        guard entry.type == S_IFDIR else {
            throw SharingError.notADirectory(path: directory, what: FileSystemError.typeName(entry.type))
        }
        guard entry.owner == uid else { throw SharingError.notOwned(path: directory, owner: entry.owner) }
        guard entry.permissions & 0o077 == 0 else {
            throw SharingError.notPrivate(path: directory, mode: entry.permissions)
        }
    }

    /// Closes session `name`'s master, if any: a live one is told to exit (it removes its socket
    /// itself); a stale socket, or any other non-directory entry at the path, is removed.
    /// Returns whether anything was there. Never throws: `down` and undo go on regardless.
    @discardableResult
    public func close(name: String) -> Bool {
        // Nothing in a directory that is not this user's private one is touched.
        guard isPrivateDirectory, let path = socketPath(for: name), let entry = inspect(path) else { return false }
        if entry.type == S_IFSOCK, entry.owner == uid {
            _ = try? runner.run(Self.exitArgv(socket: path, alias: SessionName.alias(name)))
        }
        if let left = inspect(path), left.type != S_IFDIR { unlink(path) }
        return true
    }

    /// Whether the directory exists as a directory of this user's that only they can enter.
    var isPrivateDirectory: Bool {
        guard let entry = inspect(directory) else { return false }
        return entry.type == S_IFDIR && entry.owner == uid && entry.permissions & 0o077 == 0
    }

    /// Whether a master answers on session `name`'s socket (`ssh -O check`).
    public func isRunning(name: String) -> Bool {
        guard isPrivateDirectory, let path = socketPath(for: name), inspect(path)?.type == S_IFSOCK else { return false }
        return (try? runner.run(Self.controlArgv("check", socket: path, alias: SessionName.alias(name))))?.succeeded ?? false
    }

    /// `ssh -O exit` on the socket alone: no config is read (`-F /dev/null`), so it works with
    /// the block already removed. Bounded by `timeout`: a master that hangs does not hang `down`.
    public static func exitArgv(socket: String, alias: String) -> [String] {
        controlArgv("exit", socket: socket, alias: alias)
    }

    static func controlArgv(_ command: String, socket: String, alias: String) -> [String] {
        // ssh percent-expands -S: a literal % is %%.
        ["timeout", "10", "ssh", "-F", "/dev/null", "-o", "BatchMode=yes", "-o", "LogLevel=ERROR",
         "-S", socket.replacingOccurrences(of: "%", with: "%%"), "-O", command, alias]
    }

    /// lstat: type, permission bits and owner; nil when nothing is there.
    @Sendable public static func lstatEntry(_ path: String) -> EntryInfo? {
        var st = stat()
        guard lstat(path, &st) == 0 else { return nil }
        return EntryInfo(type: st.st_mode & S_IFMT, permissions: st.st_mode & 0o7777, owner: st.st_uid)
    }
}

/// A control socket directory dbgbox will not use.
public enum SharingError: UserFacingError, Equatable {
    case notADirectory(path: String, what: String)
    case notOwned(path: String, owner: uid_t)
    case notPrivate(path: String, mode: mode_t)

    public var description: String {
        switch self {
        case .notADirectory(let path, let what):
            return "\(path) is \(what), not a directory: ssh's control sockets for dbgbox go there; remove it and run the command again"
        case .notOwned(let path, let owner):
            return "\(path) belongs to uid \(owner), not to you: ssh's control sockets must be in a directory of your own; remove it (as its owner) and run the command again"
        case .notPrivate(let path, let mode):
            return "\(path) has mode \(String(mode, radix: 8)): ssh's control sockets need a directory only you can enter; run `chmod 700 \(path)`"
        }
    }
}
