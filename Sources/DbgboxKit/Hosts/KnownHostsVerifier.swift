import Foundation

/// Checks a server's host key against known_hosts files as OpenSSH's check_host_key does
/// (hostfile.c), and records a new one by appending a single line.
///
/// The files are read in order (the user's, then the global ones): lines are read by the same
/// `KnownHostsLine` code that mirrors OpenSSH's hostkeys_foreach, so plain, hashed `|1|`, comma
/// lists, `!negation` and wildcards match exactly as in ssh. `@cert-authority` lines are ignored
/// (dbgbox checks plain host keys), `@revoked` lines revoke a key.
public struct KnownHostsVerifier: Sendable {
    public enum Verdict: Sendable, Equatable {
        /// The key is recorded for this host at `file`:`line` (1-based).
        case match(file: String, line: Int)
        /// The host has a recorded key of the same type that is not this one: a changed key.
        case mismatch(file: String, line: Int, expectedFingerprint: String)
        /// No line for this host with this key type.
        case notFound
        /// An @revoked line lists this key.
        case revoked(file: String, line: Int)
    }

    public let files: [String]
    let fs: FileSystem

    /// `files` in the order OpenSSH reads them: UserKnownHostsFile entries, then GlobalKnownHostsFile ones.
    public init(files: [String], fs: FileSystem = LocalFileSystem()) {
        self.files = files
        self.fs = fs
    }

    /// The default files for a user: ~/.ssh/known_hosts, ~/.ssh/known_hosts2, /etc/ssh/ssh_known_hosts(2).
    public static func defaultFiles(home: String) -> [String] {
        ["\(home)/.ssh/known_hosts", "\(home)/.ssh/known_hosts2", "/etc/ssh/ssh_known_hosts", "/etc/ssh/ssh_known_hosts2"]
    }

    /// The files a resolved hop uses: its UserKnownHostsFile list, then its GlobalKnownHostsFile list.
    public init(resolved: ResolvedHost, fs: FileSystem = LocalFileSystem()) {
        self.init(files: resolved.userKnownHostsFiles + resolved.globalKnownHostsFiles, fs: fs)
    }

    /// The name a host key is filed under (misc.c put_host_port): `host` for port 22, else `[host]:port`.
    public static func lookupName(host: String, port: Int) -> String {
        port == 22 || port == 0 ? host : "[\(host)]:\(port)"
    }

    /// Checks `keyBlob` (the wire-format key the server presented) for `host`:`port`, or for
    /// `hostKeyAlias` when given (used as is, like ssh's HostKeyAlias).
    ///
    /// As OpenSSH: a revoked key wins over everything; an entry with the same key is a match;
    /// else an entry of the same key type with another key is a mismatch (the first such one
    /// is named). Entries of another key type are not a mismatch (see the tunnel engine's host
    /// key preference: it should prefer types from `knownKeyTypes`). Unreadable files count as empty.
    public func verify(host: String, port: Int, keyType: String, keyBlob: Data, hostKeyAlias: String? = nil) throws -> Verdict {
        let name = hostKeyAlias ?? Self.lookupName(host: host.lowercased(), port: port)
        let type = Self.blobType(keyBlob) ?? keyType
        var mismatch: Verdict?
        for entry in try entries(for: name) {
            if entry.revoked {
                if entry.blob == keyBlob { return .revoked(file: entry.file, line: entry.line) }
                continue
            }
            guard entry.type == type else { continue }
            if entry.blob == keyBlob {
                if let revokedAt = try firstRevocation(of: keyBlob, name: name) { return revokedAt }
                return .match(file: entry.file, line: entry.line)
            }
            if mismatch == nil {
                let fingerprint = SSHPublicKey(type: entry.type, blob: entry.blob).fingerprintSHA256
                mismatch = .mismatch(file: entry.file, line: entry.line, expectedFingerprint: fingerprint)
            }
        }
        return mismatch ?? .notFound
    }

