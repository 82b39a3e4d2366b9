import Foundation
import XCTest
@testable import DbgboxKit

/// Each verdict on a recorded known_hosts pair (Fixtures/ssh_config/known_hosts{,2}: keys made
/// by ssh-keygen, hashed lines by `ssh-keygen -H`), and the bytes `appendLine` writes.
final class KnownHostsVerifierTests: XCTestCase {
    let fs = LocalFileSystem()
    var dir = ""
    var keys: [SSHPublicKey] = []
    var files: [String] = []

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "dbgbox-khv-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let base = try XCTUnwrap(Bundle.module.url(forResource: "Fixtures", withExtension: nil)).appendingPathComponent("ssh_config")
        keys = try String(contentsOf: base.appendingPathComponent("keys.pub"), encoding: .utf8)
            .split(separator: "\n").map { try SSHPublicKey(line: String($0)) }
        for name in ["known_hosts", "known_hosts2"] {
            let path = "\(dir)/\(name)"
            try fs.writeAtomically(try Data(contentsOf: base.appendingPathComponent(name)), to: path, mode: 0o600)
            files.append(path)
        }
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: dir) }

    func verify(_ host: String, port: Int = 22, key: Int, alias: String? = nil) throws -> KnownHostsVerifier.Verdict {
        try KnownHostsVerifier(files: files, fs: fs).verify(host: host, port: port, keyType: keys[key].type,
                                                              keyBlob: keys[key].blob, hostKeyAlias: alias)
    }

    func testMatches() throws {
        let (user, second) = (files[0], files[1])
        XCTAssertEqual(try verify("plain.example", key: 0), .match(file: user, line: 2))
        XCTAssertEqual(try verify("PLAIN.example", key: 0), .match(file: user, line: 2), "names are lowercased")
        XCTAssertEqual(try verify("ported.example", port: 2222, key: 1), .match(file: user, line: 5))
        XCTAssertEqual(try verify("hashed.example", key: 0), .match(file: user, line: 6))
        XCTAssertEqual(try verify("hashed.example", port: 2222, key: 0), .match(file: user, line: 7))
        XCTAssertEqual(try verify("multi-b", key: 0), .match(file: user, line: 8))
        XCTAssertEqual(try verify("x.wild.example", key: 1), .match(file: user, line: 9))
        XCTAssertEqual(try verify("second-file.example", key: 0), .match(file: second, line: 2))
        XCTAssertEqual(try verify("anything", port: 2200, key: 1, alias: "alias-name"), .match(file: user, line: 13))
    }

    func testMismatchNamesTheFirstLineOfTheSameType() throws {
        // changed.example has k1 in the first file and k2 in the second: k2 is a match (line 1 of
        // the second file), k3 a mismatch against the first file's line.
        XCTAssertEqual(try verify("changed.example", key: 1), .match(file: files[1], line: 1))
        XCTAssertEqual(try verify("changed.example", key: 2),
                       .mismatch(file: files[0], line: 3, expectedFingerprint: "SHA256:mCx0uHk/QKgq+9jaWvMwbMtEoLYxas+/YYH9CITml/k"))
        XCTAssertEqual(try verify("plain.example", key: 1),
                       .mismatch(file: files[0], line: 2, expectedFingerprint: keys[0].fingerprintSHA256))
        XCTAssertEqual(try verify("ported.example", port: 2222, key: 0),
                       .mismatch(file: files[0], line: 5, expectedFingerprint: "SHA256:7bOYAFpHtSibHv3mUPrDAWCEwFXq7PV/XaR+LpMPJOs"))
    }

    func testNotFound() throws {
        XCTAssertEqual(try verify("unknown.example", key: 0), .notFound)
        XCTAssertEqual(try verify("ported.example", key: 1), .notFound, "port 22 looks up the bare name only")
        XCTAssertEqual(try verify("plain.example", port: 2222, key: 0), .notFound, "[host]:port does not fall back to host")
        XCTAssertEqual(try verify("bad.wild.example", key: 1), .notFound, "negated pattern")
        XCTAssertEqual(try verify("other-type.example", key: 0), .notFound, "only an ECDSA key is known: not a mismatch")
        XCTAssertEqual(try verify("ca.example", key: 2), .notFound, "@cert-authority does not vouch for a plain key")
        XCTAssertEqual(try KnownHostsVerifier(files: ["\(dir)/missing"], fs: fs)
            .verify(host: "plain.example", port: 22, keyType: keys[0].type, keyBlob: keys[0].blob), .notFound)
    }

    func testRevokedWinsOverAMatchingLine() throws {
        XCTAssertEqual(try verify("revoked.example", key: 2), .revoked(file: files[0], line: 11))
    }

    func testKnownKeyTypes() throws {
        let verifier = KnownHostsVerifier(files: files, fs: fs)
        XCTAssertEqual(try verifier.knownKeyTypes(host: "other-type.example", port: 22), ["ecdsa-sha2-nistp256"])
        XCTAssertEqual(try verifier.knownKeyTypes(host: "changed.example", port: 22), ["ssh-ed25519"])
        XCTAssertEqual(try verifier.knownKeyTypes(host: "nobody", port: 22), [])
    }

    func testAppendPlainCreatesDirectoryAndFile() throws {
        let file = "\(dir)/home/.ssh/known_hosts"
        let verifier = KnownHostsVerifier(files: [file], fs: fs)
        try verifier.appendLine(host: "Node.Example", port: 2222, keyType: keys[1].type, keyBlob: keys[1].blob, hash: false, to: file)
        try verifier.appendLine(host: "login", port: 22, keyType: keys[0].type, keyBlob: keys[0].blob, hash: false, to: file)
        XCTAssertEqual(String(decoding: try fs.read(file), as: UTF8.self),
                       "[node.example]:2222 \(keys[1].line)\nlogin \(keys[0].line)\n")
        XCTAssertEqual(try fs.mode(of: file), 0o600)
        XCTAssertEqual(try fs.mode(of: "\(dir)/home/.ssh"), 0o700)
        XCTAssertEqual(try verifier.verify(host: "node.example", port: 2222, keyType: keys[1].type, keyBlob: keys[1].blob),
                       .match(file: file, line: 1))
    }

    func testAppendKeepsBytesAndAddsAMissingNewline() throws {
        let file = "\(dir)/kh"
        let original = Data("# mine\r\nplain.example \(keys[0].line) trailing comment".utf8)
        try fs.writeAtomically(original, to: file, mode: 0o644)
        let verifier = KnownHostsVerifier(files: [file], fs: fs)
        try verifier.appendLine(host: "new.example", port: 22, keyType: keys[1].type, keyBlob: keys[1].blob, hash: false, to: file)
        XCTAssertEqual(try fs.read(file), original + Data("\nnew.example \(keys[1].line)\n".utf8))
        XCTAssertEqual(try fs.mode(of: file), 0o644, "an existing file keeps its mode")
    }

    func testAppendHashed() throws {
        let file = "\(dir)/kh"
        let verifier = KnownHostsVerifier(files: [file], fs: fs)
        try verifier.appendLine(host: "Hashed.New", port: 2201, keyType: keys[0].type, keyBlob: keys[0].blob, hash: true, to: file)
        try verifier.appendLine(host: "Hashed.New", port: 2201, keyType: keys[0].type, keyBlob: keys[0].blob, hash: true, to: file)
        let lines = String(decoding: try fs.read(file), as: UTF8.self).split(separator: "\n").map(String.init)
        XCTAssertEqual(lines.count, 2)
        XCTAssertNotEqual(lines[0], lines[1], "each line has its own random salt")
        for line in lines {
            let field = String(line.split(separator: " ")[0])
            XCTAssertTrue(field.hasPrefix("|1|"))
            XCTAssertEqual(KnownHostsLine.hashedName("[hashed.new]:2201", saltFrom: Array(field.utf8)[...]), field)
            XCTAssertTrue(line.hasSuffix(" \(keys[0].line)"))
        }
        XCTAssertEqual(try verifier.verify(host: "hashed.new", port: 2201, keyType: keys[0].type, keyBlob: keys[0].blob),
                       .match(file: file, line: 1))
    }

    func testLookupName() {
        XCTAssertEqual(KnownHostsVerifier.lookupName(host: "h", port: 22), "h")
        XCTAssertEqual(KnownHostsVerifier.lookupName(host: "h", port: 2222), "[h]:2222")
        XCTAssertEqual(KnownHostsVerifier.lookupName(host: "::1", port: 2222), "[::1]:2222")
    }
}
