import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The one line of the user's ~/.ssh/config that dbgbox writes: `Include ~/.ssh/dbgbox/config`,
/// as the file's first line.
///
/// Why first: ssh reads Include in place and keeps the first value it obtains for each option,
/// so a `Host *` block above the line (devpod#899) would set Port, User or IdentityFile for
/// `dbgbox-<name>` before dbgbox's block is read. Included at the top, dbgbox's blocks only ever
/// match `dbgbox-*` names, and ssh restores the top-level state after the included file, so every
/// line below behaves as before.
///
/// Byte preservation: the line is prepended and every other byte of the file stays, in order
/// (CRLF files get a CRLF line). Mode and owner are kept; a symlinked config is edited where it
/// points, leaving the link. Edits are atomic and hold `SSHClientConfigFile.lockPath`, the lock
/// of dbgbox's own file, so adding the line, adding blocks and removing the line when the last
/// block goes are serialized between dbgbox processes.
///
/// Ownership: dbgbox removes only a line it added. When it adds one it leaves a note beside its
/// own config (`<dbgbox config>.include`); a line the user wrote is never removed.
public struct SSHConfigInclude: Sendable {
    /// How the Include names dbgbox's file by default. ssh expands `~` from the passwd entry, not
    /// from $HOME.
    public static let defaultTarget = "~/.ssh/dbgbox/config"

    /// The user's config, usually `<home>/.ssh/config`.
    public let userConfigPath: String
    /// The Include argument as written (default `~/.ssh/dbgbox/config`; tests pass an absolute path).
    public let includeTarget: String
    /// The passwd home, for comparing other spellings of the target (`~/…`, relative, absolute).
    public let home: String
    public let dbgboxConfig: SSHClientConfigFile
    let fs: FileSystem
    let probe: ConfigFileProbe

    public init(home: String, dbgboxConfig: SSHClientConfigFile, userConfigPath: String? = nil,
                includeTarget: String = SSHConfigInclude.defaultTarget,
                fs: FileSystem = LocalFileSystem(), probe: ConfigFileProbe = LocalConfigFileProbe()) {
        self.home = home
        self.dbgboxConfig = dbgboxConfig
        self.userConfigPath = userConfigPath ?? "\(home)/.ssh/config"
        self.includeTarget = includeTarget
        self.fs = fs
        self.probe = probe
    }

    /// The exact line (without its line ending).
    public var line: String { "Include \(SessionHostBlock.quotedArgument(includeTarget))" }

    /// What `ensureInclude()` did.
    public enum EnsureOutcome: Sendable, Equatable {
        /// The file's first directive already includes dbgbox's config: nothing written.
        case alreadyFirst
        /// The line was prepended to the existing file.
        case added
        /// There was no file; it was created (mode 0600, ~/.ssh 0700 if missing) with the line.
        case created
        /// The file includes dbgbox's config on `line` (1-based), below other directives. dbgbox
        /// respects the user's placement (it may be deliberate, e.g. inside a Match) and writes
        /// nothing; the caller should warn that settings above that line (such as a `Host *`
        /// block) override dbgbox's blocks. See `warning`.
        case presentElsewhere(line: Int)
        /// The file cannot be rewritten (read-only, not writable, a link into a read-only store
        /// such as Nix/home-manager's). Nothing was written; the caller prints `instruction`.
        case notWritable(path: String, reason: String)
    }

    /// What `removeIncludeIfUnused()` did.
    public enum RemoveOutcome: Sendable, Equatable {
        /// The line dbgbox added was removed; every other byte stays.
        case removed
        /// dbgbox had created the file and the line was all it held: the file was deleted.
        case removedFile
        /// Sessions still have blocks (`count` of them): the line stays.
        case stillInUse(count: Int)
        /// dbgbox did not add a line (the user wrote it, or there is none): nothing touched.
        case notAddedByDbgbox
        /// dbgbox had added the line, but it is no longer the file's first directive (edited by
        /// hand): nothing touched, and dbgbox forgets it added it.
        case changedByUser
        /// The file cannot be rewritten: nothing was written; the caller prints `instruction`.
        case notWritable(path: String, reason: String)
    }

