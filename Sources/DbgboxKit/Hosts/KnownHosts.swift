import Foundation

/// What can go wrong with dbgbox's known_hosts files.
public enum KnownHostsError: UserFacingError, Equatable {
    case invalidAlias(String)

    public var description: String {
        switch self {
        case .invalidAlias(let alias):
            return "invalid host key alias \"\(alias)\": use letters, digits, '-', '_' and '.' (e.g. dbgbox-NAME)"
        }
    }
}

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
    /// leaving the bytes that `ssh-keygen -R HOST` run once per host, in order, would leave.
    /// Atomic, under a file lock, with the previous contents kept as `path.old`. A missing file or
    /// no match writes nothing. With `dryRun`, reports what it would remove and writes nothing.
    ///
    /// Lines are read as OpenSSH's hostkeys_foreach does (see `KnownHostsLine.classify`); a run
    /// that removes something writes each kept line back followed by "\n" (so a last line without
    /// one gains it, and a line is cut at a NUL byte, as ssh-keygen does), and the next host's run
    /// reads those bytes. Markers (@cert-authority, @revoked) are kept. Where ssh-keygen refuses
    /// the whole file because some line is invalid, this keeps every invalid line verbatim (even
    /// one naming a host asked for) and still removes the valid matching ones. The new file gets
    /// the old mode masked with 0644, like ssh-keygen's fchmod.
    public func remove(hosts: [String], dryRun: Bool = false) throws -> [RemovedKnownHostsEntry] {
        guard !hosts.isEmpty, fs.exists(path) else { return [] }
        // Read before the lock file is made: an odd file (a directory, a FIFO) leaves nothing behind.
        let checked = try fs.read(path, as: .knownHosts)
        if dryRun { return Self.edit(checked, removing: hosts, path: path).removed }
        return try fs.withExclusiveLock(path + ".lock") {
            guard fs.exists(path) else { return [] }
            let original = try fs.read(path, as: .knownHosts)
            let (kept, removed) = Self.edit(original, removing: hosts, path: path)
            guard !removed.isEmpty else { return [] }
            let mode = try fs.mode(of: path)
            try fs.writeAtomically(original, to: path + ".old", mode: mode)
            try fs.writeAtomically(kept, to: path, mode: mode & 0o644)
            return removed
        }
    }

    /// The file without the entries for `hosts`, byte for byte as successive `ssh-keygen -R`
    /// runs leave it; the removed entries in file order, numbered as in `data`.
    static func edit(_ data: Data, removing hosts: [String], path: String) -> (kept: Data, removed: [RemovedKnownHostsEntry]) {
        var current = [UInt8](data)
        // The line number in `data` of each line of `current`.
        var numbers = ConfigText.lines(current).indices.map { $0 + 1 }
        var removed: [RemovedKnownHostsEntry] = []
        for host in hosts {
            var buffer = GetlineBuffer()
            var kept: [UInt8] = []
            var keptNumbers: [Int] = []
            var removedHere: [RemovedKnownHostsEntry] = []
            // Lines with their "\n", as getline returns them.
            for (index, raw) in ConfigText.lines(current).enumerated() {
                let line = buffer.load(raw)
                if case .entry(_?, false) = KnownHostsLine.classify(&buffer, hosts: [host]) {
                    removedHere.append(RemovedKnownHostsEntry(path: path, line: numbers[index], host: host))
                } else {
                    kept.append(contentsOf: line)
                    kept.append(KnownHostsText.newline)
                    keptNumbers.append(numbers[index])
                }
            }
            // ssh-keygen rewrites the file only when it removed something.
            guard !removedHere.isEmpty else { continue }
            current = kept
            numbers = keptNumbers
            removed += removedHere
        }
        return (Data(current), removed.sorted { $0.line < $1.line })
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
        try Self.validate(alias: alias)
        let directory = (path as NSString).deletingLastPathComponent
        if !directory.isEmpty && !fs.isDirectory(directory) {
            try fs.createDirectory(directory, mode: 0o700)
        }
        try fs.withExclusiveLock(path + ".lock") {
            var (others, _) = try linesWithout(alias)
            others.append(contentsOf: Array("\(alias) \(key.type) \(key.blob.base64EncodedString())\n".utf8))
            try fs.writeAtomically(others, to: path, mode: nil) // a new file is 0600
        }
    }

    /// Removes the alias's line; returns whether there was one.
    @discardableResult
    public func remove(alias: String) throws -> Bool {
        guard fs.exists(path) else { return false }
        return try fs.withExclusiveLock(path + ".lock") {
            let (others, found) = try linesWithout(alias)
            if found { try fs.writeAtomically(others, to: path, mode: nil) }
            return found
        }
    }

    /// The key pinned for `alias`, if any.
    public func key(for alias: String) throws -> SSHPublicKey? {
        guard fs.exists(path) else { return nil }
        for line in KnownHostsText.lines(try fs.read(path, as: .knownHosts)) {
            guard let rest = Self.rest(of: line, alias: alias) else { continue }
            return try SSHPublicKey(line: String(decoding: rest, as: UTF8.self))
        }
        return nil
    }

    /// The file's bytes without `alias`'s lines (every other line as it was, plus a final
    /// newline if the file lacked one), and whether there were any.
    private func linesWithout(_ alias: String) throws -> (Data, Bool) {
        guard fs.exists(path) else { return (Data(), false) }
        var out = Data()
        var found = false
        for line in KnownHostsText.lines(try fs.read(path, as: .knownHosts), keepNUL: true) {
            if Self.rest(of: line, alias: alias) != nil {
                found = true
            } else {
                out.append(contentsOf: line)
                out.append(KnownHostsText.newline)
            }
        }
        return (out, found)
    }

    /// The bytes after `ALIAS` and its blanks when `line` is `alias`'s entry.
    private static func rest(of line: ArraySlice<UInt8>, alias: String) -> ArraySlice<UInt8>? {
        let name = Array(alias.utf8)
        guard line.starts(with: name) else { return nil }
        let after = line.dropFirst(name.count)
        guard let first = after.first, first == UInt8(ascii: " ") || first == UInt8(ascii: "\t") else { return nil }
        return after.drop(while: { $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\t") })
    }

    /// An alias is one known_hosts host field that matches only itself.
    static func validate(alias: String) throws {
        let forbidden = Set(" \t\n\r,*?!|#@[]\0")
        guard !alias.isEmpty, !alias.contains(where: { forbidden.contains($0) }) else {
            throw KnownHostsError.invalidAlias(alias)
        }
    }
}

/// Splitting known_hosts bytes the way getline does.
enum KnownHostsText {
    static let newline = UInt8(ascii: "\n")

    /// The lines without their "\n"; a final line without one counts. Unless `keepNUL`, each
    /// line is cut at its first NUL byte, as OpenSSH's C strings cut it.
    static func lines(_ data: Data, keepNUL: Bool = false) -> [ArraySlice<UInt8>] {
        let bytes = [UInt8](data)
        var result: [ArraySlice<UInt8>] = []
        var start = 0
        while start < bytes.count {
            let stop = bytes[start...].firstIndex(of: newline) ?? bytes.count
            var line = bytes[start..<stop]
            if !keepNUL, let nul = line.firstIndex(of: 0) { line = line[..<nul] }
            result.append(line)
            start = stop + 1
        }
        return result
    }
}
