import Foundation
import XCTest
@testable import DbgboxKit
import SSH

/// Keys authenticate with libssh2 (the tunnel's library) and with OpenSSH's ssh, against a real
/// throwaway sshd, with the host key checked.
final class LibSSH2AuthTests: XCTestCase {
    /// Makes a key pair as the test user: with `dbgbox keygen`, or ssh-keygen for the reference case.
    private func makeKey(tool: String, in dir: String) throws -> (priv: String, pub: String) {
        let priv = "\(dir)/id_dbgbox"
        let result: ProcessResult
        if tool == "dbgbox" {
            result = try IT.dbgbox(["keygen", "--dir", dir], home: dir)
        } else {
            result = try IT.asUser(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", priv], home: dir)
        }
        XCTAssertEqual(result.exitCode, 0, result.stderrText)
        return (priv, try String(contentsOfFile: priv + ".pub", encoding: .utf8))
    }

    private func check(tool: String) throws {
        _ = try IT.requireBinary()
        let dir = try IT.scratchDir("auth")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let key = try makeKey(tool: tool, in: dir)
        let sshd = try TestSSHD(user: IT.testUser, authorizedKeys: key.pub)
        defer { sshd.stop() }

        // OpenSSH ssh, strict host key checking against exactly this sshd's key.
        let knownHosts = "\(dir)/known_hosts"
        try (sshd.knownHostsLine + "\n").write(toFile: knownHosts, atomically: true, encoding: .utf8)
        _ = try IT.runner.run(["chown", "\(IT.user.uid):\(IT.user.gid)", knownHosts])
        let ssh = try IT.asUser(["ssh", "-F", "/dev/null", "-p", String(sshd.port), "-i", key.priv,
                                 "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
                                 "-o", "StrictHostKeyChecking=yes", "-o", "UserKnownHostsFile=\(knownHosts)",
                                 "\(IT.testUser)@127.0.0.1", "id", "-un"], home: dir)
        XCTAssertEqual(ssh.exitCode, 0, ssh.stderrText)
        XCTAssertEqual(ssh.stdoutText, "\(IT.testUser)\n")

        // libssh2, host key compared with the sshd's own before authenticating.
        let session = try SSHSession(host: "127.0.0.1", port: sshd.port)
        defer { session.close() }
        let presented = try XCTUnwrap(session.hostKey)
        let expected = sshd.hostKeyLine.split(separator: " ")
        XCTAssertEqual(presented.typeName, String(expected[0]))
        XCTAssertEqual(presented.blob.base64EncodedString(), String(expected[1]))
        try session.authenticate(user: IT.testUser, privateKeyPath: key.priv)
        XCTAssertTrue(session.isAuthenticated)
        let exec = try session.exec("id -un")
        XCTAssertEqual(exec.status, 0)
        XCTAssertEqual(String(decoding: exec.stdout, as: UTF8.self), "\(IT.testUser)\n")
    }

    func testOpenSSHGeneratedKeyAuthenticates() throws { try check(tool: "ssh-keygen") }

    func testDbgboxKeygenKeyAuthenticatesWithSSHAndLibSSH2() throws { try check(tool: "dbgbox") }

    func testWrongKeyIsRefusedByLibSSH2() throws {
        _ = try IT.requireBinary()
        let dir = try IT.scratchDir("auth")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let key = try makeKey(tool: "ssh-keygen", in: dir)
        let other = "\(dir)/other"
        _ = try IT.runner.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", other])
        let sshd = try TestSSHD(user: IT.testUser, authorizedKeys: key.pub)
        defer { sshd.stop() }
        let session = try SSHSession(host: "127.0.0.1", port: sshd.port)
        XCTAssertThrowsError(try session.authenticate(user: IT.testUser, privateKeyPath: other)) { error in
            XCTAssertEqual((error as? SSHError)?.kind, .authentication, "\(error)")
        }
    }
}
