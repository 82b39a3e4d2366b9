import Foundation

/// A public key as it appears in an OpenSSH `.pub` file, authorized_keys or known_hosts:
/// `TYPE BASE64 [COMMENT]`.
public struct SSHPublicKey: Sendable, Equatable {
    /// The key type name, e.g. "ssh-ed25519", "ecdsa-sha2-nistp256", "ssh-rsa".
    public var type: String
    /// The decoded wire-format key blob.
    public var blob: Data
    public var comment: String

    public init(type: String, blob: Data, comment: String = "") {
        self.type = type
        self.blob = blob
        self.comment = comment
    }

    /// Parses one line (`TYPE BASE64 [COMMENT]`). Throws `KeyError` on anything else.
    public init(line: String) throws {
        fatalError("SSHPublicKey(line:) not implemented yet")
    }

    /// `TYPE BASE64` (and ` COMMENT` when there is one), without a newline.
    public var line: String {
        fatalError("SSHPublicKey.line not implemented yet")
    }

    /// `SHA256:…` exactly as `ssh-keygen -l` prints it (unpadded base64 of SHA-256 of the blob).
    public var fingerprintSHA256: String {
        fatalError("SSHPublicKey.fingerprintSHA256 not implemented yet")
    }
}
