import Foundation
import XCTest
@testable import DbgboxKit

/// dbgbox's own ssh config: the rendered block, quoting, and byte-exact add/replace/remove.
final class SessionHostBlockTests: XCTestCase {
    var home = ""
    let fs = LocalFileSystem()

    override func setUpWithError() throws {
        home = NSTemporaryDirectory() + "dbgbox-session-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: home, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: home)
    }

    static func fixture(_ name: String) throws -> Data {
        let url = Bundle.module.resourceURL!.appendingPathComponent("Fixtures/session/\(name)")
        return try Data(contentsOf: url)
    }

    let foo = SessionHostBlock(name: "foo", port: 2201, user: "alice", identityFile: "/home/alice/.ssh/id_dbgbox",
                               knownHostsFile: "/home/alice/.ssh/dbgbox/known_hosts")

    func text(_ path: String) throws -> String { String(decoding: try fs.read(path), as: UTF8.self) }

    func testRenderedBlocksMatchGoldens() throws {
        XCTAssertEqual(try foo.rendered(), String(decoding: try Self.fixture("block-foo.golden"), as: UTF8.self))
        let odd = SessionHostBlock(name: "my.box_2", port: 65535, user: "a.b-c_d",
                                   identityFile: "/home/Alice Smith/keys/100% \"mine\" \\ #1",
                                   knownHostsFile: "~/.ssh/dbgbox/known_hosts")
        XCTAssertEqual(try odd.rendered(), String(decoding: try Self.fixture("block-quoted.golden"), as: UTF8.self))
    }

    /// Each quoted path, split as ssh's argv_split splits it and with `%%` undone as ssh's
    /// percent expansion undoes it, gives back the path; the block reads back whole.
    func testPathsReadBackAsWritten() throws {
        for path in ["/plain/path", "/with space/key", "/tab\there", "/100%/x", "/q\"uote", "/s'ingle", "/back\\slash",
                     "/hash #x", "/#start", "/eq=uals", "~/.ssh/id", "/trailing\\"] {
            let argument = try SessionHostBlock.pathArgument(path, field: "IdentityFile")
            let line = try XCTUnwrap(try SSHConfigLine.parse("IdentityFile \(argument)"), path)
            XCTAssertEqual(line.args.map { $0.replacingOccurrences(of: "%%", with: "%") }, [path], argument)
            var block = foo
            block.identityFile = path
            block.knownHostsFile = path
            let lines = try block.rendered().split(separator: "\n").dropFirst().dropLast().map(String.init)
            XCTAssertEqual(SessionHostBlock.parse(name: "foo", lines: lines), block, path)
        }
    }

    func testFieldsSshCannotCarryAreRefused() {
        func refused(_ block: SessionHostBlock, _ expected: SessionError, line: UInt = #line) {
            XCTAssertThrowsError(try block.rendered(), line: line) { XCTAssertEqual($0 as? SessionError, expected, line: line) }
        }
        for name in ["", "a b", "a*", "x,y", "!n", ".hidden", "-opt", "a/b", "ü", String(repeating: "a", count: 65)] {
            var block = foo
            block.name = name
            refused(block, .invalidName(name))
        }
        for port in [0, -1, 65536] {
            var block = foo
            block.port = port
            refused(block, .invalidPort(port))
        }
        for user in ["", "a b", "-x", "a\"b", "a#b"] {
            var block = foo
            block.user = user
            refused(block, .invalidUser(user))
        }
        for path in ["relative/key", "", "/new\nline", "/cr\r", "/env/${HOME}/k"] {
            var block = foo
            block.identityFile = path
            refused(block, .invalidPath(field: "IdentityFile", path: path))
            block = foo
            block.knownHostsFile = path
            refused(block, .invalidPath(field: "UserKnownHostsFile", path: path))
        }
        XCTAssertFalse(SessionError.invalidPath(field: "IdentityFile", path: "/a\nb").description.contains("\n"))
    }

