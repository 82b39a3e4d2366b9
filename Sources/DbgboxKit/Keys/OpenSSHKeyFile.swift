import Foundation

/// What a private key file is, read without a passphrase: enough to tell the key type and
/// whether it is encrypted, so callers can refuse unusable keys with a clear reason.
public struct OpenSSHKeyFile: Sendable, Equatable {
    public enum Format: String, Sendable {
        /// OpenSSH's own armored format (openssh-key-v1).
        case openssh
        /// Legacy PEM (`BEGIN RSA/EC/DSA PRIVATE KEY`) or PKCS#8 (`BEGIN [ENCRYPTED] PRIVATE KEY`).
        case pem
    }

    public var format: Format
    /// The SSH key type, e.g. "ssh-ed25519", "ssh-rsa"; nil when a PKCS#8 file does not say.
    public var keyType: String?
    public var isEncrypted: Bool
    /// openssh-key-v1 only: cipher and kdf names ("none" when unencrypted).
    public var cipher: String?
    public var kdf: String?
    /// openssh-key-v1 only: the public key blob stored in clear.
    public var publicBlob: Data?
    /// openssh-key-v1 and unencrypted only: the private section, checkints to padding.
    public var privateSection: Data?

    static let magic = Array("openssh-key-v1\0".utf8)
    static let begin = armorLine("BEGIN", "OPENSSH PRIVATE KEY")
    static let end = armorLine("END", "OPENSSH PRIVATE KEY")

    /// An armor line: `-----BEGIN LABEL-----` or `-----END LABEL-----`.
    static func armorLine(_ edge: String, _ label: String) -> String { "-----\(edge) \(label)-----" }

    /// The public key stored in an openssh-key-v1 file (without comment: that is encrypted).
    public var publicKey: SSHPublicKey? {
        guard let publicBlob, let keyType else { return nil }
        return SSHPublicKey(type: keyType, blob: publicBlob)
    }

    /// Why dbgbox's tunnel (libssh2 1.10) cannot use this key's type or format, or nil when it
    /// can. Encryption is not a reason: libssh2 reads passphrase-protected OpenSSH keys.
    public var unusableReason: String? {
        guard let keyType else {
            return "this PKCS#8 private key does not say its type: convert it with `ssh-keygen -p -f FILE` or create one with `dbgbox keygen`"
        }
        if keyType == "ssh-rsa" || keyType == "ssh-dss" { return Self.unsupportedTypeReason(keyType) }
        if format == .pem {
            return "this is a legacy PEM \(keyType) key: convert it with `ssh-keygen -p -f FILE` (keeps the key) or create one with `dbgbox keygen`"
        }
        return Self.typeReason(keyType)
    }

    /// Why the private section cannot be read here, or nil when it can.
    var unreadableReason: String? {
        if privateSection != nil { return nil }
        if let reason = unusableReason { return reason }
        return "this private key is encrypted (cipher \(cipher ?? "?"), kdf \(kdf ?? "?")): dbgbox reads only unencrypted keys here; remove the passphrase with `ssh-keygen -p -f FILE` or create a key with `dbgbox keygen`"
    }

    static func typeReason(_ type: String) -> String? {
        switch type {
        case "ssh-ed25519", "ecdsa-sha2-nistp256": return nil
        default: return unsupportedTypeReason(type)
        }
    }

    static func unsupportedTypeReason(_ type: String) -> String {
        switch type {
        case "ssh-rsa":
            return "this is an RSA key: libssh2 1.10 cannot sign with rsa-sha2-256/512, so OpenSSH ≥ 8.8 rejects RSA keys from dbgbox's tunnel: create an ed25519 key with `dbgbox keygen`"
        case "ssh-dss":
            return "this is a DSA key, which OpenSSH no longer accepts: create an ed25519 key with `dbgbox keygen`"
        default:
            return "dbgbox cannot use \(type) private keys: create an ed25519 key with `dbgbox keygen`"
        }
    }

