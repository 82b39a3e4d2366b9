import CLibSSH2
import Foundation

/// The server's host key as the handshake presented it.
public struct HostKey: Equatable, Sendable {
    /// The OpenSSH type name, e.g. "ssh-ed25519".
    public var typeName: String
    /// The wire-format key blob (what known_hosts stores base64-encoded).
    public var blob: Data

    public init(typeName: String, blob: Data) {
        self.typeName = typeName
        self.blob = blob
    }

    static func typeName(for libssh2Type: Int32) -> String {
        switch libssh2Type {
        case LIBSSH2_HOSTKEY_TYPE_ED25519: return "ssh-ed25519"
        case LIBSSH2_HOSTKEY_TYPE_ECDSA_256: return "ecdsa-sha2-nistp256"
        case LIBSSH2_HOSTKEY_TYPE_ECDSA_384: return "ecdsa-sha2-nistp384"
        case LIBSSH2_HOSTKEY_TYPE_ECDSA_521: return "ecdsa-sha2-nistp521"
        case LIBSSH2_HOSTKEY_TYPE_RSA: return "ssh-rsa"
        case LIBSSH2_HOSTKEY_TYPE_DSS: return "ssh-dss"
        default: return "unknown"
        }
    }
}
