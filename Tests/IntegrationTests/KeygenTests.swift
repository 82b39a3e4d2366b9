import Foundation
import XCTest
@testable import DbgboxKit

/// `dbgbox keygen` run as an ordinary user, checked with the real ssh-keygen.
final class KeygenTests: XCTestCase {
    var home = ""

    override func setUpWithError() throws {
        _ = try IT.requireBinary()
        try IT.require(LocalProcessRunner.resolve("ssh-keygen") != nil, "ssh-keygen (openssh-client)")
        home = try IT.scratchDir("keygen")
    }

    override func tearDownWithError() throws {
        if !home.isEmpty { try? FileManager.default.removeItem(atPath: home) }
    }

    func assertOneLineError(_ r: ProcessResult, contains text: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertNotEqual(r.exitCode, 0, file: file, line: line)
        XCTAssertTrue(r.stderrText.hasPrefix("dbgbox: error: "), r.stderrText, file: file, line: line)
        XCTAssertEqual(r.stderrText.filter { $0 == "\n" }.count, 1, r.stderrText, file: file, line: line)
        XCTAssertTrue(r.stderrText.contains(text), r.stderrText, file: file, line: line)
    }

    func mode(_ path: String) throws -> mode_t { try LocalFileSystem().mode(of: path) }

    func testDefaultKeyLoadsInSSHKeygenWithSameLineAndFingerprint() throws {
        for type in ["ed25519", "ecdsa"] {
            let name = "t\(type)"
            let r = try IT.dbgbox(["keygen", name, "--type", type], home: home)
            XCTAssertEqual(r.exitCode, 0, r.stderrText)
            XCTAssertEqual(r.stderrText, "")
            let priv = "\(home)/.ssh/id_\(name)"
            XCTAssertEqual(try mode("\(home)/.ssh"), 0o700)
            XCTAssertEqual(try mode(priv), 0o600)
            XCTAssertEqual(try mode(priv + ".pub"), 0o644)
            let pub = String(decoding: try LocalFileSystem().read(priv + ".pub"), as: UTF8.self)

            let y = try IT.asUser(["ssh-keygen", "-y", "-f", priv], home: home)
            XCTAssertEqual(y.exitCode, 0, y.stderrText)
            XCTAssertEqual(y.stdoutText, pub, "ssh-keygen -y must print the .pub line")
            let host = try IT.runner.run(["uname", "-n"]).stdoutText.trimmingCharacters(in: .whitespacesAndNewlines)
            XCTAssertTrue(pub.hasSuffix(" \(IT.testUser)@\(host)\n"), "default comment USER@HOSTNAME: \(pub)")

            let l = try IT.asUser(["ssh-keygen", "-lf", priv + ".pub"], home: home)
            XCTAssertEqual(l.exitCode, 0, l.stderrText)
            XCTAssertTrue(r.stdoutText.hasPrefix(l.stdoutText), "dbgbox: \(r.stdoutText) ssh-keygen: \(l.stdoutText)")
            XCTAssertTrue(r.stdoutText.contains(priv) && r.stdoutText.contains(priv + ".pub"), r.stdoutText)

            // ssh-keygen reads and rewrites the file (change the comment): it parses every field.
            let c = try IT.asUser(["ssh-keygen", "-c", "-C", "renamed", "-f", priv], home: home)
            XCTAssertEqual(c.exitCode, 0, c.stderrText)
            let again = try OpenSSHPrivateKey(fileContents: try LocalFileSystem().read(priv))
            XCTAssertEqual(again.comment, "renamed")
            XCTAssertEqual(again.fileContents, try LocalFileSystem().read(priv), "ssh-keygen's rewrite re-serializes identically")
        }
    }

