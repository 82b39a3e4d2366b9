import Foundation
import XCTest
@testable import DbgboxKit

/// The key proof for cleanup: on many generated known_hosts files, `KnownHostsFile.remove`
/// leaves exactly the bytes (and .old backup) that the real `ssh-keygen -R HOST -f FILE` leaves.
final class KnownHostsDifferentialTests: XCTestCase {
    static let targets = ["[127.0.0.1]:2201", "[localhost]:2201", "127.0.0.1"]
    var dir = ""
    let fs = LocalFileSystem()

    override func setUpWithError() throws {
        try IT.require(LocalProcessRunner.resolve("ssh-keygen") != nil, "ssh-keygen (openssh-client)")
        dir = NSTemporaryDirectory() + "dbgbox-khdiff-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        if !dir.isEmpty { try? FileManager.default.removeItem(atPath: dir) }
    }

    // MARK: - Building variants

    /// A deterministic generator, so a failing case can be reproduced from its index.
    struct SplitMix64 {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
    }

    private var cachedKeys: [String] = []

    func publicKeys() throws -> [String] {
        if !cachedKeys.isEmpty { return cachedKeys }
        var keys: [String] = []
        for (i, type) in ["ed25519", "ecdsa"].enumerated() {
            let path = "\(dir)/hostkey\(i)"
            let r = try IT.runner.run(["ssh-keygen", "-q", "-t", type, "-N", "", "-C", "", "-f", path])
            XCTAssertTrue(r.succeeded, r.stderrText)
            keys.append(try SSHPublicKey(line: String(decoding: try fs.read(path + ".pub"), as: UTF8.self)).line)
        }
        cachedKeys = keys
        return keys
    }

    /// `ssh-keygen -H` output for each name, two salts each.
    func hashedLines(_ names: [String], key: String) throws -> [String] {
        let path = "\(dir)/tohash"
        let plain = (names + names).map { "\($0) \(key)\n" }.joined()
        try fs.writeAtomically(Data(plain.utf8), to: path, mode: 0o600)
        let r = try IT.runner.run(["ssh-keygen", "-H", "-f", path])
        XCTAssertTrue(r.succeeded, r.stderrText)
        let lines = String(decoding: try fs.read(path), as: UTF8.self).split(separator: "\n").map(String.init)
        XCTAssertEqual(lines.count, names.count * 2)
        XCTAssertTrue(lines.allSatisfy { $0.hasPrefix("|1|") })
        return lines
    }

    /// Every kind of line a user's known_hosts holds that OpenSSH reads as valid.
    func validLinePool() throws -> [String] {
        let keys = try publicKeys()
        let (k1, k2) = (keys[0], keys[1])
        let k1Tab = k1.replacingOccurrences(of: " ", with: "\t")
        let hosts = ["[127.0.0.1]:2201", "[localhost]:2201", "127.0.0.1", "localhost", "[127.0.0.1]:2202",
                     "[localhost]:22010", "[127.0.0.1]:220", "127.0.0.2", "gpu-node.example.org", "[LOCALHOST]:2201",
                     "[127.0.0.1]:22"]
        var pool: [String] = []
        for host in hosts {
            pool += ["\(host) \(k1)", "\(host) \(k2) with a comment", "  \(host)\t\(k1Tab)", "\(host) \(k1)\r",
                     "@cert-authority \(host) \(k2)", "@revoked \(host) \(k1)", "# \(host) \(k1)"]
        }
        pool += ["[127.0.0.1]:2201,[localhost]:2201 \(k1)", "gpu,[127.0.0.1]:2201 \(k2)", "127.0.0.1,localhost \(k1)",
                 "a,b,[localhost]:2201,c \(k1)", "[127.0.0.1]:2202,[localhost]:2202 \(k2)",
                 "[127.0.0.1]:22* \(k1)", "[127.0.0.1]:220? \(k1)", "* \(k2)", "*.example.org \(k1)",
                 "*,![127.0.0.1]:2201 \(k1)", "![localhost]:2201,* \(k1)", "[localhost]:2201,!* \(k2)",
                 "!127.0.0.1 \(k1)", "127.0.0.? \(k1)", "[127.0.0.1]:2201,,x \(k1)", "[127.0.0.1]:2201, \(k1)",
                 "@cert-authority * \(k1)", "@revoked [127.0.0.1]:2201,[localhost]:2201 \(k2)",
                 "[127.0.0.1]:2201 ED25519 \(k1.split(separator: " ")[1])", "[localhost]:2201 rsa AAAAB3NzaC1yc2E=",
                 "", "   ", "\t", "#", "# comment [127.0.0.1]:2201", "#\r", " \t# x"]
        pool += try hashedLines(["[127.0.0.1]:2201", "[localhost]:2201", "127.0.0.1", "localhost",
                                 "[127.0.0.1]:2202", "gpu-node.example.org"], key: k1)
        return pool
    }

