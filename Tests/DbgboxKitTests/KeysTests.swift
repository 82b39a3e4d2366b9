import Crypto
import Foundation
import XCTest
@testable import DbgboxKit

/// OpenSSH key files: parsing ssh-keygen's output and writing it back byte for byte.
final class KeysTests: XCTestCase {
    static let readable = ["ed25519_c", "ed25519_wrap70", "ed25519_nocomment", "ed25519_utf8",
                           "ecdsa_mpint31", "ecdsa_mpint32", "ecdsa_mpint33"]

    func fixture(_ name: String) throws -> Data { try ThrowawayKeys.data(name) }

    func fixtureText(_ name: String) throws -> String { try ThrowawayKeys.text(name) }

    func testReserializationIsByteIdenticalToSSHKeygen() throws {
        for name in Self.readable {
            let file = try fixture(name)
            let key = try OpenSSHPrivateKey(fileContents: file)
            let rebuilt = OpenSSHPrivateKey(material: key.material, comment: key.comment, checkint: key.checkint)
            XCTAssertEqual(rebuilt.fileContents, file, name)
        }
    }

    func testPublicKeyFileLineAndFingerprintMatchSSHKeygen() throws {
        for name in Self.readable {
            let key = try OpenSSHPrivateKey(fileContents: try fixture(name))
            XCTAssertEqual(key.publicKey.publicKeyFileContents, try fixture("\(name).pub"), name)
            XCTAssertEqual(key.publicKey.line + "\n", try fixtureText("\(name).y"), name)
            XCTAssertEqual(key.publicKey.fingerprintLine + "\n", try fixtureText("\(name).l"), name)
            let parsed = try SSHPublicKey(line: try fixtureText("\(name).pub"))
            XCTAssertEqual(parsed, key.publicKey, name)
        }
    }

    func testGeneratedKeysRoundTrip() throws {
        for algorithm in SSHKeyAlgorithm.allCases {
            let key = OpenSSHPrivateKey.generate(algorithm, comment: "u@h")
            let again = try OpenSSHPrivateKey(fileContents: key.fileContents)
            XCTAssertEqual(again.fileContents, key.fileContents)
            XCTAssertEqual(again.publicKey, key.publicKey)
            XCTAssertEqual(key.publicKey.type, algorithm.typeName)
            let text = String(decoding: key.fileContents, as: UTF8.self)
            XCTAssertTrue(text.hasPrefix(OpenSSHKeyFile.begin + "\n"))
            XCTAssertTrue(text.hasSuffix("\n" + OpenSSHKeyFile.end + "\n"))
            XCTAssertTrue(text.split(separator: "\n").allSatisfy { $0.count <= 70 || $0.hasPrefix("-----") })
        }
    }

    func testGeneratedSignatureVerifiesWithThePublicBlob() throws {
        let key = OpenSSHPrivateKey.generate(.ed25519, comment: "")
        guard case .ed25519(let priv) = key.material else { return XCTFail("not ed25519") }
        let signature = try priv.signature(for: Data("hello".utf8))
        let pub = try Curve25519.Signing.PublicKey(rawRepresentation: key.publicKey.blob.suffix(32))
        XCTAssertTrue(pub.isValidSignature(signature, for: Data("hello".utf8)))
    }

    func testMPIntEncoding() {
        var w = SSHWireWriter()
        w.mpint(unsigned: [0x00, 0x00, 0x7f])
        w.mpint(unsigned: [0x80, 0x01])
        w.mpint(unsigned: [0x00])
        XCTAssertEqual([UInt8](w.data), [0, 0, 0, 1, 0x7f, 0, 0, 0, 3, 0, 0x80, 0x01, 0, 0, 0, 0])
    }

