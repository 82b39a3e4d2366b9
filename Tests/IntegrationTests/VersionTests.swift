import Foundation
import XCTest
@testable import DbgboxKit
import SSH

/// `dbgbox --version` and `dbgbox status` through the installed binary, as the test user: the
/// run-time libssh2 and OpenSSL versions and the fast-path line, on, switched off, and off after a
/// forced self-test failure or version mismatch (DBGBOX_FASTPATH_TEST_FAULT, test only).
final class VersionTests: XCTestCase {
    var home = ""

    override func setUpWithError() throws {
        _ = try IT.requireBinary()
        home = try IT.scratchDir("version")
    }

    override func tearDownWithError() throws {
        if !home.isEmpty { try? FileManager.default.removeItem(atPath: home) }
    }

    func version(_ env: [String: String] = [:]) throws -> ProcessResult {
        let r = try IT.dbgbox(["--version"], home: home, extraEnv: env)
        XCTAssertEqual(r.exitCode, 0, r.stderrText)
        print(r.stdoutText + r.stderrText)
        return r
    }

    /// The versions this test process loaded: the binary loads the same libraries.
    var loaded: FastPath.Status { FastPath.status }

    func testVersionSaysTheLibrariesAndThatTheFastPathIsOn() throws {
        let r = try version()
        let lines = r.stdoutText.split(separator: "\n").map(String.init)
        XCTAssertEqual(lines.count, 3, r.stdoutText)
        let first = try XCTUnwrap(lines.first)
        XCTAssertTrue(first.hasPrefix("dbgbox ") && first.dropFirst(7).first?.isNumber == true, first)
        XCTAssertEqual(lines.dropFirst().first, "libssh2 \(loaded.libssh2Version), \(loaded.openSSLVersion)")
        XCTAssertTrue(loaded.libssh2Version.hasPrefix("1.10.") && loaded.openSSLVersion.hasPrefix("OpenSSL 3."))
        let fast = try XCTUnwrap(lines.last)
        XCTAssertTrue(fast.hasPrefix("libssh2 fast path: on (") && fast.contains("self-test passed in"), fast)
        XCTAssertEqual(r.stderrText, "")
    }

    func testSwitchedOff() throws {
        let r = try version(["DBGBOX_LIBSSH2_BATCH": "0"])
        IT.assertContains(r.stdoutText, ["libssh2 \(loaded.libssh2Version)",
                                         "libssh2 fast path: off: DBGBOX_LIBSSH2_BATCH=0; libssh2 runs on plain OpenSSL"])
        XCTAssertEqual(r.stderrText, "", "a switch is no fault: no warning")
    }

    func testAFailedSelfTestIsSaidOnceOnStderr() throws {
        let r = try version(["DBGBOX_FASTPATH_TEST_FAULT": "aes"])
        let line = "libssh2 fast path: off: self-test failed: AES-128-CTR (NIST SP 800-38A F.5.1); libssh2 runs on plain OpenSSL"
        IT.assertContains(r.stdoutText, [line])
        XCTAssertEqual(r.stderrText, "dbgbox: warning: \(line)\n")
    }

    func testAnotherLibSSH2Version() throws {
        let r = try version(["DBGBOX_FASTPATH_TEST_FAULT": "libssh2"])
        IT.assertContains(r.stdoutText, ["libssh2 1.11.0, ", "libssh2 fast path: off: libssh2 1.11.0 is not 1.10.x; libssh2 runs on plain OpenSSL"])
        XCTAssertEqual(r.stderrText, "")
    }

    func testStatusGivesTheSameLine() throws {
        let env = ["XDG_STATE_HOME": "\(home)/state"]
        let text = try IT.dbgbox(["status"], home: home, extraEnv: env)
        XCTAssertEqual(text.exitCode, 0, text.stderrText)
        let fast = try XCTUnwrap(try version().stdoutText.split(separator: "\n").last.map(String.init))
        // The self-test time differs from run to run: compare up to it.
        let stem = String(fast.prefix { $0 != ";" })
        XCTAssertTrue(stem.hasPrefix("libssh2 fast path: on ("), fast)
        let lines = text.stdoutText.split(separator: "\n").map(String.init)
        XCTAssertEqual(lines.first, "no sessions", text.stdoutText)
        XCTAssertTrue(lines.last?.hasPrefix(stem) ?? false, text.stdoutText)

        let off = try IT.dbgbox(["status"], home: home, extraEnv: env.merging(["DBGBOX_LIBSSH2_BATCH": "0"]) { a, _ in a })
        XCTAssertEqual(off.stdoutText, "no sessions\nlibssh2 fast path: off: DBGBOX_LIBSSH2_BATCH=0; libssh2 runs on plain OpenSSL\n")
    }

    /// `status --json` is still an array of the same rows, each with a `fast_path` field added.
    func testStatusJSONAddsAField() throws {
        let sessions = "\(home)/state/dbgbox/sessions"
        try SessionStore(directory: sessions).save(SessionRecord(
            name: "fp", container: "dbgbox-fp", targetPort: 2222, localPort: 2299, created: Date(), image: "img",
            user: IT.testUser, identityFile: "\(home)/.ssh/id_dbgbox", logFile: "\(home)/fp.log"))
        _ = try IT.runner.run(["chown", "-R", "\(IT.user.uid):\(IT.user.gid)", "\(home)/state"])
        let env = ["XDG_STATE_HOME": "\(home)/state"]
        let json = try IT.dbgbox(["status", "--json"], home: home, extraEnv: env)
        XCTAssertEqual(json.exitCode, 0, json.stderrText)
        let rows = try XCTUnwrap(try JSONSerialization.jsonObject(with: json.stdout) as? [[String: Any]], json.stdoutText)
        let row = try XCTUnwrap(rows.first, json.stdoutText)
        XCTAssertEqual(row["name"] as? String, "fp")
        XCTAssertEqual(row["local_port"] as? Int, 2299)
        XCTAssertEqual(row["tunnel"] as? String, "none (foreground)")
        let fast = try XCTUnwrap(row["fast_path"] as? String, json.stdoutText)
        XCTAssertTrue(fast.hasPrefix("on (") && fast.contains("self-test passed"), fast)
        let text = try IT.dbgbox(["status"], home: home, extraEnv: env)
        let lines = text.stdoutText.split(separator: "\n")
        XCTAssertTrue(lines.first?.hasPrefix("NAME\t") ?? false, text.stdoutText)
        XCTAssertTrue(lines.last?.hasPrefix("libssh2 fast path: on (") ?? false, text.stdoutText)
    }
}
