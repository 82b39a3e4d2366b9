import Crypto
import Foundation

/// The key algorithms dbgbox can generate and use through libssh2 1.10.
public enum SSHKeyAlgorithm: String, Sendable, CaseIterable {
    case ed25519
    case ecdsa

    /// The wire name, e.g. "ssh-ed25519".
    public var typeName: String {
        switch self {
        case .ed25519: return "ssh-ed25519"
        case .ecdsa: return "ecdsa-sha2-nistp256"
        }
    }

    /// Parses a `--type` value; RSA and anything else are refused with the reason.
    public init(argument: String) throws {
        let lowered = argument.lowercased()
        if let known = SSHKeyAlgorithm(rawValue: lowered) {
            self = known
        } else if lowered.hasPrefix("rsa") || lowered == "ssh-rsa" {
            throw KeygenError.rsaRefused
        } else {
            throw KeygenError.unknownType(argument)
        }
    }
}

/// An unencrypted private key in OpenSSH's "openssh-key-v1" format (PROTOCOL.key), as
/// `ssh-keygen -N ''` writes it: cipher and kdf "none", one key, checkint pair, comment,
/// padding 1, 2, 3… to a multiple of 8, base64 wrapped at 70 columns.
public struct OpenSSHPrivateKey: Sendable {
    public enum Material: Sendable {
        case ed25519(Curve25519.Signing.PrivateKey)
        case ecdsaP256(P256.Signing.PrivateKey)
    }

    public var material: Material
    public var comment: String
    /// The random check value OpenSSH stores twice to detect a wrong passphrase.
    public var checkint: UInt32

    public init(material: Material, comment: String, checkint: UInt32) {
        self.material = material
        self.comment = comment
        self.checkint = checkint
    }

    /// A fresh key of `algorithm` with a random checkint.
    public static func generate(_ algorithm: SSHKeyAlgorithm, comment: String) -> OpenSSHPrivateKey {
        let material: Material
        switch algorithm {
        case .ed25519: material = .ed25519(Curve25519.Signing.PrivateKey())
        case .ecdsa: material = .ecdsaP256(P256.Signing.PrivateKey())
        }
        return OpenSSHPrivateKey(material: material, comment: comment, checkint: UInt32.random(in: .min ... .max))
    }

    public var algorithm: SSHKeyAlgorithm {
        switch material {
        case .ed25519: return .ed25519
        case .ecdsaP256: return .ecdsa
        }
    }

    /// The public half, carrying this key's comment.
    public var publicKey: SSHPublicKey {
        SSHPublicKey(type: algorithm.typeName, blob: Self.publicBlob(material), comment: comment)
    }

    static func publicBlob(_ material: Material) -> Data {
        var w = SSHWireWriter()
        switch material {
        case .ed25519(let key):
            w.string("ssh-ed25519")
            w.string(Array(key.publicKey.rawRepresentation))
        case .ecdsaP256(let key):
            w.string("ecdsa-sha2-nistp256")
            w.string("nistp256")
            w.string(Array(key.publicKey.x963Representation))
        }
        return w.data
    }

    /// The file's bytes, identical to what ssh-keygen writes for the same key, checkint and comment.
    public var fileContents: Data {
        let publicBlob = Self.publicBlob(material)
        var secret = SSHWireWriter()
        secret.u32(checkint)
        secret.u32(checkint)
        switch material {
        case .ed25519(let key):
            let pub = Array(key.publicKey.rawRepresentation)
            secret.string("ssh-ed25519")
            secret.string(pub)
            secret.string(Array(key.rawRepresentation) + pub)
        case .ecdsaP256(let key):
            secret.string("ecdsa-sha2-nistp256")
            secret.string("nistp256")
            secret.string(Array(key.publicKey.x963Representation))
            secret.mpint(unsigned: Array(key.rawRepresentation))
        }
        secret.string(Array(comment.utf8))
        var pad: UInt8 = 0
        while secret.data.count % 8 != 0 {
            pad &+= 1
            secret.raw([pad])
        }

        var w = SSHWireWriter()
        w.raw(OpenSSHKeyFile.magic)
        w.string("none")
        w.string("none")
        w.string([UInt8]())
        w.u32(1)
        w.string(Array(publicBlob))
        w.string(Array(secret.data))
        return OpenSSHKeyFile.armor(w.data)
    }

    /// Parses an unencrypted ed25519 or ECDSA P-256 key file. Other types and encrypted keys
    /// throw `KeyError.unsupportedPrivateKey` with the reason (see `OpenSSHKeyFile.inspect`).
    public init(fileContents data: Data) throws {
        let file = try OpenSSHKeyFile.inspect(data)
        guard let section = file.privateSection else {
            throw KeyError.unsupportedPrivateKey(file.unreadableReason ?? "this private key cannot be read")
        }
        let bad = { (why: String) in KeyError.invalidPrivateKey(why) }
        do {
            var r = SSHWireReader(section)
            let check1 = try r.u32()
            let check2 = try r.u32()
            guard check1 == check2 else { throw bad("the check values differ") }
            let type = try r.text()
            let material: Material
            switch type {
            case "ssh-ed25519":
                let pub = try r.string()
                let priv = try r.string()
                guard pub.count == 32, priv.count == 64, Array(priv[32...]) == pub,
                      let key = try? Curve25519.Signing.PrivateKey(rawRepresentation: priv[..<32]),
                      Array(key.publicKey.rawRepresentation) == pub
                else { throw bad("the ed25519 key data is inconsistent") }
                material = .ed25519(key)
            case "ecdsa-sha2-nistp256":
                guard try r.text() == "nistp256" else { throw bad("the ECDSA curve is not nistp256") }
                let q = try r.string()
                let d = try r.unsignedMPInt()
                guard d.count <= 32,
                      let key = try? P256.Signing.PrivateKey(rawRepresentation: [UInt8](repeating: 0, count: 32 - d.count) + d),
                      Array(key.publicKey.x963Representation) == q
                else { throw bad("the ECDSA key data is inconsistent") }
                material = .ecdsaP256(key)
            default:
                throw KeyError.unsupportedPrivateKey(OpenSSHKeyFile.unsupportedTypeReason(type))
            }
            let comment = String(decoding: try r.string(), as: UTF8.self)
            var expected: UInt8 = 0
            for byte in r.remaining {
                expected &+= 1
                guard byte == expected else { throw bad("the padding is corrupt") }
            }
            guard Self.publicBlob(material) == file.publicBlob else {
                throw bad("the public and private halves do not match")
            }
            self.init(material: material, comment: comment, checkint: check1)
        } catch is SSHWireReader.Truncated {
            throw bad("the private section is truncated")
        }
    }
}