    /// Lines ssh-keygen calls invalid (and then refuses to rewrite the file).
    func invalidLinePool(key: String) -> [String] {
        ["[127.0.0.1]:2201", "[localhost]:2201 bogus-type AAAA", "[127.0.0.1]:2201 ssh-ed25519",
         "[127.0.0.1]:2201 ssh-ed25519   # gone", "@bogus [127.0.0.1]:2201 \(key)", "@revoked",
         "|1|notbase64!|xyz= \(key)", "|2|abc|def \(key)", "[localhost]:2201 1024 35 12345",
         "@cert-authority @revoked [127.0.0.1]:2201 \(key)",
         // A lone CR (a CRLF blank line) is a one-byte host field with no key.
         "\r", "\t\r"]
    }

    func variants(count: Int, pool: [String], seed: UInt64, mixIn extra: [String] = []) -> [Data] {
        var rng = SplitMix64(state: seed)
        var files: [Data] = []
        for index in 0..<count {
            let lineCount = 1 + rng.below(14)
            var lines = (0..<lineCount).map { _ in pool[rng.below(pool.count)] }
            if !extra.isEmpty {
                for _ in 0..<(1 + rng.below(3)) { lines.insert(extra[rng.below(extra.count)], at: rng.below(lines.count + 1)) }
            }
            var text = lines.joined(separator: "\n")
            if index % 3 != 0 { text += "\n" }  // a third lack the final newline
            files.append(Data(text.utf8))
        }
        return files
    }

    // MARK: - Running both

    struct Outcome: Equatable {
        var contents: Data
        var backup: Data?
        var mode: mode_t
    }

    func viaSSHKeygen(_ original: Data, hosts: [String], mode: mode_t = 0o600) throws -> Outcome {
        let path = "\(dir)/ref_known_hosts"
        try? fs.remove(path + ".old")
        try fs.writeAtomically(original, to: path, mode: mode)
        for host in hosts { _ = try IT.runner.run(["ssh-keygen", "-R", host, "-f", path]) }
        return Outcome(contents: try fs.read(path), backup: fs.exists(path + ".old") ? try fs.read(path + ".old") : nil,
                       mode: try fs.mode(of: path))
    }

    func viaDbgbox(_ original: Data, hosts: [String], mode: mode_t = 0o600) throws -> Outcome {
        let path = "\(dir)/our_known_hosts"
        try? fs.remove(path + ".old")
        try fs.writeAtomically(original, to: path, mode: mode)
        _ = try KnownHostsFile(path: path).remove(hosts: hosts)
        return Outcome(contents: try fs.read(path), backup: fs.exists(path + ".old") ? try fs.read(path + ".old") : nil,
                       mode: try fs.mode(of: path))
    }

    func show(_ data: Data) -> String { String(decoding: data, as: UTF8.self).debugDescription }

    // MARK: - Tests