    func testOverwriteIsRefusedWithoutForce() throws {
        let dir = "\(home)/keys"
        XCTAssertEqual(try IT.dbgbox(["keygen", "--dir", dir, "--comment", "one"], home: home).exitCode, 0)
        let before = try [dir + "/id_dbgbox", dir + "/id_dbgbox.pub"].map { try LocalFileSystem().read($0) }
        let r = try IT.dbgbox(["keygen", "--dir", dir, "--comment", "two"], home: home)
        assertOneLineError(r, contains: "already exists")
        XCTAssertTrue(r.stderrText.contains("--force"))
        let after = try [dir + "/id_dbgbox", dir + "/id_dbgbox.pub"].map { try LocalFileSystem().read($0) }
        XCTAssertEqual(before, after)
        let forced = try IT.dbgbox(["keygen", "--dir", dir, "--comment", "two", "--force"], home: home)
        XCTAssertEqual(forced.exitCode, 0, forced.stderrText)
        XCTAssertTrue(String(decoding: try LocalFileSystem().read(dir + "/id_dbgbox.pub"), as: UTF8.self).hasSuffix(" two\n"))
    }

    func testBadInputsGiveOneLineAndWriteNothing() throws {
        let cases: [([String], String)] = [
            (["keygen", "--type", "rsa"], "rsa-sha2-256/512"),
            (["keygen", "--type", "dsa"], "unknown key type"),
            (["keygen", "a/b"], "contains '/'"),
            (["keygen", ".hidden"], "starts with '.'"),
            (["keygen", ""], "empty"),
            (["keygen", "--comment", "a\nssh-ed25519 AAAA second"], "--comment \"a\\nssh-ed25519 AAAA second\""),
            (["keygen", "--comment", "tab\there"], "control character"),
        ]
        for (args, text) in cases {
            assertOneLineError(try IT.dbgbox(args, home: home), contains: text)
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(home)/.ssh/id_dbgbox"))
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(home)/.ssh"), "nothing written, not even ~/.ssh")
        let plain = "\(home)/file"
        FileManager.default.createFile(atPath: plain, contents: Data())
        assertOneLineError(try IT.dbgbox(["keygen", "--dir", plain], home: home), contains: "not a directory")
    }

    func testWarnsInsideGitWorkTree() throws {
        try FileManager.default.createDirectory(atPath: "\(home)/repo/.git", withIntermediateDirectories: true)
        _ = try IT.runner.run(["chown", "-R", "\(IT.user.uid):\(IT.user.gid)", "\(home)/repo"])
        let r = try IT.dbgbox(["keygen", "--dir", "\(home)/repo/secrets"], home: home)
        XCTAssertEqual(r.exitCode, 0, r.stderrText)
        XCTAssertTrue(r.stderrText.hasPrefix("dbgbox: warning: "), r.stderrText)
        XCTAssertTrue(r.stderrText.contains("git work tree \(home)/repo"), r.stderrText)
        XCTAssertTrue(FileManager.default.fileExists(atPath: "\(home)/repo/secrets/id_dbgbox"))
    }

    func testTildeMeansHomeAndFallsBackToPasswd() throws {
        let r = try IT.dbgbox(["keygen", "tilde", "--dir", "~/k"], home: home)
        XCTAssertEqual(r.exitCode, 0, r.stderrText)
        XCTAssertTrue(FileManager.default.fileExists(atPath: "\(home)/k/id_tilde"))

        // An unset HOME falls back to the passwd entry's home directory.
        let name = "it\(UUID().uuidString.prefix(6).lowercased())"
        let passwdDir = "\(IT.user.home)/.dbgbox-it-\(name)"
        defer { try? FileManager.default.removeItem(atPath: passwdDir) }
        let p = try IT.asUser(["env", "-u", "HOME", try IT.requireBinary(), "keygen", name, "--dir", "~/.dbgbox-it-\(name)"])
        XCTAssertEqual(p.exitCode, 0, p.stderrText)
        XCTAssertTrue(FileManager.default.fileExists(atPath: "\(passwdDir)/id_\(name)"))

        // An empty or relative HOME is refused: keys would land under the working directory.
        for bad in ["", "relative/home"] {
            let r = try IT.dbgbox(["keygen", name + "x", "--dir", "~/.dbgbox-it-\(name)"], home: bad)
            assertOneLineError(r, contains: "HOME=\"\(bad)\" is not an absolute path")
            XCTAssertFalse(FileManager.default.fileExists(atPath: "\(passwdDir)/id_\(name)x"))
        }
    }
}
