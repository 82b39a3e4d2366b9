import Foundation
import XCTest
@testable import DbgboxKit

/// The bounded reader and the small input checks of issue 12 (odd files, hostile config).
final class OddInputTests: XCTestCase {
    let fs = LocalFileSystem()

    /// A fresh directory, removed when the test ends.
    func scratch() throws -> String {
        let made = NSTemporaryDirectory() + "dbgbox-odd-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: made, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: made) }
        return made
    }

    func assertRefused(_ path: String, as kind: FileKind, _ reason: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try fs.read(path, as: kind), file: file, line: line) { error in
            let text = "\(error)"
            XCTAssertTrue(text.hasPrefix(path) || text.contains(" \(path)"), text, file: file, line: line)
            XCTAssertTrue(text.contains(reason), text, file: file, line: line)
            XCTAssertFalse(text.contains("\n"), text, file: file, line: line)
        }
    }

    func testOddFilesAreRefusedWithoutReadingThem() throws {
        let dir = try scratch()
        assertRefused(dir, as: .knownHosts, "\(dir): is a directory, not a file")
        assertRefused("/dev/zero", as: .privateKey, "/dev/zero: is a character device, not a regular file")
        XCTAssertEqual(try fs.read("/dev/null", as: .sshConfig), Data(), "ssh's -F /dev/null idiom: empty")
        let fifo = "\(dir)/fifo"
        XCTAssertEqual(mkfifo(fifo, 0o600), 0)
        let started = Date()
        assertRefused(fifo, as: .sshConfig, "is a FIFO, not a regular file")
        XCTAssertLessThan(Date().timeIntervalSince(started), 1, "a FIFO without a writer must not block")

        let big = "\(dir)/big"
        _ = FileManager.default.createFile(atPath: big, contents: Data())
        XCTAssertEqual(truncate(big, off_t(FileKind.config.limit + 1)), 0)
        assertRefused(big, as: .config, "larger than 1 MiB")
        XCTAssertEqual(truncate(big, off_t(FileKind.config.limit)), 0)
        XCTAssertEqual(try fs.read(big, as: .config).count, FileKind.config.limit, "exactly the limit is fine")

        let dangling = "\(dir)/dangling"
        XCTAssertEqual(symlink("\(dir)/nowhere", dangling), 0)
        assertRefused(dangling, as: .publicKey, "No such file or directory")
    }

    func testSymlinksAreFollowedForUsersFilesOnly() throws {
        let dir = try scratch()
        let target = "\(dir)/target"
        try Data("ok\n".utf8).write(to: URL(fileURLWithPath: target))
        let link = "\(dir)/link"
        XCTAssertEqual(symlink(target, link), 0)
        XCTAssertEqual(try fs.read(link, as: .privateKey), Data("ok\n".utf8), "dotfile managers link keys and configs")
        assertRefused(link, as: .sessionRecord, "is a symbolic link, not a regular file")
    }

    func testLimitsAreNamedInOnePlace() {
        XCTAssertEqual(FileKind.privateKey.limit, 64 * 1024)
        XCTAssertEqual(FileKind.knownHosts.limit, 16 * 1024 * 1024)
        XCTAssertEqual(FileKind.size(FileKind.knownHosts.limit), "16 MiB")
        XCTAssertEqual(FileKind.size(FileKind.gpuFile.limit), "64 KiB")
        for kind in FileKind.allCases { XCTAssertGreaterThan(kind.limit, 0, kind.rawValue) }
    }

    func testBillionLaughsIsRefusedQuickly() {
        var yaml = "a0: &a0 [\"lol\"]\n"
        for level in 1...9 {
            yaml += "a\(level): &a\(level) [" + Array(repeating: "*a\(level - 1)", count: 10).joined(separator: ", ") + "]\n"
        }
        let started = Date()
        XCTAssertThrowsError(try DbgboxConfig.parse(yaml, path: "/c.yaml")) { error in
            XCTAssertTrue("\(error)".contains("aliases"), "\(error)")
            XCTAssertTrue("\(error)".hasPrefix("config file /c.yaml is malformed"), "\(error)")
        }
        XCTAssertLessThan(Date().timeIntervalSince(started), 1)
    }

    func testModestAliasesStillWork() throws {
        let config = try DbgboxConfig.parse("""
            gpu_profiles:
              X: &x {cpus: "4", memory: 8G}
              Y: *x
            """, path: "/c.yaml")
        XCTAssertEqual(config.gpuProfiles["Y"]?.cpus, "4")
        XCTAssertEqual(config.gpuProfiles["X"]?.memory, "8G")
    }

    func testKeygenCommentMustBeOneLine() throws {
        let dir = try scratch()
        XCTAssertNoThrow(try KeyPairWriter.validate(comment: "alice@laptop (work)"))
        for bad in ["a\nb", "a\rb", "a\u{0}b", "a\u{7f}", "a\u{85}b"] {
            XCTAssertThrowsError(try KeyPairWriter.validate(comment: bad)) { error in
                XCTAssertFalse("\(error)".contains("\n"), "\(error)")
            }
        }
        let request = KeygenRequest(directory: "\(dir)/keys", comment: "x\nssh-ed25519 AAAA y")
        XCTAssertThrowsError(try KeyPairWriter().write(request))
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(dir)/keys"), "nothing written")
    }

    func testValuesInMessagesAreQuotedAndCut() {
        XCTAssertEqual(shown(" 2201"), "\" 2201\"")
        XCTAssertEqual(shown("a\nb"), "\"a\\nb\"")
        XCTAssertEqual(shown(String(repeating: "x", count: 500)), "\"" + String(repeating: "x", count: 200) + "\"…")
        XCTAssertEqual(PortError.notANumber(" 2201").description.prefix(15), "--port \" 2201\" ")

        let long = "host " + String(repeating: "h", count: 20_000_000) + ": cannot resolve " + String(repeating: "h", count: 300)
        let line = OneLine.message(long)
        XCTAssertLessThan(line.count, 700)
        let cut = String(repeating: "h", count: OneLine.valueLimit) + "…"
        XCTAssertEqual(line, "host \(cut) cannot resolve \(cut)")
        let spaced = String(repeating: "word ", count: 1_000_000)
        XCTAssertEqual(OneLine.message(spaced).count, OneLine.messageLimit + 1, "the whole message is cut too")
        XCTAssertEqual(OneLine.message("a\nb\tc"), "a\\nb\\tc")
    }

    func testContainerNamesThatCannotExist() {
        for good in ["alice_01234", "a", "x.y-z_1", "0123abcd"] { XCTAssertNoThrow(try ContainerSpec.validateName(good), good) }
        for bad in ["", "-x", "_x", "a b", "a/b", "a\nb", "é"] {
            XCTAssertThrowsError(try ContainerSpec.validateName(bad), bad) { error in
                XCTAssertTrue("\(error)".contains("cannot be a container name"), "\(error)")
            }
        }
    }

    func testBindWarningForNonLoopback() throws {
        for loopback in ["127.0.0.1", "127.1.2.3", "::1", "localhost"] {
            XCTAssertTrue(TunnelRequest.isLoopback(loopback), loopback)
        }
        for open in ["0.0.0.0", "192.168.1.5", "::", "example.org"] {
            XCTAssertFalse(TunnelRequest.isLoopback(open), open)
        }
        let spec = try HostSpec(parsing: "u@h")
        XCTAssertNil(TunnelRequest(login: spec, node: spec, targetPort: 2222).bindWarning)
        let warning = try XCTUnwrap(TunnelRequest(login: spec, node: spec, targetPort: 2222, bindAddress: "0.0.0.0").bindWarning)
        XCTAssertTrue(warning.contains("\"0.0.0.0\"") && warning.contains("2222"), warning)
    }

    func testHomeMustBeAbsoluteWhenSet() {
        XCTAssertNoThrow(try TildePath.checkHome(environment: [:]))
        XCTAssertNoThrow(try TildePath.checkHome(environment: ["HOME": "/home/a"]))
        for bad in ["", "foo", "./x"] {
            XCTAssertThrowsError(try TildePath.checkHome(environment: ["HOME": bad])) { error in
                XCTAssertTrue("\(error)".hasPrefix("HOME=\"\(bad)\" is not an absolute path"), "\(error)")
            }
        }
    }

    func testImageReferencesDockerWouldReadAsFlags() {
        XCTAssertNoThrow(try ImageReference.validateImage("alice/ssh:latest"))
        XCTAssertNoThrow(try ImageReference.validateImage("0123456789ab"))
        for bad in ["-v", "--privileged", "a\nb", "", "a b"] {
            XCTAssertThrowsError(try ImageReference.validateImage(bad), bad) { error in
                XCTAssertTrue("\(error)".hasPrefix("--image \(shown(bad)) is not a valid image reference"), "\(error)")
            }
        }
    }
}
