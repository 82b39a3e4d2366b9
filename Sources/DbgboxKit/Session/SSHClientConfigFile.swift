import Foundation

/// dbgbox's own ssh client config, `~/.ssh/dbgbox/config` (directory 0700, file 0600), holding
/// one marker-delimited Host block per session. ~/.ssh/config reaches it through one Include line
/// (see `SSHConfigInclude`).
///
/// Every edit happens under an exclusive lock on `lockPath` and replaces the file atomically.
/// Bytes outside the block being added, replaced or removed are kept as they are, so adding a
/// block and removing it again leaves the file byte-identical (a file that becomes empty is
/// deleted, so a round trip from no file leaves no file).
public struct SSHClientConfigFile: Sendable {
    public let path: String
    let fs: FileSystem

    public init(path: String, fs: FileSystem = LocalFileSystem()) {
        self.path = path
        self.fs = fs
    }

    /// `~/.ssh/dbgbox/config` under `home`.
    public static func defaultPath(home: String) -> String { "\(home)/.ssh/dbgbox/config" }

    public var directory: String { (path as NSString).deletingLastPathComponent }

    /// The lock every edit of this file, and of the Include line leading to it, holds.
    public var lockPath: String { path + ".lock" }

    /// Adds the block for `block.name`, or replaces that session's block where it stands.
    /// Returns true when a block of that name was there before. Writes nothing when the file
    /// already holds exactly this block.
    @discardableResult
    public func upsert(_ block: SessionHostBlock) throws -> Bool {
        let text = Array(try block.rendered().utf8)
        try ensureDirectory()
        return try fs.withExclusiveLock(lockPath) {
            let original = fs.exists(path) ? [UInt8](try fs.read(path, as: .sshConfig)) : []
            let lines = ConfigText.lines(original)
            var updated: [UInt8]
            let replaced: Bool
            if let region = Self.regions(lines).first(where: { $0.name == block.name })?.lines {
                updated = lines[..<region.lowerBound].flatMap { $0 } + text + lines[region.upperBound...].flatMap { $0 }
                replaced = true
            } else {
                updated = original
                // Our block must start on a line of its own.
                if let last = updated.last, last != ConfigText.newline { updated.append(ConfigText.newline) }
                updated += text
                replaced = false
            }
            if updated != original { try fs.writeAtomically(Data(updated), to: path, mode: nil) }
            return replaced
        }
    }

    /// Removes the block of session `name` (its marker lines and all between); returns whether
    /// there was one.
    @discardableResult
    public func remove(name: String) throws -> Bool {
        guard fs.exists(path) else { return false }
        return try fs.withExclusiveLock(lockPath) {
            guard fs.exists(path) else { return false }
            let lines = ConfigText.lines([UInt8](try fs.read(path, as: .sshConfig)))
            guard let region = Self.regions(lines).first(where: { $0.name == name })?.lines else { return false }
            let kept = lines[..<region.lowerBound].flatMap { $0 } + lines[region.upperBound...].flatMap { $0 }
            if kept.isEmpty {
                try fs.remove(path)
            } else {
                try fs.writeAtomically(Data(kept), to: path, mode: nil)
            }
            return true
        }
    }

    /// The session names that have a block, in file order.
    public func names() throws -> [String] {
        guard fs.exists(path) else { return [] }
        return Self.regions(ConfigText.lines([UInt8](try fs.read(path, as: .sshConfig)))).map(\.name)
    }

    /// The blocks, in file order. Throws `SessionError.malformedBlock` for one edited by hand
    /// (`remove(name:)` still removes it).
    public func blocks() throws -> [SessionHostBlock] {
        guard fs.exists(path) else { return [] }
        let lines = ConfigText.lines([UInt8](try fs.read(path, as: .sshConfig)))
        return try Self.regions(lines).map { region in
            let inner = lines[(region.lines.lowerBound + 1)..<max(region.lines.lowerBound + 1, region.lines.upperBound - 1)]
            guard let block = SessionHostBlock.parse(name: region.name, lines: inner.map(ConfigText.content)) else {
                throw SessionError.malformedBlock(name: region.name, path: path)
            }
            return block
        }
    }

    /// The block of session `name`, if any.
    public func block(named name: String) throws -> SessionHostBlock? {
        try blocks().first { $0.name == name }
    }

    /// Creates the directory 0700 (and missing parents, such as ~/.ssh, 0700) when missing.
    func ensureDirectory() throws {
        if !directory.isEmpty && !fs.isDirectory(directory) {
            try fs.createDirectory(directory, mode: 0o700)
        }
    }

    /// Each block: its name and the line indices from its begin marker through its end marker.
    /// A begin marker without its end marker (a hand edit) runs to the next begin marker or
    /// the end of the file.
    static func regions(_ lines: [ArraySlice<UInt8>]) -> [(name: String, lines: Range<Int>)] {
        let beginPrefix = SessionHostBlock.beginMarker("")
        var result: [(name: String, lines: Range<Int>)] = []
        var index = 0
        while index < lines.count {
            let text = ConfigText.content(lines[index])
            guard text.hasPrefix(beginPrefix) else { index += 1; continue }
            let name = String(text.dropFirst(beginPrefix.count))
            guard (try? SessionName.validate(name)) != nil else { index += 1; continue }
            let end = SessionHostBlock.endMarker(name)
            var stop = index + 1
            while stop < lines.count {
                let inner = ConfigText.content(lines[stop])
                if inner == end { stop += 1; break }
                if inner.hasPrefix(beginPrefix) { break }
                stop += 1
            }
            result.append((name, index..<stop))
            index = stop
        }
        return result
    }
}

/// Splitting config text into lines that keep their terminators, so that joining them gives
/// back every byte.
enum ConfigText {
    static let newline = UInt8(ascii: "\n")
    static let carriageReturn = UInt8(ascii: "\r")

    /// The lines, each with its "\n" (a last line without one as it is).
    static func lines(_ bytes: [UInt8]) -> [ArraySlice<UInt8>] {
        var result: [ArraySlice<UInt8>] = []
        var start = 0
        while start < bytes.count {
            let stop = bytes[start...].firstIndex(of: newline).map { $0 + 1 } ?? bytes.count
            result.append(bytes[start..<stop])
            start = stop
        }
        return result
    }

    /// A line's text without its "\n" or "\r\n".
    static func content(_ line: ArraySlice<UInt8>) -> String {
        var text = line
        if text.last == newline { text = text.dropLast() }
        if text.last == carriageReturn { text = text.dropLast() }
        return String(decoding: text, as: UTF8.self)
    }

    /// The terminator a line ends with ("", "\n" or "\r\n").
    static func terminator(_ line: ArraySlice<UInt8>) -> [UInt8] {
        guard line.last == newline else { return [] }
        return line.dropLast().last == carriageReturn ? [carriageReturn, newline] : [newline]
    }
}