    func testInspectTellsTypeAndEncryption() throws {
        let encrypted = try OpenSSHKeyFile.inspect(try fixture("encrypted_ed25519"))
        XCTAssertEqual(encrypted.keyType, "ssh-ed25519")
        XCTAssertTrue(encrypted.isEncrypted)
        XCTAssertEqual(encrypted.cipher, "aes256-ctr")
        XCTAssertEqual(encrypted.kdf, "bcrypt")
        XCTAssertNil(encrypted.unusableReason)
        XCTAssertThrowsError(try OpenSSHPrivateKey(fileContents: try fixture("encrypted_ed25519"))) { error in
            XCTAssertTrue("\(error)".contains("encrypted"), "\(error)")
        }

        let rsa = try OpenSSHKeyFile.inspect(try fixture("rsa_openssh"))
        XCTAssertEqual(rsa.keyType, "ssh-rsa")
        XCTAssertFalse(rsa.isEncrypted)
        XCTAssertEqual(rsa.publicKey?.line, try SSHPublicKey(line: try fixtureText("rsa_openssh.pub")).line.replacingOccurrences(of: " rsa", with: ""))
        XCTAssertTrue(rsa.unusableReason?.contains("rsa-sha2") ?? false)
        XCTAssertThrowsError(try OpenSSHPrivateKey(fileContents: try fixture("rsa_openssh"))) { error in
            XCTAssertTrue("\(error)".contains("RSA"), "\(error)")
        }

        let pem = try OpenSSHKeyFile.inspect(try fixture("rsa_pem"))
        XCTAssertEqual(pem.format, .pem)
        XCTAssertEqual(pem.keyType, "ssh-rsa")
        XCTAssertTrue(pem.unusableReason?.contains("RSA") ?? false)

        let ed = try OpenSSHKeyFile.inspect(try fixture("ed25519_c"))
        XCTAssertEqual(ed.keyType, "ssh-ed25519")
        XCTAssertFalse(ed.isEncrypted)
        XCTAssertNil(ed.unusableReason)
    }

    func testBadPrivateKeyFilesGiveOneLineErrors() throws {
        let good = try fixtureText("ed25519_c")
        let cases: [(String, String)] = [
            ("", "empty"),
            (try fixtureText("ed25519_c.pub"), "public key"),
            ("hello\n", "BEGIN"),
            (good.replacingOccurrences(of: OpenSSHKeyFile.end + "\n", with: ""), "END"),
            // Armored, but three zero bytes where the magic should be.
            (String(decoding: OpenSSHKeyFile.armor(Data(count: 3)), as: UTF8.self), "header"),
            // The magic, then a cipher name cut short.
            (String(decoding: OpenSSHKeyFile.armor(Data(OpenSSHKeyFile.magic + [0, 0, 0, 4] + Array("no".utf8))), as: UTF8.self), "truncated"),
        ]
        for (text, expected) in cases {
            XCTAssertThrowsError(try OpenSSHPrivateKey(fileContents: Data(text.utf8))) { error in
                let message = "\(error)"
                XCTAssertTrue(message.contains(expected), "\(expected): \(message)")
                XCTAssertFalse(message.contains("\n"))
            }
        }
    }

    func testCorruptedPrivateSectionIsRefused() throws {
        let key = try OpenSSHPrivateKey(fileContents: try fixture("ed25519_c"))
        var other = OpenSSHPrivateKey.generate(.ed25519, comment: "c")
        other.checkint = key.checkint
        // Splice the other key's private section behind this key's public blob.
        let mixed = try OpenSSHKeyFile.inspect(key.fileContents)
        let foreign = try OpenSSHKeyFile.inspect(other.fileContents)
        var w = SSHWireWriter()
        w.raw(OpenSSHKeyFile.magic)
        w.string("none"); w.string("none"); w.string([UInt8]()); w.u32(1)
        w.string(Array(mixed.publicBlob!)); w.string(Array(foreign.privateSection!))
        XCTAssertThrowsError(try OpenSSHPrivateKey(fileContents: OpenSSHKeyFile.armor(w.data))) { error in
            XCTAssertTrue("\(error)".contains("do not match"), "\(error)")
        }
    }

    func testPublicKeyLineParsing() throws {
        let line = try fixtureText("ed25519_utf8.pub")
        let key = try SSHPublicKey(line: line)
        XCTAssertEqual(key.type, "ssh-ed25519")
        XCTAssertEqual(key.comment, "André Souza@gpu-07 dbgbox")
        XCTAssertEqual(key.line + "\n", line)
        XCTAssertEqual(try SSHPublicKey(line: "  \(key.type)\t\(key.blob.base64EncodedString())  \r\n").comment, "")
        for bad in ["", "ssh-ed25519", "ssh-ed25519 !!!notbase64", "ssh-rsa \(key.blob.base64EncodedString())"] {
            XCTAssertThrowsError(try SSHPublicKey(line: bad), bad) { error in
                XCTAssertTrue(error is KeyError)
                XCTAssertFalse("\(error)".contains("\n"))
            }
        }
    }

    func testFingerprintIsUnpaddedBase64OfSHA256() throws {
        let key = try SSHPublicKey(line: try fixtureText("ed25519_c.pub"))
        let expected = Data(SHA256.hash(data: key.blob)).base64EncodedString().replacingOccurrences(of: "=", with: "")
        XCTAssertEqual(key.fingerprintSHA256, "SHA256:" + expected)
    }
}
