import Crypto
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
    ///
    /// The blob must start with the same type name as the line, as OpenSSH requires; the
    /// comment is the rest of the line after the base64 field, surrounding blanks removed.
    public init(line: String) throws {
        let blanks: (Character) -> Bool = { $0 == " " || $0 == "\t" }
        let trimmed = line.drop(while: blanks).reversed().drop(while: { blanks($0) || $0.isNewline }).reversed()
        let text = String(trimmed)
        let fields = text.split(maxSplits: 2, omittingEmptySubsequences: true, whereSeparator: blanks)
        guard fields.count >= 2 else {
            throw KeyError.invalidPublicKey(text.isEmpty ? "empty line" : "missing the base64 key field")
        }
        let type = String(fields[0])
        guard let blob = Data(base64Encoded: String(fields[1])), !blob.isEmpty else {
            throw KeyError.invalidPublicKey("the key field is not base64")
        }
        var reader = SSHWireReader(blob)
        guard let blobType = try? reader.text(), blobType == type else {
            throw KeyError.invalidPublicKey("the key data is not a \(type) key")
        }
        let comment = fields.count == 3 ? String(fields[2].drop(while: blanks)) : ""
        self.init(type: type, blob: blob, comment: comment)
    }

    /// `TYPE BASE64` (and ` COMMENT` when there is one), without a newline.
    public var line: String {
        let base = "\(type) \(blob.base64EncodedString())"
        return comment.isEmpty ? base : "\(base) \(comment)"
    }

    /// The `.pub` file exactly as ssh-keygen writes it: `TYPE BASE64 COMMENT\n`. ssh-keygen
    /// keeps the separating space even when the comment is empty.
    public var publicKeyFileContents: Data {
        Data("\(type) \(blob.base64EncodedString()) \(comment)\n".utf8)
    }

    /// `SHA256:…` exactly as `ssh-keygen -l` prints it (unpadded base64 of SHA-256 of the blob).
    public var fingerprintSHA256: String {
        "SHA256:" + Data(SHA256.hash(data: blob)).unpaddedBase64
    }

    /// The key size and family name `ssh-keygen -l` shows around the fingerprint, e.g. (256, "ED25519").
    public var sizeAndFamily: (bits: Int, family: String)? {
        switch type {
        case "ssh-ed25519": return (256, "ED25519")
        case "ecdsa-sha2-nistp256": return (256, "ECDSA")
        case "ecdsa-sha2-nistp384": return (384, "ECDSA")
        case "ecdsa-sha2-nistp521": return (521, "ECDSA")
        default: return nil
        }
    }

    /// One line as `ssh-keygen -lf FILE` prints it for ed25519/ECDSA keys:
    /// `BITS SHA256:… COMMENT (FAMILY)`, with `no comment` when there is none.
    public var fingerprintLine: String {
        let (bits, family) = sizeAndFamily ?? (0, type)
        return "\(bits) \(fingerprintSHA256) \(comment.isEmpty ? "no comment" : comment) (\(family))"
    }
}
