import Foundation
import XCTest
@testable import DbgboxKit

/// `ide vscode --attach` and `ide pycharm --debug-server`: the debugpy configuration, and its
/// merge into a launch.json (JSONC) that keeps every other byte.
final class DebugAttachTests: XCTestCase {
    let attach = DebugAttach(target: IDEFixtures.alice, containerPort: 5678, localPort: 15678)
    var dir = ""
    let fs = LocalFileSystem()

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "dbgbox-launch-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir + "/.vscode", withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: dir)
    }

    /// The configuration parsed as JSON (it is plain JSON, no comments).
    func parsed(_ text: String) throws -> [String: Any] {
        try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any], text)
    }

    /// The configurations of a merged file, read with comments and trailing commas removed by
    /// our own parser (it keeps ranges) and JSONSerialization on each element.
    func configurations(_ bytes: [UInt8]) throws -> [[String: Any]] {
        var parser = LaunchJSON.Parser(bytes: bytes)
        let root = try parser.document()
        guard case .array(_, let elements) = try XCTUnwrap(root.member("configurations").first) else {
            XCTFail("no list"); return []
        }
        return try elements.map { element in
            let stripped = Self.stripComments(Array(bytes[element.range]))
            return try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(stripped)) as? [String: Any])
        }
    }

    /// Comments and trailing commas out, for JSONSerialization (test helper; the strings in the
    /// fixtures hold neither `//` nor `/*`).
    static func stripComments(_ bytes: [UInt8]) -> [UInt8] {
        var text = String(decoding: bytes, as: UTF8.self)
        text = text.replacingOccurrences(of: #"/\*[\s\S]*?\*/"#, with: "", options: .regularExpression)
        text = text.replacingOccurrences(of: #"//[^\n]*"#, with: "", options: .regularExpression)
        text = text.replacingOccurrences(of: #",(\s*[\]}])"#, with: "$1", options: .regularExpression)
        return Array(text.utf8)
    }

    func merge(_ text: String?) throws -> (bytes: [UInt8], outcome: LaunchJSON.Outcome) {
        try LaunchJSON.merge(text.map { Array($0.utf8) }, name: attach.configurationName) { indent, unit, newline in
            self.attach.vscodeConfiguration(indent: indent, unit: unit, newline: newline)
        }
    }

    func testConfigurationIsDebugpyAttachWithTheLocalPortAndTheMounts() throws {
        let config = try parsed(attach.vscodeConfiguration())
        XCTAssertEqual(config["name"] as? String, "dbgbox: attach alice_01234")
        XCTAssertEqual(config["type"] as? String, "debugpy")
        XCTAssertEqual(config["request"] as? String, "attach")
        let connect = try XCTUnwrap(config["connect"] as? [String: Any])
        XCTAssertEqual(connect["host"] as? String, "127.0.0.1")
        XCTAssertEqual(connect["port"] as? Int, 15678, "the laptop's end of the forward")
        let maps = try XCTUnwrap(config["pathMappings"] as? [[String: String]])
        XCTAssertEqual(maps, [["localRoot": "/home/alice", "remoteRoot": "/home/alice"],
                              ["localRoot": "/scratch/alice", "remoteRoot": "/data"]])
        XCTAssertEqual(attach.debugpyArgv(program: "train.py"),
                       ["/opt/conda/bin/python3", "-m", "debugpy", "--listen", "127.0.0.1:5678", "--wait-for-client", "train.py"])

        var rooted = attach
        rooted.remoteRoot = "/home/alice/proj"
        let rootedMaps = try XCTUnwrap(try parsed(rooted.vscodeConfiguration())["pathMappings"] as? [[String: String]])
        XCTAssertEqual(rootedMaps.first, ["localRoot": "${workspaceFolder}", "remoteRoot": "/home/alice/proj"])

        // Odd characters in paths stay JSON.
        var odd = attach
        odd.target.mounts = [PathMapping(source: "/a \"q\" \\ b\u{1}", target: "/t\n")]
        let oddMaps = try XCTUnwrap(try parsed(odd.vscodeConfiguration())["pathMappings"] as? [[String: String]])
        XCTAssertEqual(oddMaps, [["localRoot": "/a \"q\" \\ b\u{1}", "remoteRoot": "/t\n"]])
    }

    func testInstructionsNameTheForwardTheCommandAndTheServer() {
        let vscode = attach.vscodeInstructions()
        XCTAssertTrue(vscode.contains("ssh -N -L 127.0.0.1:15678:127.0.0.1:5678 dbgbox-alice_01234"), vscode)
        XCTAssertTrue(vscode.contains("/opt/conda/bin/python3 -m debugpy --listen 127.0.0.1:5678 --wait-for-client YOUR_SCRIPT.py"), vscode)
        XCTAssertTrue(vscode.contains("\"port\": 15678"), vscode)
        let pycharm = DebugAttach(target: IDEFixtures.session, containerPort: 5679, localPort: 5679).pycharmDebugServerInstructions()
        XCTAssertTrue(pycharm.contains("ssh -N -R 127.0.0.1:5679:127.0.0.1:5679 dbgbox-alice_01234"), pycharm)
        XCTAssertTrue(pycharm.contains("pydevd_pycharm.settrace('127.0.0.1', port=5679"), pycharm)
        XCTAssertTrue(pycharm.contains("/scratch/alice = /data"), pycharm)
        XCTAssertTrue(pycharm.contains("--remote-root"), "a session on a node says its paths are the node's")
        XCTAssertThrowsError(try DebugAttach.validatePort(0, option: "--attach"))
        XCTAssertThrowsError(try DebugAttach.validatePort(65536, option: "--attach"))
        XCTAssertNoThrow(try DebugAttach.validatePort(5678, option: "--attach"))
    }

    func testNewFileHasVersionAndTheConfiguration() throws {
        let (bytes, outcome) = try merge(nil)
        XCTAssertEqual(outcome, .created)
        let all = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any])
        XCTAssertEqual(all["version"] as? String, "0.2.0")
        XCTAssertEqual((all["configurations"] as? [[String: Any]])?.first?["name"] as? String, "dbgbox: attach alice_01234")
        XCTAssertEqual(try merge("  \n").outcome, .created)
    }

    static let busy = """
        // my launch.json
        {
        \t/* the version */ "version":"0.2.0",
        \t"configurations"  :  [ // mine first
        \t\t{
        \t\t\t"name": "Python: Current File", // keep
        \t\t\t"type": "debugpy", "request": "launch",
        \t\t\t"program": "${file}",
        \t\t},
        \t\t{ "name": "odd \\u0041 \\"x\\"", "args": [1, -2.5e3, true, null, ], },
        \t],
        \t"compounds": [],   // trailing
        }
        /* tail */

        """

    /// Every byte of the file outside the inserted configuration is kept: the file is exactly
    /// the original with one stretch of text added.
    func assertOnlyInserted(_ original: String, _ merged: [UInt8], file: StaticString = #filePath, line: UInt = #line) {
        let o = Array(original.utf8)
        var prefix = 0
        while prefix < o.count && prefix < merged.count && o[prefix] == merged[prefix] { prefix += 1 }
        var suffix = 0
        while suffix < o.count - prefix && suffix < merged.count - prefix && o[o.count - 1 - suffix] == merged[merged.count - 1 - suffix] {
            suffix += 1
        }
        XCTAssertEqual(prefix + suffix, o.count, "bytes of the original were changed", file: file, line: line)
    }

    func testAddingKeepsCommentsTrailingCommasOtherConfigurationsAndWhitespace() throws {
        let (bytes, outcome) = try merge(Self.busy)
        XCTAssertEqual(outcome, .added)
        assertOnlyInserted(Self.busy, bytes)
        let configs = try configurations(bytes)
        XCTAssertEqual(configs.compactMap { $0["name"] as? String },
                       ["dbgbox: attach alice_01234", "Python: Current File", "odd A \"x\""])
        // Tabs as the file indents.
        XCTAssertTrue(String(decoding: bytes, as: UTF8.self).contains("\t\t{\n\t\t\t\"name\": \"dbgbox: attach alice_01234\""),
                      String(decoding: bytes, as: UTF8.self))
    }

    func testSameNameIsReplacedNotDuplicated() throws {
        let first = try merge(Self.busy).bytes
        var moved = attach
        moved.localPort = 16000
        let second = try LaunchJSON.merge(first, name: moved.configurationName) { i, u, n in
            moved.vscodeConfiguration(indent: i, unit: u, newline: n)
        }
        XCTAssertEqual(second.outcome, .replaced)
        let configs = try configurations(second.bytes)
        XCTAssertEqual(configs.filter { $0["name"] as? String == "dbgbox: attach alice_01234" }.count, 1)
        XCTAssertEqual((configs[0]["connect"] as? [String: Any])?["port"] as? Int, 16000)
        XCTAssertEqual(configs.count, 3)
        // Replacing with the same configuration gives back the same bytes.
        XCTAssertEqual(try LaunchJSON.merge(first, name: attach.configurationName) { i, u, n in
            self.attach.vscodeConfiguration(indent: i, unit: u, newline: n)
        }.bytes, first)
        // Replacing keeps everything outside that configuration's bytes.
        let hand = Self.busy.replacingOccurrences(of: "\t\t{ \"name\": \"odd", with: "\t\t{ \"name\": \"dbgbox: attach alice_01234\", \"x\": 1 },\n\t\t{ \"name\": \"odd")
        let replaced = try merge(hand)
        XCTAssertEqual(replaced.outcome, .replaced)
        let text = String(decoding: replaced.bytes, as: UTF8.self)
        XCTAssertFalse(text.contains("\"x\": 1"), text)
        XCTAssertTrue(text.hasPrefix(String(hand[..<hand.range(of: "\t\t{ \"name\": \"dbgbox")!.lowerBound])), text)
        XCTAssertTrue(text.hasSuffix(String(hand[hand.range(of: "\"x\": 1 }")!.upperBound...])), text)
    }

    func testOtherShapes() throws {
        for original in ["{}", "{ \"version\": \"0.2.0\" }", "{\"configurations\": []}", "{\"configurations\": [/* none */],}",
                         "\u{FEFF}{\r\n  \"configurations\": [\r\n    {\"name\": \"a\"}\r\n  ]\r\n}\r\n"] {
            let (bytes, outcome) = try merge(original)
            XCTAssertEqual(outcome, .added, original)
            assertOnlyInserted(original, bytes)
            let configs = try configurations(bytes)
            XCTAssertEqual(configs.first?["name"] as? String, "dbgbox: attach alice_01234", original)
            if original.contains("\r\n") {
                let text = String(decoding: bytes, as: UTF8.self)
                XCTAssertFalse(text.replacingOccurrences(of: "\r\n", with: "").contains("\n"), "CRLF kept: \(text.debugDescription)")
            }
        }
    }

    func testInvalidJSONCIsRefused() {
        let bad = ["{", "{\"configurations\": [}", "{\"a\" 1}", "[]", "{\"configurations\": {}}", "{\"configurations\": [], \"configurations\": []}",
                   "{} x", "{\"a\": tru}", "{\"a\": \"unterminated}", "/* open {}", "{\"a\": 01x}", "{\"a\": \"\\q\"}",
                   "{\"a\": \"\\u12\"}", "{\"a\": \"tab\there\"}", "{,}", "{\"a\": [,]}", "{\"a\": 1,,}", "{\"a\": -}",
                   String(repeating: "[", count: 10_000)]
        for text in bad {
            XCTAssertThrowsError(try merge(text), text.prefix(40).debugDescription) { error in
                XCTAssertTrue(error is LaunchJSONError, "\(error)")
                XCTAssertFalse("\(error)".contains("\n"))
            }
        }
        // Invalid UTF-8 inside a string.
        XCTAssertThrowsError(try LaunchJSON.merge(Array("{\"a\": \"".utf8) + [0xFF] + Array("\"}".utf8), name: "x") { _, _, _ in "{}" })
    }

    func testWriteMergesAtomicallyAndRefusesOddFiles() throws {
        let file = LaunchJSONFile(projectDirectory: dir)
        try Data(Self.busy.utf8).write(to: URL(fileURLWithPath: file.path))
        chmod(file.path, 0o640)
        let written = try file.write(attach)
        XCTAssertEqual(written.outcome, .added)
        XCTAssertEqual(try fs.mode(of: file.path), 0o640)
        assertOnlyInserted(Self.busy, [UInt8](try fs.read(file.path)))
        XCTAssertEqual(try file.write(attach).outcome, .replaced)

        // Not JSONC: refused, the file untouched.
        let broken = "{ \"configurations\": [ { \"name\": \"x\" } \n"
        try Data(broken.utf8).write(to: URL(fileURLWithPath: file.path))
        XCTAssertThrowsError(try file.write(attach)) { error in
            XCTAssertTrue("\(error)".hasPrefix(file.path + " is not valid JSON with comments at line 2"), "\(error)")
        }
        XCTAssertEqual(String(decoding: try fs.read(file.path), as: UTF8.self), broken)

        // A directory, a FIFO, a file too large.
        try FileManager.default.removeItem(atPath: file.path)
        try FileManager.default.createDirectory(atPath: file.path, withIntermediateDirectories: false)
        XCTAssertThrowsError(try file.write(attach)) { XCTAssertTrue("\($0)".contains("is a directory"), "\($0)") }
        try FileManager.default.removeItem(atPath: file.path)
        XCTAssertEqual(mkfifo(file.path, 0o600), 0)
        XCTAssertThrowsError(try file.write(attach)) { XCTAssertTrue("\($0)".contains("FIFO"), "\($0)") }
        try FileManager.default.removeItem(atPath: file.path)
        try Data(repeating: 0x20, count: FileKind.launchConfig.limit + 1).write(to: URL(fileURLWithPath: file.path))
        XCTAssertThrowsError(try file.write(attach)) { XCTAssertTrue("\($0)".contains("too large"), "\($0)") }

        // A symbolic link: the file it names is edited, the link stays.
        try FileManager.default.removeItem(atPath: file.path)
        let real = dir + "/real-launch.json"
        try Data("{}".utf8).write(to: URL(fileURLWithPath: real))
        try FileManager.default.createSymbolicLink(atPath: file.path, withDestinationPath: real)
        XCTAssertEqual(try file.write(attach).outcome, .added)
        XCTAssertEqual(try FileManager.default.destinationOfSymbolicLink(atPath: file.path), real)
        XCTAssertTrue(String(decoding: try fs.read(real), as: UTF8.self).contains("dbgbox: attach alice_01234"))

        // No .vscode yet: made; no project directory: refused.
        let fresh = LaunchJSONFile(projectDirectory: dir + "/fresh")
        XCTAssertThrowsError(try fresh.write(attach)) { XCTAssertTrue("\($0)".contains("not an existing directory"), "\($0)") }
        try FileManager.default.createDirectory(atPath: dir + "/fresh", withIntermediateDirectories: false)
        XCTAssertEqual(try fresh.write(attach).outcome, .created)
        XCTAssertEqual(try fs.mode(of: fresh.path), 0o644)
    }
}
