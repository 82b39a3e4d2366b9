import Foundation
import SSH

/// Host-key policy for the tunnel's hops, checked after every handshake (also on reconnects).
///
/// Stricter than the peers: a changed key is always refused, naming the file and line, whatever
/// StrictHostKeyChecking says; an unknown key is appended (one line, never a rewrite) only with
/// `--accept-new` or `StrictHostKeyChecking accept-new`, or after "yes" at the terminal prompt.
public struct HostKeyChecker: Sendable {
    public enum UnknownKeyPolicy: Sendable, Equatable {
        /// Append it (`--accept-new`, or StrictHostKeyChecking accept-new/no).
        case acceptNew
        /// Ask at the terminal; refuse when there is none (StrictHostKeyChecking ask, the default).
        case ask
        /// Refuse (StrictHostKeyChecking yes).
        case refuse
    }

    public let prompter: Prompter
    public let fs: FileSystem
    /// `--known-hosts FILE`: replaces the hops' own known_hosts files.
    public let knownHostsOverride: String?
    public let acceptNewFlag: Bool

    public init(prompter: Prompter, fs: FileSystem = LocalFileSystem(), knownHostsOverride: String? = nil,
                acceptNew: Bool = false) {
        self.prompter = prompter
        self.fs = fs
        self.knownHostsOverride = knownHostsOverride
        self.acceptNewFlag = acceptNew
    }

    public func verifier(for hop: PlannedHop) -> KnownHostsVerifier {
        if let knownHostsOverride { return KnownHostsVerifier(files: [knownHostsOverride], fs: fs) }
        return KnownHostsVerifier(resolved: hop.resolved, fs: fs)
    }

    public func unknownKeyPolicy(for hop: PlannedHop) -> UnknownKeyPolicy {
        if acceptNewFlag { return .acceptNew }
        switch hop.resolved.strictHostKeyChecking {
        case .yes: return .refuse
        case .acceptNew, .no: return .acceptNew
        default: return .ask
        }
    }

    /// Host key types already recorded for the hop, to prefer in the handshake (an entry of another
    /// type than the negotiated one would read as unknown).
    public func knownKeyTypes(for hop: PlannedHop) -> [String] {
        (try? verifier(for: hop).knownKeyTypes(host: hop.hop.host, port: hop.hop.port,
                                               hostKeyAlias: hop.resolved.hostKeyAlias)) ?? []
    }

    /// Accepts the key or throws a one-line `HostKeyError`.
    public func check(_ hop: PlannedHop, key: HostKey) throws {
        let verifier = verifier(for: hop)
        let presented = SSHPublicKey(type: key.typeName, blob: key.blob)
        let name = hop.resolved.hostKeyAlias ?? KnownHostsVerifier.lookupName(host: hop.hop.host, port: hop.hop.port)
        switch try verifier.verify(host: hop.hop.host, port: hop.hop.port, keyType: key.typeName,
                                   keyBlob: key.blob, hostKeyAlias: hop.resolved.hostKeyAlias) {
        case .match:
            return
        case .revoked(let file, let line):
            throw HostKeyError.revoked(label: hop.hop.label, name: name, file: file, line: line)
        case .mismatch(let file, let line, let expected):
            throw HostKeyError.changed(label: hop.hop.label, name: name, file: file, line: line,
                                       expected: expected, presented: presented.fingerprintSHA256)
        case .notFound:
            let file = knownHostsOverride ?? hop.resolved.userKnownHostsFiles.first
                ?? "\(NSHomeDirectory())/.ssh/known_hosts"
            switch unknownKeyPolicy(for: hop) {
            case .refuse:
                throw HostKeyError.unknown(label: hop.hop.label, name: name, type: key.typeName,
                                           fingerprint: presented.fingerprintSHA256, file: file)
            case .ask:
                let question = "The authenticity of \(hop.hop.label) '\(name)' can't be established.\n"
                    + "\(key.typeName) key fingerprint is \(presented.fingerprintSHA256).\n"
                    + "Add it to \(file) and continue connecting?"
                guard prompter.isInteractive, prompter.confirm(question) else {
                    throw HostKeyError.unknown(label: hop.hop.label, name: name, type: key.typeName,
                                               fingerprint: presented.fingerprintSHA256, file: file)
                }
            case .acceptNew:
                break
            }
            if let alias = hop.resolved.hostKeyAlias {
                try appendAlias(alias, key: presented, to: file)
            } else {
                try verifier.appendLine(host: hop.hop.host, port: hop.hop.port, keyType: key.typeName,
                                        keyBlob: key.blob, hash: hop.resolved.hashKnownHosts, to: file)
            }
        }
    }

    private func appendAlias(_ alias: String, key: SSHPublicKey, to file: String) throws {
        let existing = try fs.exists(file) ? fs.read(file, as: .knownHosts) : Data()
        var line = Data()
        if let last = existing.last, last != UInt8(ascii: "\n") { line.append(UInt8(ascii: "\n")) }
        line.append(Data("\(alias) \(key.type) \(key.blob.base64EncodedString())\n".utf8))
        try fs.append(line, to: file, mode: 0o600)
    }
}

/// A host key that was not accepted.
public enum HostKeyError: UserFacingError, Equatable {
    case unknown(label: String, name: String, type: String, fingerprint: String, file: String)
    case changed(label: String, name: String, file: String, line: Int, expected: String, presented: String)
    case revoked(label: String, name: String, file: String, line: Int)

    /// The engine prefixes the hop ("login host H:P: host key not accepted: "), so the text
    /// starts with what is wrong.
    public var description: String {
        switch self {
        case .unknown(_, let name, let type, let fingerprint, let file):
            return "unknown host key \(type) \(fingerprint) for \(name), not in \(file): check the fingerprint with the cluster's admins, then re-run with --accept-new (or from a terminal to be asked)"
        case .changed(_, let name, let file, let line, let expected, let presented):
            return "HOST KEY CHANGED for \(name): \(file):\(line) has \(expected), the host presented \(presented); refusing. If the host was really reinstalled, remove that line (ssh-keygen -R '\(name)' -f \(file)) and connect again"
        case .revoked(_, let name, let file, let line):
            return "the host key of \(name) is revoked at \(file):\(line); refusing to connect"
        }
    }
}
