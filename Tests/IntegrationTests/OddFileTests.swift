import Foundation
import XCTest
@testable import DbgboxKit

/// Every file dbgbox reads may be something other than a small regular file: a directory,
/// /dev/zero, a FIFO, a file over its limit, a dangling symlink, a file the user cannot read.
/// For each kind of file and each kind of odd file, the installed binary run as the test user
/// gives exactly one line on stderr naming the file, a non-zero exit without a crash signal,
/// returns within seconds (a FIFO never blocks) and leaves nothing new in HOME. docker is a
/// stand-in that fails, so a command that reached docker before the file would fail this test.
final class OddFileTests: XCTestCase {
    enum Odd: String, CaseIterable {
        case directory, devZero, fifo, tooLarge, danglingSymlink, unreadable
    }

    /// One kind of file and a command line that reads it.
    struct Reader {
        var kind: FileKind
        var label: String
        /// Where the odd file goes: relative to HOME for files dbgbox looks for at a fixed place
        /// (config.yaml, a session record), else nil (a path in the scratch directory, given in `args`).
        var fixedPath: String?
        /// The command line, given the odd file's path and a scratch directory for helper files.
        var args: (_ odd: String, _ scratch: String) throws -> [String]
        var env: (_ odd: String) -> [String: String] = { _ in [:] }
        /// Odd kinds left out for this reader (said why where it is set).
        var accepts: Set<Odd> = []
    }

    var home = ""
    var scratch = ""

    override func setUpWithError() throws {
        _ = try IT.requireBinary()
        home = try IT.scratchDir("oddhome")
        scratch = try IT.scratchDir("odd")
    }

    override func tearDownWithError() throws {
        for dir in [home, scratch] where !dir.isEmpty { try? FileManager.default.removeItem(atPath: dir) }
    }

    static let tunnel = ["tunnel", "--login", "u@127.0.0.1:1", "--node", "u@127.0.0.1:1", "--port", "2222"]

    /// Writes `text` into the scratch directory as a file the test user owns.
    func helperFile(_ name: String, _ text: String) throws -> String {
        let path = "\(scratch)/\(name)"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        _ = try IT.runner.run(["chown", "\(IT.user.uid):\(IT.user.gid)", path])
        return path
    }

    var readers: [Reader] {
        [
            Reader(kind: .publicKey, label: "container create --key", args: { odd, _ in
                ["container", "create", "--gpu", "none", "--key", odd]
            }),
            Reader(kind: .publicKey, label: "key install --key", args: { odd, _ in
                ["key", "install", "--login", "u@127.0.0.1:1", "-F", "none", "--key", odd]
            }),
            Reader(kind: .privateKey, label: "tunnel -i", args: { odd, _ in Self.tunnel + ["-F", "none", "-i", odd] }),
            Reader(kind: .knownHosts, label: "cleanup --known-hosts", args: { odd, _ in
                ["cleanup", "--port", "2201", "--known-hosts", odd]
            }),
            Reader(kind: .sshConfig, label: "tunnel -F", args: { odd, _ in Self.tunnel + ["-F", odd, "-i", "/nonexistent-key"] }),
            // An Included directory reads as empty, as in OpenSSH (differentially tested), and
            // whether glob(3) hands on a dangling link is glob's business: not part of this table.
            Reader(kind: .sshConfig, label: "tunnel -F with Include", args: { odd, _ in
                let main = try self.helperFile("main-\(UUID().uuidString.prefix(6)).conf", "Include \(odd)\n")
                return Self.tunnel + ["-F", main, "-i", "/nonexistent-key"]
            }, accepts: [.directory, .danglingSymlink]),
            Reader(kind: .template, label: "image create --template", args: { odd, _ in
                ["image", "create", "--base", "debian:12", "--family", "apt", "--print", "--template", odd]
            }),
            Reader(kind: .dockerfilePart, label: "image create --append", args: { odd, _ in
                ["image", "create", "--base", "debian:12", "--family", "apt", "--print", "--append", odd]
            }),
            Reader(kind: .config, label: "config.yaml", fixedPath: ".config/dbgbox/config.yaml", args: { _, _ in
                ["container", "create", "--gpu", "none"]
            }),
            Reader(kind: .gpuFile, label: "$PBS_GPUFILE", args: { _, _ in ["container", "create", "--gpu", "V"] },
                   env: { odd in ["PBS_GPUFILE": odd] }),
            Reader(kind: .sessionRecord, label: "session record", fixedPath: ".local/state/dbgbox/sessions/s1.json",
                   args: { _, _ in ["down", "s1"] }),
        ]
    }

    /// Makes `odd` at `path` (owned by the test user unless it is the unreadable one); returns the
    /// path the command is given (/dev/zero itself when the place is free).
    func make(_ odd: Odd, at path: String, fixed: Bool, limit: Int) throws -> String {
        let owner = "\(IT.user.uid):\(IT.user.gid)"
        func run(_ argv: [String]) throws {
            let r = try IT.runner.run(argv)
            XCTAssertEqual(r.exitCode, 0, "\(argv): \(r.stderrText)")
        }
        try run(["mkdir", "-p", (path as NSString).deletingLastPathComponent])
        switch odd {
        case .directory: try run(["mkdir", path])
        case .devZero:
            if !fixed { return "/dev/zero" }
            try run(["ln", "-s", "/dev/zero", path])
        case .fifo: try run(["mkfifo", path])
        case .tooLarge: try run(["truncate", "-s", String(limit + 1), path])
        case .danglingSymlink: try run(["ln", "-s", "/nonexistent-dbgbox-target", path])
        case .unreadable:
            try run(["sh", "-c", "echo secret > \"$1\" && chmod 600 \"$1\"", "sh", path])
            return path  // root's, mode 0600
        }
        try run(["chown", "-h", owner, path])
        return path
    }