    /// Makes sure the user's config starts with the Include line (see the type's documentation).
    /// Throws only for unexpected I/O failures; a file dbgbox may not edit is an outcome.
    public func ensureInclude() throws -> EnsureOutcome {
        try dbgboxConfig.ensureDirectory()
        return try fs.withExclusiveLock(dbgboxConfig.lockPath) {
            guard fs.exists(userConfigPath) else { return try create() }
            let original: [UInt8]
            switch readUserConfig() {
            case .success(let bytes): original = bytes
            case .failure(let problem): return .notWritable(path: userConfigPath, reason: problem.reason)
            }
            let lines = ConfigText.lines(original)
            let directives = Self.directives(lines)
            if let first = directives.first, includesTarget(first.line) { return .alreadyFirst }
            if let other = directives.first(where: { includesTarget($0.line) }) {
                return .presentElsewhere(line: other.index + 1)
            }
            // A CRLF file gets a CRLF line, so that editors keep seeing one line-ending style.
            let ending = lines.first.map(ConfigText.terminator).flatMap { $0.isEmpty ? nil : $0 } ?? [ConfigText.newline]
            let updated = Array(line.utf8) + ending + original
            if let blocker = try rewriteUserConfig({ try fs.writeAtomically(Data(updated), to: $0, mode: nil) }) {
                return .notWritable(path: userConfigPath, reason: blocker)
            }
            try recordOwnership(created: false)
            return .added
        }
    }

    /// Removes the line `ensureInclude()` added once dbgbox's config has no blocks left; call it
    /// after `SSHClientConfigFile.remove(name:)`. Every other byte of the file stays.
    public func removeIncludeIfUnused() throws -> RemoveOutcome {
        guard fs.isDirectory(dbgboxConfig.directory) else { return .notAddedByDbgbox }
        return try fs.withExclusiveLock(dbgboxConfig.lockPath) {
            let names = try dbgboxConfig.names()
            if !names.isEmpty { return .stillInUse(count: names.count) }
            guard let created = try ownership() else { return .notAddedByDbgbox }
            guard fs.exists(userConfigPath) else {
                try fs.remove(ownershipPath)
                return .changedByUser
            }
            let original: [UInt8]
            switch readUserConfig() {
            case .success(let bytes): original = bytes
            case .failure(let problem): return .notWritable(path: userConfigPath, reason: problem.reason)
            }
            let lines = ConfigText.lines(original)
            guard let first = Self.directives(lines).first, ConfigText.content(first.line) == line else {
                try fs.remove(ownershipPath)
                return .changedByUser
            }
            let kept = lines[..<first.index].flatMap { $0 } + lines[(first.index + 1)...].flatMap { $0 }
            let blocker = try rewriteUserConfig { target in
                if kept.isEmpty && created {
                    try fs.remove(target)
                } else {
                    try fs.writeAtomically(Data(kept), to: target, mode: nil)
                }
            }
            if let blocker { return .notWritable(path: userConfigPath, reason: blocker) }
            try fs.remove(ownershipPath)
            return kept.isEmpty && created ? .removedFile : .removed
        }
    }

    /// The one-line instruction for the user when dbgbox may not edit the file, or the warning
    /// when the Include is not first; nil for outcomes that need no words.
    public func instruction(for outcome: EnsureOutcome) -> String? {
        switch outcome {
        case .alreadyFirst, .added, .created:
            return nil
        case .presentElsewhere(let number):
            return "\(userConfigPath) includes \(includeTarget) on line \(number), not first: settings above it (such as a `Host *` block) override dbgbox's; move that line to the top if `ssh dbgbox-NAME` misbehaves"
        case .notWritable(let path, let reason):
            return "dbgbox cannot edit \(path) (\(reason)): add this line at the very top of it (in home-manager: programs.ssh.includes): \(line)"
        }
    }

    /// The one-line instruction when the line could not be removed; nil otherwise.
    public func instruction(for outcome: RemoveOutcome) -> String? {
        guard case .notWritable(let path, let reason) = outcome else { return nil }
        return "dbgbox cannot edit \(path) (\(reason)): remove the line `\(line)` from it, no dbgbox session uses it any more"
    }

    // MARK: - Internals

    private func create() throws -> EnsureOutcome {
        let sshDir = (userConfigPath as NSString).deletingLastPathComponent
        do {
            if !sshDir.isEmpty && !fs.isDirectory(sshDir) { try fs.createDirectory(sshDir, mode: 0o700) }
            try fs.writeAtomically(Data((line + "\n").utf8), to: userConfigPath, mode: 0o600)
        } catch let error as FileSystemError where Self.isPermissionProblem(error) {
            return .notWritable(path: userConfigPath, reason: Self.reason(error))
        }
        try recordOwnership(created: true)
        return .created
    }

    struct ReadProblem: Error { var reason: String }

    private func readUserConfig() -> Result<[UInt8], ReadProblem> {
        do {
            return .success([UInt8](try fs.read(userConfigPath, as: .sshConfig)))
        } catch {
            return .failure(ReadProblem(reason: "it cannot be read (\(Self.reason(error)))"))
        }
    }