    func testNewFileAndDirectoryArePrivateAndRoundTripLeavesNoFile() throws {
        let config = SSHClientConfigFile(path: SSHClientConfigFile.defaultPath(home: home))
        XCTAssertEqual(config.path, "\(home)/.ssh/dbgbox/config")
        XCTAssertEqual(try config.names(), [])
        XCTAssertFalse(try config.upsert(foo))
        XCTAssertEqual(try fs.mode(of: "\(home)/.ssh"), 0o700)
        XCTAssertEqual(try fs.mode(of: "\(home)/.ssh/dbgbox"), 0o700)
        XCTAssertEqual(try fs.mode(of: config.path), 0o600)
        XCTAssertEqual(try text(config.path), try foo.rendered())
        XCTAssertEqual(try config.blocks(), [foo])
        XCTAssertTrue(try config.remove(name: "foo"))
        XCTAssertFalse(try config.remove(name: "foo"))
        XCTAssertFalse(fs.exists(config.path))
    }

    /// Whatever else the file holds (comments, CRLF, a missing final newline, blocks of other
    /// sessions) is kept byte for byte; replacing keeps the block's place.
    func testAddReplaceRemoveRoundTripIsByteIdentical() throws {
        let others = [
            "",
            "# my own notes\r\nHost extra\r\n  User me\r\n",
            "# no final newline",
            "Host x\n\n\n",
        ]
        for original in others {
            let path = "\(home)/cfg-\(UUID().uuidString.prefix(6))"
            if !original.isEmpty { try fs.writeAtomically(Data(original.utf8), to: path, mode: 0o640) }
            let config = SSHClientConfigFile(path: path)
            var bar = foo
            bar.name = "bar"
            bar.port = 2202
            try config.upsert(foo)
            try config.upsert(bar)
            XCTAssertEqual(try config.names(), ["foo", "bar"], original)
            var moved = foo
            moved.port = 2299
            XCTAssertTrue(try config.upsert(moved))
            XCTAssertEqual(try config.blocks(), [moved, bar], original)
            XCTAssertEqual(try config.block(named: "foo"), moved)
            if !original.isEmpty { XCTAssertEqual(try fs.mode(of: path), 0o640) }

            XCTAssertTrue(try config.remove(name: "foo"))
            XCTAssertEqual(try config.blocks(), [bar])
            XCTAssertTrue(try config.remove(name: "bar"))
            if original.isEmpty {
                XCTAssertFalse(fs.exists(path))
            } else if original.utf8.last == UInt8(ascii: "\n") {
                XCTAssertEqual(try text(path), original)
            } else {
                // Our block had to start on its own line: the one byte that makes that so stays.
                XCTAssertEqual(try text(path), original + "\n")
            }
        }
    }

    func testUpsertOfSameBlockWritesNothing() throws {
        let config = SSHClientConfigFile(path: "\(home)/config")
        try config.upsert(foo)
        let before = try FileManager.default.attributesOfItem(atPath: config.path)[.systemFileNumber] as? Int
        XCTAssertTrue(try config.upsert(foo))
        let after = try FileManager.default.attributesOfItem(atPath: config.path)[.systemFileNumber] as? Int
        XCTAssertEqual(before, after)
    }

    /// A hand-edited block is reported, and still removed exactly (to the next marker when its
    /// end marker is gone); look-alike comments are left alone.
    func testHandEditedBlocksAreRemovedExactly() throws {
        let path = "\(home)/config"
        let keep = "# dbgbox session has space\n# dbgbox sessions\n"
        let broken = "# dbgbox session old\nHost dbgbox-old\n    Port 1\n"
        try fs.writeAtomically(Data((keep + broken + (try foo.rendered())).utf8), to: path, mode: 0o600)
        let config = SSHClientConfigFile(path: path)
        XCTAssertEqual(try config.names(), ["old", "foo"])
        XCTAssertThrowsError(try config.blocks()) {
            XCTAssertEqual($0 as? SessionError, .malformedBlock(name: "old", path: path))
        }
        XCTAssertTrue(try config.remove(name: "old"))
        XCTAssertEqual(try text(path), keep + (try foo.rendered()))
        XCTAssertEqual(try config.blocks(), [foo])
    }
}