    /// Every path under `dir`.
    func tree(_ dir: String) throws -> [String] {
        try IT.runner.run(["find", dir]).stdoutText.split(separator: "\n").map(String.init).sorted()
    }

    func testEveryOddFileGivesOneLineFastAndLeavesNothing() throws {
        let bin = try IT.requireBinary()
        // A key pair for the commands that read other files after the key; a docker that fails.
        let keygen = try IT.dbgbox(["keygen"], home: home)
        XCTAssertEqual(keygen.exitCode, 0, keygen.stderrText)
        let fakeBin = "\(scratch)/bin"
        try FileManager.default.createDirectory(atPath: fakeBin, withIntermediateDirectories: true)
        try "#!/bin/sh\necho 'stand-in docker: the odd file should have stopped dbgbox first' >&2\nexit 1\n"
            .write(toFile: "\(fakeBin)/docker", atomically: true, encoding: .utf8)
        _ = try IT.runner.run(["chmod", "0755", fakeBin, "\(fakeBin)/docker"])
        let path = "\(fakeBin):/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"

        var cases = 0
        for reader in readers {
            for odd in Odd.allCases where !reader.accepts.contains(odd) {
                let place = reader.fixedPath.map { "\(home)/\($0)" } ?? "\(scratch)/odd-\(odd.rawValue)-\(UUID().uuidString.prefix(6))"
                let given = try make(odd, at: place, fixed: reader.fixedPath != nil, limit: reader.kind.limit)
                defer { _ = try? IT.runner.run(["rm", "-rf", place]) }
                let args = try reader.args(given, scratch)
                let label = "\(reader.label) × \(odd.rawValue): dbgbox \(args.joined(separator: " "))"
                let before = try tree(home)
                let started = Date()
                let r = try IT.asUser(["timeout", "-s", "KILL", "30", bin] + args, home: home,
                                      extraEnv: reader.env(given).merging(["PATH": path]) { a, _ in a })
                let seconds = Date().timeIntervalSince(started)
                cases += 1

                XCTAssertNotEqual(r.exitCode, 0, label)
                XCTAssertLessThan(r.exitCode, 124, "\(label): killed or crashed (exit \(r.exitCode)): \(r.stderrText.prefix(500))")
                XCTAssertLessThan(seconds, 5, "\(label): took \(seconds) s")
                XCTAssertFalse(r.stderrText.contains("Fatal error"), "\(label): \(r.stderrText.prefix(500))")
                XCTAssertEqual(r.stdoutText, "", "\(label): stdout must be empty")
                let lines = r.stderrText.split(separator: "\n", omittingEmptySubsequences: false)
                XCTAssertEqual(lines.count, 2, "\(label): expected one line, got: \(r.stderrText.prefix(1000))")
                XCTAssertTrue(r.stderrText.hasPrefix("dbgbox: error: "), "\(label): \(r.stderrText.prefix(500))")
                XCTAssertTrue(r.stderrText.contains(given), "\(label): should name \(given): \(r.stderrText.prefix(500))")
                XCTAssertFalse(r.stderrText.contains("stand-in docker"), "\(label): reached docker before the file")
                XCTAssertEqual(try tree(home), before, "\(label): left something behind in HOME")
            }
        }
        XCTAssertGreaterThanOrEqual(cases, 60)
    }

    /// A config.yaml of nine levels of ten aliases (a billion values once expanded) is refused in
    /// one line at once, not expanded.
    func testBillionLaughsConfigIsRefusedAtOnce() throws {
        let keygen = try IT.dbgbox(["keygen"], home: home)
        XCTAssertEqual(keygen.exitCode, 0, keygen.stderrText)
        var yaml = "a0: &a0 [\"lol\"]\n"
        for level in 1...9 {
            yaml += "a\(level): &a\(level) [" + Array(repeating: "*a\(level - 1)", count: 10).joined(separator: ", ") + "]\n"
        }
        XCTAssertLessThan(yaml.utf8.count, 1100)
        _ = try IT.asUser(["mkdir", "-p", "\(home)/.config/dbgbox"], home: home)
        _ = try IT.asUser(["sh", "-c", "cat > \"$HOME/.config/dbgbox/config.yaml\""], home: home, input: Data(yaml.utf8))
        let started = Date()
        let r = try IT.asUser(["timeout", "-s", "KILL", "30", try IT.requireBinary(), "container", "create", "--gpu", "none"],
                              home: home, extraEnv: ["PATH": "/nonexistent-bin:/usr/bin:/bin"])
        let seconds = Date().timeIntervalSince(started)
        XCTAssertLessThan(seconds, 2, "took \(seconds) s")
        XCTAssertNotEqual(r.exitCode, 0)
        XCTAssertLessThan(r.exitCode, 124, r.stderrText)
        XCTAssertEqual(r.stderrText.filter { $0 == "\n" }.count, 1, r.stderrText)
        XCTAssertTrue(r.stderrText.hasPrefix("dbgbox: error: "), r.stderrText)
        IT.assertContains(r.stderrText, ["config.yaml", "aliases"])
    }
}
