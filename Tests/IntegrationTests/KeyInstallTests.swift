import Foundation
import XCTest
@testable import DbgboxKit

/// `dbgbox key install` on the testbed's login host, from the laptop namespace: appends once,
/// keeps every existing byte (adding a missing final newline first), sets 0700/0600.
final class KeyInstallTests: XCTestCase {
    override class func tearDown() {
        Testbed.downIfStartedHere()
        super.tearDown()
    }

    func testInstallAppendsOnceAndKeepsExistingLines() throws {
        _ = try IT.requireBinary()
        let bed = try Testbed.up()
        let home = try IT.scratchDir("keyinstall")
        defer { try? FileManager.default.removeItem(atPath: home) }
        XCTAssertEqual(try IT.dbgbox(["keygen"], home: home).exitCode, 0)
        let pub = try String(contentsOfFile: "\(home)/.ssh/id_dbgbox.pub", encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines)

        // The remote side is the test user's real home (login shares it, as on a cluster).
        let sshDir = "\(IT.user.home)/.ssh"
        let file = "\(sshDir)/authorized_keys"
        let saved = FileManager.default.contents(atPath: file)
        defer {
            if let saved { FileManager.default.createFile(atPath: file, contents: saved) } else { try? FileManager.default.removeItem(atPath: file) }
            _ = try? IT.runner.run(["chown", "\(IT.user.uid):\(IT.user.gid)", file])
        }
        _ = try IT.asUser(["mkdir", "-p", sshDir])
        let original = "# existing keys\nssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKexampleexampleexampleexampleexampleexampleexa old"
        _ = try IT.asUser(["sh", "-c", "cat > '\(file)'; chmod 644 '\(file)'"], input: Data(original.utf8))

        let emptyConfig = "\(home)/empty_config"
        _ = try IT.asUser(["touch", emptyConfig], home: home)
        let argv = [IT.binary!, "key", "install", "-F", emptyConfig, "--login", "\(bed.user)@\(bed.loginAddr)",
                    "-i", bed.key, "--known-hosts", bed.knownHosts]
        let first = try bed.inLaptop(argv, home: home)
        XCTAssertEqual(first.exitCode, 0, first.stderrText)
        XCTAssertTrue(first.stdoutText.hasPrefix("added "), first.stdoutText)
        XCTAssertEqual(try String(contentsOfFile: file, encoding: .utf8), original + "\n" + pub + "\n")
        XCTAssertEqual(try LocalFileSystem().mode(of: file), 0o600)
        XCTAssertEqual(try LocalFileSystem().mode(of: sshDir), 0o700)

        let second = try bed.inLaptop(argv, home: home)
        XCTAssertEqual(second.exitCode, 0, second.stderrText)
        XCTAssertTrue(second.stdoutText.contains("already"), second.stdoutText)
        XCTAssertEqual(try String(contentsOfFile: file, encoding: .utf8), original + "\n" + pub + "\n")

        // An RSA public key is refused before connecting, in one line.
        let rsa = try bed.inLaptop(argv + ["--key", bed.rsaKey + ".pub"], home: home)
        XCTAssertNotEqual(rsa.exitCode, 0)
        XCTAssertEqual(rsa.stderrText.split(separator: "\n").count, 1, rsa.stderrText)
        XCTAssertTrue(rsa.stderrText.contains("rsa-sha2"), rsa.stderrText)

        // No credential that works and no terminal: one line naming the host.
        let denied = try bed.inLaptop([IT.binary!, "key", "install", "-F", emptyConfig, "--login", "\(bed.user)@\(bed.loginAddr)",
                                       "-i", bed.wrongKey, "--known-hosts", bed.knownHosts], home: home)
        XCTAssertNotEqual(denied.exitCode, 0)
        XCTAssertEqual(denied.stderrText.split(separator: "\n").count, 1, denied.stderrText)
        XCTAssertTrue(denied.stderrText.contains("login host"), denied.stderrText)
    }
}