    func testSingleHostRemovalMatchesSSHKeygen() throws {
        let files = variants(count: 120, pool: try validLinePool(), seed: 2201)
        var cases = 0, changed = 0
        for (index, original) in files.enumerated() {
            for host in Self.targets {
                let expected = try viaSSHKeygen(original, hosts: [host])
                let actual = try viaDbgbox(original, hosts: [host])
                XCTAssertEqual(actual, expected, "variant \(index), -R \(host), file \(show(original))")
                cases += 1
                if expected.backup != nil { changed += 1 }
            }
        }
        XCTAssertGreaterThan(changed, cases / 4, "the variants must exercise removal")
        XCTAssertLessThan(changed, cases, "the variants must exercise no-match too")
        print("known_hosts differential: \(cases) single-host cases, \(changed) with removals")
    }

    func testAllTargetsAtOnceMatchSuccessiveSSHKeygenRuns() throws {
        let files = variants(count: 60, pool: try validLinePool(), seed: 2202)
        for (index, original) in files.enumerated() {
            let expected = try viaSSHKeygen(original, hosts: Self.targets)
            let actual = try viaDbgbox(original, hosts: Self.targets)
            XCTAssertEqual(actual.contents, expected.contents, "variant \(index), file \(show(original))")
            XCTAssertEqual(actual.mode, expected.mode)
            // ssh-keygen's .old is the file before its last run; ours is the original.
            if expected.backup != nil { XCTAssertEqual(actual.backup, original) }
        }
    }

    func testModeIsMaskedLikeSSHKeygen() throws {
        let original = Data("[127.0.0.1]:2201 \(try publicKeys()[0])\nother \(try publicKeys()[0])\n".utf8)
        for mode: mode_t in [0o600, 0o644, 0o664, 0o640, 0o666, 0o400] {
            let expected = try viaSSHKeygen(original, hosts: ["[127.0.0.1]:2201"], mode: mode)
            let actual = try viaDbgbox(original, hosts: ["[127.0.0.1]:2201"], mode: mode)
            XCTAssertEqual(actual, expected, "mode \(String(mode, radix: 8))")
        }
    }

    /// ssh-keygen refuses a file with any invalid line; dbgbox keeps those lines verbatim and
    /// otherwise does what ssh-keygen does on the file without them.
    func testInvalidLinesAreKeptVerbatimAndTheRestMatches() throws {
        let pool = try validLinePool()
        let key = try publicKeys()[0]
        let invalid = invalidLinePool(key: key)
        let files = variants(count: 40, pool: pool, seed: 2203, mixIn: invalid)
        for (index, original) in files.enumerated() {
            let refusal = try viaSSHKeygen(original, hosts: ["[127.0.0.1]:2201"])
            XCTAssertEqual(refusal.contents, original, "ssh-keygen should refuse variant \(index)")
            // Byte-level lines: Swift's Character view would glue "\r\n" into one.
            let invalidBytes = Set(invalid.map { Array($0.utf8) })
            let lines = byteLines(original)
            let validOnly = Data(lines.filter { !invalidBytes.contains($0) }.joined(separator: [10]))
            let expected = try viaSSHKeygen(validOnly, hosts: ["[127.0.0.1]:2201"])
            let actual = try viaDbgbox(original, hosts: ["[127.0.0.1]:2201"])
            let actualLines = byteLines(actual.contents)
            XCTAssertEqual(actualLines.filter { invalidBytes.contains($0) }, lines.filter { invalidBytes.contains($0) }, "variant \(index)")
            let actualValid = Data(actualLines.filter { !invalidBytes.contains($0) }.joined(separator: [10]))
            XCTAssertEqual(actualValid, expected.contents, "variant \(index): \(show(original))")
        }
    }

    func byteLines(_ data: Data) -> [[UInt8]] {
        [UInt8](data).split(separator: 10, omittingEmptySubsequences: false).map(Array.init)
    }

    func testRejectedInvalidLinesReallyAreInvalidForSSHKeygen() throws {
        let key = try publicKeys()[0]
        for line in invalidLinePool(key: key) {
            let original = Data("[127.0.0.1]:2201 \(key)\n\(line)\n".utf8)
            let refusal = try viaSSHKeygen(original, hosts: ["[127.0.0.1]:2201"])
            XCTAssertEqual(refusal.contents, original, "ssh-keygen accepted \(line.debugDescription)")
            XCTAssertNil(refusal.backup)
        }
    }
}
