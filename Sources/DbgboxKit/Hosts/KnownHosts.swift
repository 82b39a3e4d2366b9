import Foundation

/// One known_hosts line that a removal took out.
public struct RemovedKnownHostsEntry: Sendable, Equatable {
    public var path: String
    /// 1-based line number in the file before the edit.
    public var line: Int
    /// The host name that matched (one of the names asked for).
    public var host: String
}

/// Editing a user's known_hosts file without losing a byte it did not need to lose.
public struct KnownHostsFile: Sendable {
    public let path: String
    let fs: FileSystem

    public init(path: String, fs: FileSystem = LocalFileSystem()) {
        self.path = path
        self.fs = fs
    }

    /// Removes every entry for any of `hosts` (e.g. "[127.0.0.1]:2201"), hashed or plain,
    /// leaving the bytes `ssh-keygen -R` would leave. Atomic, under a file lock, with the
    /// previous contents kept as `path.old`. A missing file or no match writes nothing.
    /// With `dryRun`, reports what it would remove and writes nothing.
    public func remove(hosts: [String], dryRun: Bool = false) throws -> [RemovedKnownHostsEntry] {
        fatalError("KnownHostsFile.remove not implemented yet")
    }
}

/// dbgbox's own known_hosts file of pinned container host keys, one line per alias
/// `dbgbox-<container>`. ssh uses it through `-o UserKnownHostsFile=… -o HostKeyAlias=…`.
public struct PinnedHostKeys: Sendable {
    public let path: String
    let fs: FileSystem

    public init(path: String, fs: FileSystem = LocalFileSystem()) {
        self.path = path
        self.fs = fs
    }

    /// The default location: `~/.ssh/dbgbox/known_hosts` under `home`.
    public static func defaultPath(home: String) -> String { "\(home)/.ssh/dbgbox/known_hosts" }

    /// Records `key` for `alias`, replacing any earlier key for that alias (under a lock, atomically;
    /// creates the directory 0700 and the file 0600 when missing).
    public func pin(alias: String, key: SSHPublicKey) throws {
        fatalError("PinnedHostKeys.pin not implemented yet")
    }

    /// Removes the alias's line; returns whether there was one.
    @discardableResult
    public func remove(alias: String) throws -> Bool {
        fatalError("PinnedHostKeys.remove not implemented yet")
    }

    /// The key pinned for `alias`, if any.
    public func key(for alias: String) throws -> SSHPublicKey? {
        fatalError("PinnedHostKeys.key not implemented yet")
    }
}