    /// Reads a private key file's outer structure. Throws `KeyError.invalidPrivateKey` for
    /// anything that is not a private key (a public key, garbage, a truncated file).
    public static func inspect(_ data: Data) throws -> OpenSSHKeyFile {
        let text = String(decoding: data, as: UTF8.self)
        let lines = text.split(omittingEmptySubsequences: true, whereSeparator: { $0 == "\n" || $0 == "\r\n" || $0 == "\r" })
            .map { $0.trimmingCharacters(in: .whitespaces) }
        guard let first = lines.first else { throw KeyError.invalidPrivateKey("the file is empty") }
        if first == begin { return try parseOpenSSH(lines) }
        if let pem = parsePEM(first: first, lines: lines) { return pem }
        if (try? SSHPublicKey(line: first)) != nil {
            throw KeyError.invalidPrivateKey("this is a public key: give the file without .pub")
        }
        throw KeyError.invalidPrivateKey("no `\(begin)` line")
    }

    private static func parseOpenSSH(_ lines: [String]) throws -> OpenSSHKeyFile {
        guard let endIndex = lines.firstIndex(of: end) else { throw KeyError.invalidPrivateKey("no `\(end)` line") }
        guard let decoded = Data(base64Encoded: lines[1..<endIndex].joined()) else {
            throw KeyError.invalidPrivateKey("the body is not base64")
        }
        guard decoded.starts(with: magic) else { throw KeyError.invalidPrivateKey("no openssh-key-v1 header") }
        do {
            var r = SSHWireReader(decoded.dropFirst(magic.count))
            let cipher = try r.text()
            let kdf = try r.text()
            _ = try r.string()
            guard try r.u32() == 1 else { throw KeyError.invalidPrivateKey("the file must hold exactly one key") }
            let publicBlob = try r.string()
            let section = try r.string()
            var blobReader = SSHWireReader(publicBlob)
            let keyType = try blobReader.text()
            let encrypted = cipher != "none"
            return OpenSSHKeyFile(format: .openssh, keyType: keyType, isEncrypted: encrypted, cipher: cipher, kdf: kdf,
                                  publicBlob: Data(publicBlob), privateSection: encrypted ? nil : Data(section))
        } catch is SSHWireReader.Truncated {
            throw KeyError.invalidPrivateKey("the key data is truncated")
        }
    }

    private static func parsePEM(first: String, lines: [String]) -> OpenSSHKeyFile? {
        let legacy = ["RSA": "ssh-rsa", "EC": "ecdsa", "DSA": "ssh-dss"]
        for (label, type) in legacy where first == armorLine("BEGIN", "\(label) PRIVATE KEY") {
            let encrypted = lines.contains { $0.hasPrefix("Proc-Type:") && $0.contains("ENCRYPTED") }
            return OpenSSHKeyFile(format: .pem, keyType: type, isEncrypted: encrypted)
        }
        // PKCS#8 does not say the key type.
        if first == armorLine("BEGIN", "PRIVATE KEY") { return OpenSSHKeyFile(format: .pem, keyType: nil, isEncrypted: false) }
        if first == armorLine("BEGIN", "ENCRYPTED PRIVATE KEY") { return OpenSSHKeyFile(format: .pem, keyType: nil, isEncrypted: true) }
        return nil
    }

    /// BEGIN line, base64 wrapped at 70 columns, END line, each ending in a newline.
    static func armor(_ body: Data) -> Data {
        let b64 = Array(body.base64EncodedString().utf8)
        var out = Data("\(begin)\n".utf8)
        var index = 0
        while index < b64.count {
            let stop = min(index + 70, b64.count)
            out.append(contentsOf: b64[index..<stop])
            out.append(UInt8(ascii: "\n"))
            index = stop
        }
        out.append(contentsOf: Array("\(end)\n".utf8))
        return out
    }
}