    /// The key types recorded for `host`:`port` (or the alias), in file order without repeats:
    /// what OpenSSH's order_hostkeyalgs puts first in its host key algorithm preference.
    public func knownKeyTypes(host: String, port: Int, hostKeyAlias: String? = nil) throws -> [String] {
        let name = hostKeyAlias ?? Self.lookupName(host: host.lowercased(), port: port)
        var types: [String] = []
        for entry in try entries(for: name) where !entry.revoked && !types.contains(entry.type) {
            types.append(entry.type)
        }
        return types
    }

    /// Appends one line for the key to `file`, as ssh's add_host_to_hostfile writes it: the name
    /// lowercased (`[host]:port` for a port other than 22), or `|1|salt|hash` of that name with a
    /// random 20-byte salt when `hash` is true, then `TYPE BASE64`, then "\n".
    ///
    /// Creates the file's directory 0700 and the file 0600 when missing, holds `file.lock`
    /// meanwhile, and never rewrites existing bytes. Unlike ssh, when the file does not end
    /// in a newline, one is written first: ssh would glue the new entry onto the last line.
    public func appendLine(host: String, port: Int, keyType: String, keyBlob: Data, hash: Bool, to file: String) throws {
        let name = Self.lookupName(host: host.lowercased(), port: port)
        let field = hash ? KnownHostsLine.hashedName(name, salt: Self.randomSalt()) : name
        let type = Self.blobType(keyBlob) ?? keyType
        let directory = (file as NSString).deletingLastPathComponent
        if !directory.isEmpty && !fs.isDirectory(directory) {
            try fs.createDirectory(directory, mode: 0o700)
        }
        try fs.withExclusiveLock(file + ".lock") {
            var bytes = Data()
            if fs.exists(file), let last = try fs.read(file, as: .knownHosts).last, last != KnownHostsText.newline {
                bytes.append(KnownHostsText.newline)
            }
            bytes.append(contentsOf: Array("\(field) \(type) \(keyBlob.base64EncodedString())\n".utf8))
            try fs.append(bytes, to: file, mode: 0o600)
        }
    }

    // MARK: - Reading

    struct Entry {
        var file: String
        var line: Int
        var revoked: Bool
        var type: String
        var blob: Data
    }

    /// Every valid line of every file whose host field matches `name` (not negated), in order;
    /// @cert-authority lines are left out.
    func entries(for name: String) throws -> [Entry] {
        var result: [Entry] = []
        for file in files where fs.exists(file) {
            for (index, line) in KnownHostsText.lines(try fs.read(file, as: .knownHosts)).enumerated() {
                guard case .entry(matched: name?, marker: let marked) = KnownHostsLine.classify(line, hosts: [name]) else {
                    continue
                }
                let fields = String(decoding: line, as: UTF8.self)
                    .split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
                var rest = fields[...]
                var revoked = false
                if marked {
                    guard rest.popFirst() == "@revoked" else { continue } // @cert-authority
                    revoked = true
                }
                // Host field, then the type name, then the base64 key.
                guard rest.count >= 3, let blob = Data(base64Encoded: rest[rest.startIndex + 2]),
                      let type = Self.blobType(blob) else { continue }
                result.append(Entry(file: file, line: index + 1, revoked: revoked, type: type, blob: blob))
            }
        }
        return result
    }

    private func firstRevocation(of blob: Data, name: String) throws -> Verdict? {
        for entry in try entries(for: name) where entry.revoked && entry.blob == blob {
            return .revoked(file: entry.file, line: entry.line)
        }
        return nil
    }

    /// The key type named inside a wire-format blob.
    static func blobType(_ blob: Data) -> String? {
        var reader = SSHWireReader(blob)
        return try? reader.text()
    }

    static func randomSalt() -> Data {
        var generator = SystemRandomNumberGenerator()
        return Data((0..<20).map { _ in UInt8.random(in: 0...255, using: &generator) })
    }
}
