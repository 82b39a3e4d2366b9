import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Why `dbgbox keygen` refused.
public enum KeygenError: UserFacingError, Equatable {
    case rsaRefused
    case unknownType(String)
    case invalidName(String, reason: String)
    case alreadyExists(String)
    case notADirectory(String)
    case invalidComment(String)

    public var description: String {
        switch self {
        case .rsaRefused:
            return "libssh2 1.10 cannot sign with rsa-sha2-256/512, so OpenSSH ≥ 8.8 rejects RSA keys from dbgbox's tunnel: use --type ed25519 (the default)"
        case .unknownType(let type):
            return "unknown key type \"\(type)\": use --type ed25519 (the default) or --type ecdsa"
        case .invalidName(let name, let reason):
            return "invalid key name \"\(name)\": \(reason); use a plain name such as dbgbox (files id_NAME and id_NAME.pub)"
        case .alreadyExists(let path):
            return "\(path) already exists: pass --force to replace the key pair (the old key stops working), or choose another NAME"
        case .notADirectory(let path):
            return "\(path) exists and is not a directory: give --dir a directory"
        case .invalidComment(let comment):
            return "--comment \(shown(comment)) contains a control character (a newline would put a second line in the .pub file): give a one-line comment such as alice@laptop"
        }
    }
}

/// What `dbgbox keygen` asks for, with paths already expanded.
public struct KeygenRequest: Sendable {
    public var name: String
    public var directory: String
    public var algorithm: SSHKeyAlgorithm
    public var comment: String
    public var force: Bool

    public init(name: String = "dbgbox", directory: String, algorithm: SSHKeyAlgorithm = .ed25519,
                comment: String, force: Bool = false) {
        self.name = name
        self.directory = directory
        self.algorithm = algorithm
        self.comment = comment
        self.force = force
    }

    public var privateKeyPath: String { "\(directory.hasSuffix("/") ? String(directory.dropLast()) : directory)/id_\(name)" }
    public var publicKeyPath: String { privateKeyPath + ".pub" }
}

/// What a keygen wrote.
public struct KeygenResult: Sendable {
    public var privateKeyPath: String
    public var publicKeyPath: String
    public var publicKey: SSHPublicKey
    /// The git work tree the key directory lies in, if any: the caller warns about it.
    public var gitWorkTree: String?
}

/// Writes a new key pair: private key 0600 from its first byte, public key 0644, never half a pair.
public struct KeyPairWriter: Sendable {
    let fs: FileSystem

    public init(fs: FileSystem = LocalFileSystem()) {
        self.fs = fs
    }

    /// NAME becomes part of a file name: no slash, not empty, not hidden, no NUL.
    public static func validate(name: String) throws {
        if name.isEmpty { throw KeygenError.invalidName(name, reason: "it is empty") }
        if name.contains("/") { throw KeygenError.invalidName(name, reason: "it contains '/' (use --dir for the directory)") }
        if name.hasPrefix(".") { throw KeygenError.invalidName(name, reason: "it starts with '.'") }
        if name.contains("\0") || name.contains("\n") { throw KeygenError.invalidName(name, reason: "it contains a control character") }
    }

    /// The comment ends the .pub line: no control characters (C0, DEL, C1), so it stays one line.
    public static func validate(comment: String) throws {
        if comment.unicodeScalars.contains(where: { $0.value < 0x20 || (0x7f...0x9f).contains($0.value) }) {
            throw KeygenError.invalidComment(comment)
        }
    }

    /// Generates a key (or writes `key`, for tests) as the request says.
    public func write(_ request: KeygenRequest, key given: OpenSSHPrivateKey? = nil) throws -> KeygenResult {
        try Self.validate(name: request.name)
        try Self.validate(comment: given?.comment ?? request.comment)
        if fs.exists(request.directory) {
            guard fs.isDirectory(request.directory) else { throw KeygenError.notADirectory(request.directory) }
        } else {
            try fs.createDirectory(request.directory, mode: 0o700)
        }
        let privatePath = request.privateKeyPath
        let publicPath = request.publicKeyPath
        if !request.force {
            for path in [privatePath, publicPath] where fs.exists(path) {
                throw KeygenError.alreadyExists(path)
            }
        }
        let key = given ?? OpenSSHPrivateKey.generate(request.algorithm, comment: request.comment)
        // writeAtomically creates its temporary file 0600 with mkstemp: the secret is never
        // readable by others, not even before the final rename.
        try fs.writeAtomically(key.fileContents, to: privatePath, mode: 0o600)
        do {
            try fs.writeAtomically(key.publicKey.publicKeyFileContents, to: publicPath, mode: 0o644)
        } catch {
            try? fs.remove(privatePath)
            throw error
        }
        return KeygenResult(privateKeyPath: privatePath, publicKeyPath: publicPath, publicKey: key.publicKey,
                            gitWorkTree: gitWorkTree(containing: request.directory))
    }

    /// The nearest directory at or above `directory` holding `.git` (a directory, or a file in
    /// worktrees and submodules), or nil.
    public func gitWorkTree(containing directory: String) -> String? {
        var current = URL(fileURLWithPath: directory).standardizedFileURL.path
        while true {
            if fs.exists(current == "/" ? "/.git" : "\(current)/.git") { return current }
            if current == "/" || current.isEmpty { return nil }
            current = (current as NSString).deletingLastPathComponent
        }
    }
}

/// `~`, `~/…` and `~user/…` in paths given on the command line.
public enum TildePath {
    /// The invoking user's home: $HOME when set, else the passwd entry's.
    public static func home(environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        if let home = environment["HOME"], !home.isEmpty { return home }
        return UserIdentity.lookup(uid: getuid())?.home ?? "/"
    }

    /// An unset HOME means the passwd home; a set one must be absolute, or keys, known_hosts and
    /// config would be written under whatever directory the command runs in.
    public static func checkHome(environment: [String: String] = ProcessInfo.processInfo.environment) throws {
        guard let home = environment["HOME"], !home.hasPrefix("/") else { return }
        throw DbgboxError("HOME=\(shown(home)) is not an absolute path: set HOME to your home directory, e.g. HOME=/home/\(UserIdentity.lookup(uid: getuid())?.name ?? "you"), or unset it")
    }

    public static func expand(_ path: String, home: String) -> String {
        guard path.hasPrefix("~") else { return path }
        let rest = path.dropFirst()
        let slash = rest.firstIndex(of: "/") ?? rest.endIndex
        let user = String(rest[..<slash])
        let tail = String(rest[slash...])
        if user.isEmpty { return home + tail }
        guard let other = UserIdentity.lookup(name: user) else { return path }
        return other.home + tail
    }
}