    /// Runs `write` on the file the user's config resolves to (through symlinks), unless that
    /// file may not be rewritten; returns why not, or nil once written.
    private func rewriteUserConfig(_ write: (String) throws -> Void) throws -> String? {
        let target = probe.resolvedPath(userConfigPath) ?? userConfigPath
        if let blocker = probe.writeBlocker(target) { return blocker }
        do {
            try write(target)
        } catch let error as FileSystemError where Self.isPermissionProblem(error) {
            return Self.reason(error)
        }
        return nil
    }

    /// Records that dbgbox added the line (and whether it created the file), for removal.
    var ownershipPath: String { dbgboxConfig.path + ".include" }

    private func recordOwnership(created: Bool) throws {
        try fs.writeAtomically(Data("\(created ? "created" : "prepended") \(userConfigPath)\n".utf8),
                               to: ownershipPath, mode: 0o600)
    }

    /// nil when dbgbox did not add the line to this file; else whether it created the file.
    private func ownership() throws -> Bool? {
        guard fs.exists(ownershipPath) else { return nil }
        let text = String(decoding: try fs.read(ownershipPath, as: .sessionRecord), as: UTF8.self)
        if text == "created \(userConfigPath)\n" { return true }
        if text == "prepended \(userConfigPath)\n" { return false }
        return nil
    }

    /// The lines that are neither blank nor comments, with their indices.
    static func directives(_ lines: [ArraySlice<UInt8>]) -> [(index: Int, line: ArraySlice<UInt8>)] {
        lines.enumerated().compactMap { index, line in
            let text = ConfigText.content(line).trimmingCharacters(in: .whitespaces)
            return text.isEmpty || text.hasPrefix("#") ? nil : (index, line)
        }
    }

    /// Whether `line` is an Include naming dbgbox's config, in any spelling ssh reads the same:
    /// `~/…`, absolute, relative to ~/.ssh, or a glob matching it.
    func includesTarget(_ line: ArraySlice<UInt8>) -> Bool {
        guard let parsed = try? SSHConfigLine.parse(ConfigText.content(line)), parsed.keyword == "include" else {
            return false
        }
        let wanted = expand(includeTarget)
        return parsed.args.contains { arg in
            let pattern = expand(arg)
            return pattern == wanted || fnmatch(pattern, wanted, FNM_PATHNAME) == 0
        }
    }

    /// An Include argument as ssh resolves it for the user's config.
    private func expand(_ arg: String) -> String {
        let base = home.hasSuffix("/") ? String(home.dropLast()) : home
        if arg == "~" { return base }
        if arg.hasPrefix("~/") { return base + "/" + arg.dropFirst(2) }
        if arg.hasPrefix("/") || arg.hasPrefix("~") { return arg }
        return base + "/.ssh/" + arg
    }

    static func isPermissionProblem(_ error: FileSystemError) -> Bool {
        guard case .io(_, _, let code) = error else { return false }
        return code == EACCES || code == EPERM || code == EROFS
    }

    static func reason(_ error: Error) -> String {
        if case .io(_, _, let code)? = error as? FileSystemError { return String(cString: strerror(code)) }
        return String(describing: error)
    }
}

/// The two questions about a config file that the FileSystem protocol does not answer.
public protocol ConfigFileProbe: Sendable {
    /// The file a rewrite must replace: `path` with every symlink resolved (nil if unresolvable).
    func resolvedPath(_ path: String) -> String?
    /// Why the file at `path` (already resolved) must not be rewritten, or nil when it may be.
    func writeBlocker(_ path: String) -> String?
}

/// The real file system's answers.
public struct LocalConfigFileProbe: ConfigFileProbe {
    public init() {}

    public func resolvedPath(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    /// A file without any write bit counts as read-only even for root: it is how Nix, home-manager
    /// and users say "do not edit". Otherwise the file and its directory (for the atomic rename)
    /// must be writable by this process.
    public func writeBlocker(_ path: String) -> String? {
        var st = stat()
        guard stat(path, &st) == 0 else { return "cannot stat it: \(String(cString: strerror(errno)))" }
        if st.st_mode & 0o222 == 0 { return "it is read-only, mode \(String(st.st_mode & 0o7777, radix: 8))" }
        if access(path, W_OK) != 0 { return "it is not writable: \(String(cString: strerror(errno)))" }
        let directory = (path as NSString).deletingLastPathComponent
        if access(directory.isEmpty ? "." : directory, W_OK | X_OK) != 0 {
            return "its directory \(directory) is not writable: \(String(cString: strerror(errno)))"
        }
        return nil
    }
}
