import Foundation
import XCTest
@testable import DbgboxKit

/// dbgbox's own known_hosts of pinned container host keys.
final class KnownHostsPinnedTests: XCTestCase {
    var home = ""
    let fs = LocalFileSystem()
    let key1 = try! SSHPublicKey(line: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBGAJfnpvfR+fhW1I8gFAaXS3ZcfBXXp3c6Qa9ld2x5T root@c1")
    let key2 = try! SSHPublicKey(line: "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBNtOZ5ROX75ezR8FfJLW1CQM71zxftmFxjC9kRv5VG4pIllTBOEyc1luoS88+9ZPfYrPfmYukl7fPshF6xmuutA=")

    override func setUpWithError() throws {
        home = NSTemporaryDirectory() + "dbgbox-pin-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: home, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: home)
    }

    func testPinCreatesPrivateDirectoryAndFile() throws {
        let path = PinnedHostKeys.defaultPath(home: home)
        XCTAssertEqual(path, "\(home)/.ssh/dbgbox/known_hosts")
        let pins = PinnedHostKeys(path: path)
        XCTAssertNil(try pins.key(for: "dbgbox-a"))
        try pins.pin(alias: "dbgbox-a", key: key1)
        XCTAssertEqual(try fs.mode(of: "\(home)/.ssh/dbgbox"), 0o700)
        XCTAssertEqual(try fs.mode(of: path), 0o600)
        XCTAssertEqual(String(decoding: try fs.read(path), as: UTF8.self), "dbgbox-a \(key1.type) \(key1.blob.base64EncodedString())\n")
        let read = try XCTUnwrap(try pins.key(for: "dbgbox-a"))
        XCTAssertEqual(read.blob, key1.blob)
        XCTAssertEqual(read.fingerprintSHA256, key1.fingerprintSHA256)
    }

    func testPinReplacesOnlyThatAliasAndKeepsOtherBytes() throws {
        let path = "\(home)/pins"
        let others = "# mine\r\ndbgbox-b \(key2.line)\n\ndbgbox-a-long \(key1.line)\ndbgbox-a \(key1.line)\nweird line"
        try fs.writeAtomically(Data(others.utf8), to: path, mode: 0o640)
        let pins = PinnedHostKeys(path: path)
        try pins.pin(alias: "dbgbox-a", key: key2)
        XCTAssertEqual(String(decoding: try fs.read(path), as: UTF8.self),
                       "# mine\r\ndbgbox-b \(key2.line)\n\ndbgbox-a-long \(key1.line)\nweird line\ndbgbox-a \(key2.line)\n")
        XCTAssertEqual(try fs.mode(of: path), 0o640)
        XCTAssertEqual(try pins.key(for: "dbgbox-a")?.blob, key2.blob)
        XCTAssertEqual(try pins.key(for: "dbgbox-a-long")?.blob, key1.blob)

        XCTAssertTrue(try pins.remove(alias: "dbgbox-a"))
        XCTAssertFalse(try pins.remove(alias: "dbgbox-a"))
        XCTAssertNil(try pins.key(for: "dbgbox-a"))
        XCTAssertEqual(String(decoding: try fs.read(path), as: UTF8.self),
                       "# mine\r\ndbgbox-b \(key2.line)\n\ndbgbox-a-long \(key1.line)\nweird line\n")
        XCTAssertFalse(try PinnedHostKeys(path: "\(home)/none").remove(alias: "dbgbox-a"))
    }

    func testAliasesThatWouldBePatternsAreRefused() {
        let pins = PinnedHostKeys(path: "\(home)/pins")
        for alias in ["", "a b", "a,b", "dbgbox-*", "!x", "|1|x", "[h]:22", "#c", "@revoked"] {
            XCTAssertThrowsError(try pins.pin(alias: alias, key: key1), alias) {
                XCTAssertEqual($0 as? KnownHostsError, .invalidAlias(alias))
            }
        }
    }

    func testConcurrentPinsAllLand() throws {
        let pins = PinnedHostKeys(path: "\(home)/.ssh/dbgbox/known_hosts")
        let (k1, k2) = (key1, key2)
        DispatchQueue.concurrentPerform(iterations: 12) { i in
            do { try pins.pin(alias: "dbgbox-\(i)", key: i % 2 == 0 ? k1 : k2) } catch { XCTFail("\(error)") }
        }
        for i in 0..<12 { XCTAssertEqual(try pins.key(for: "dbgbox-\(i)")?.type, (i % 2 == 0 ? key1 : key2).type) }
    }
}
