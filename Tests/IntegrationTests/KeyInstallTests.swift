import Foundation
import XCTest
@testable import DbgboxKit

/// `dbgbox key install` on the testbed's login host, from the laptop namespace: appends once,
/// keeps every existing byte (adding a missing final newline first), sets 0700/0600.
final class KeyInstallTests: XCTestCase {
    private var bed: Testbed!
    /// The laptop user's home: a fresh ~/.ssh/id_dbgbox and an empty ssh config.
    private var home = ""
    private var emptyConfig = ""
    /// The remote side is the test user's real home (login and node share it, as on a cluster):
    /// its authorized_keys is put back as it was after each test.
    private let sshDir = "\(IT.user.home)/.ssh"
    private var file: String { "\(sshDir)/authorized_keys" }
    private var saved: Data?

    override func setUpWithError() throws {
        _ = try IT.requireBinary()
        bed = try Testbed.up()
        home = try IT.scratchDir("keyinstall")
        saved = FileManager.default.contents(atPath: file)
        XCTAssertEqual(try IT.dbgbox(["keygen"], home: home).exitCode, 0)
        emptyConfig = "\(home)/empty_config"
        _ = try IT.asUser(["touch", emptyConfig], home: home)
    }

    override func tearDown() {
        if !home.isEmpty {
            if let saved { FileManager.default.createFile(atPath: file, contents: saved) } else { try? FileManager.default.removeItem(atPath: file) }
            _ = try? IT.runner.run(["chown", "\(IT.user.uid):\(IT.user.gid)", file])
            try? FileManager.default.removeItem(atPath: home)
        }
        super.tearDown()
    }

    override class func tearDown() {
        Testbed.downIfStartedHere()
        super.tearDown()
    }

    func testInstallAppendsOnceAndKeepsExistingLines() throws {
        let pub = try String(contentsOfFile: "\(home)/.ssh/id_dbgbox.pub", encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        _ = try IT.asUser(["mkdir", "-p", sshDir])
        let original = "# existing keys\nssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKexampleexampleexampleexampleexampleexampleexa old"
        _ = try IT.asUser(["sh", "-c", "cat > '\(file)'; chmod 644 '\(file)'"], input: Data(original.utf8))

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

    /// What the install is for: afterwards a fresh key, and only it, gets dbgbox through login and
    /// node (their sshds read ~/.ssh/authorized_keys of the shared home, as on a cluster).
    func testInstalledKeyLogsInThroughLoginAndNode() throws {
        let fresh = "\(home)/.ssh/id_dbgbox"
        // Both hops with the fresh key only: no ssh config, no agent (clean environment).
        let list = [IT.binary!, "container", "list", "--json", "-F", emptyConfig, "-i", fresh,
                    "--login", "\(bed.user)@\(bed.loginAddr)", "--node", "\(bed.user)@\(bed.nodeAddr)",
                    "--known-hosts", bed.knownHosts]

        let before = try bed.inLaptop(list, home: home)
        XCTAssertNotEqual(before.exitCode, 0, "the fresh key logged in before it was installed")
        XCTAssertTrue(before.stderrText.contains("login host"), before.stderrText)

        // The first install logs in with the sandbox's key; the fresh key is what it installs.
        let install = try bed.inLaptop([IT.binary!, "key", "install", "-F", emptyConfig, "--login", "\(bed.user)@\(bed.loginAddr)",
                                        "-i", bed.key, "--known-hosts", bed.knownHosts], home: home)
        XCTAssertEqual(install.exitCode, 0, install.stderrText)

        let after = try bed.inLaptop(list, home: home)
        XCTAssertEqual(after.exitCode, 0, after.stderrText)
        XCTAssertTrue(after.stdoutText.hasPrefix("["), after.stdoutText)
        // OpenSSH agrees: the fresh key alone logs in to the login host.
        let ssh = try bed.inLaptop(bed.plainSSH(key: fresh) + ["\(bed.user)@\(bed.loginAddr)", "id", "-un"], home: home)
        XCTAssertEqual(ssh.exitCode, 0, ssh.stderrText)
        XCTAssertEqual(ssh.stdoutText, "\(bed.user)\n")
    }

    /// The first install on a host that takes only keyboard-interactive (PAM's password): dbgbox asks
    /// on its terminal with echo off, and the key logs in afterwards.
    func testFirstInstallAnswersKeyboardInteractiveOnTheTerminal() throws {
        try PasswordLogin.requirePAM()
        let sshd = try TestSSHD(user: IT.testUser, authorizedKeys: "", settings: [
            "UsePAM": "yes", "KbdInteractiveAuthentication": "yes", "PasswordAuthentication": "no",
            "AuthorizedKeysFile": ".ssh/authorized_keys",
        ])
        defer { sshd.stop() }
        let knownHosts = "\(home)/known_hosts"
        _ = try IT.asUser(["sh", "-c", "cat > \"$0\"", knownHosts], home: home, input: Data((sshd.knownHostsLine + "\n").utf8))
        let user = IT.user
        let install = ["setpriv", "--reuid=\(user.uid)", "--regid=\(user.gid)", "--init-groups", "env", "-i",
                       "PATH=/usr/bin:/bin", "HOME=\(home)", "USER=\(user.name)", "LOGNAME=\(user.name)", "LANG=C.UTF-8",
                       IT.binary!, "key", "install", "-F", emptyConfig, "--login", "\(user.name)@127.0.0.1:\(sshd.port)",
                       "--known-hosts", knownHosts]
        try PasswordLogin.withTemporaryPassword { password in
            let run = try PasswordLogin.onTerminal(install, answering: [("Password: ", password)])
            XCTAssertEqual(run.exitCode, 0, run.transcript)
            XCTAssertTrue(run.transcript.contains("(\(user.name)@127.0.0.1) Password: "), run.transcript)
            XCTAssertTrue(run.transcript.contains("added "), run.transcript)
            XCTAssertFalse(run.transcript.contains(password), "the password was echoed: \(run.transcript)")
        }
        // The password is gone again; the installed key logs in.
        let ssh = try IT.asUser(["ssh", "-F", "/dev/null", "-p", String(sshd.port), "-i", "\(home)/.ssh/id_dbgbox",
                                 "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
                                 "-o", "UserKnownHostsFile=\(knownHosts)", "\(user.name)@127.0.0.1", "id", "-un"], home: home)
        XCTAssertEqual(ssh.exitCode, 0, ssh.stderrText)
        XCTAssertEqual(ssh.stdoutText, "\(user.name)\n")
    }
}
