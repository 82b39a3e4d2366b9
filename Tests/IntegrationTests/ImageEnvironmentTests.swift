import Foundation
import XCTest
@testable import DbgboxKit

/// The image's Docker ENV reaches ssh sessions (sshd starts them with a fresh environment; the
/// entrypoint hands the container's environment to sshd as one SetEnv line): plain commands, a
/// login shell (whose /etc/profile sets PATH again) and interpreter discovery over ssh.
final class ImageEnvironmentTests: ContainerITCase {
    /// A value sshd_config cannot carry safely is left out, and sshd still starts.
    static let image = IT.ClassImage(label: "env-it", append: IT.envFragment + "ENV DBGBOX_UNSAFE=\"x\\\"y\"\n")

    override class func tearDown() {
        image.remove()
        super.tearDown()
    }

    func testImageEnvironmentReachesSSHSessionsAndDiscovery() throws {
        let json = try create(["--gpu", "none", "--port", "auto", "--ttl", "10m", "--image", try Self.image.name(home: home)])
        let name = try XCTUnwrap(json["name"] as? String)

        let probe = try ssh(json, "printf '[%s]' \"$DBGBOX_PROBE\"")
        XCTAssertEqual(probe.exitCode, 0, probe.stderrText)
        XCTAssertEqual(probe.stdoutText, "[a b]")
        // sshd's own PATH would be /usr/local/bin:/usr/bin:/bin:/usr/games: SetEnv PATH wins.
        let path = try ssh(json, "echo \"$PATH\"; command -v python3")
        XCTAssertEqual(path.exitCode, 0, path.stderrText)
        let lines = path.stdoutText.split(separator: "\n").map(String.init)
        XCTAssertTrue(lines.first?.hasPrefix("/opt/fake/bin:") ?? false, path.stdoutText)
        XCTAssertEqual(lines.last, "/opt/fake/bin/python3")
        // A login shell runs /etc/profile, which sets PATH; the image's goes in front again.
        let login = try ssh(json, "bash -lc 'echo \"$PATH\"'")
        XCTAssertEqual(login.exitCode, 0, login.stderrText)
        XCTAssertTrue(login.stdoutText.hasPrefix("/opt/fake/bin:"), login.stdoutText)
        // What sshd sets for the login stays sshd's; the unsafe value is named in the log and left out.
        let own = try ssh(json, "printf '%s|%s|%s' \"$HOME\" \"$USER\" \"${DBGBOX_UNSAFE-unset}\"")
        XCTAssertEqual(own.stdoutText, "\(IT.user.home)|\(IT.testUser)|unset", own.stderrText)
        let logs = try IT.runner.run(["docker", "logs", name])
        XCTAssertTrue(logs.stderrText.contains("DBGBOX_UNSAFE is not passed to ssh sessions"), logs.stderrText)
        XCTAssertFalse(logs.stderrText.contains("refuses the SetEnv line"), logs.stderrText)

        // Interpreter discovery over ssh (what a session without docker uses) finds the image's python first.
        let argv = json["ssh_argv"] as! [String]
        let sshPrefix = ["runuser", "-u", IT.testUser, "--", "env", "-i", "PATH=/usr/bin:/bin", "HOME=\(home)",
                         argv[0], "-o", "BatchMode=yes", "-o", "ConnectTimeout=10"] + argv.dropFirst()
        let found = try InterpreterDiscovery.discover(runner: IT.runner,
                                                      transport: CommandTransport(prefix: sshPrefix, joinsArguments: true),
                                                      target: name)
        XCTAssertEqual(found.first, PythonInterpreter(path: "/opt/fake/bin/python3", version: "3.99.1", kind: .path))
    }

    /// No route to root through a mount (issue 12, item 4): the image's PATH starts with
    /// /opt/fake/bin and the user mounts a directory of their own there, full of stand-ins for the
    /// programs the entrypoint runs. The entrypoint (root) runs none of them; the user's ssh
    /// sessions still get the image's PATH. Targets where root runs or reads files are refused.
    func testMountedDirectoryOnTheImagePathIsNeverRunByRoot() throws {
        let fake = "\(home)/fakebin"
        let names = ["mkdir", "chown", "chmod", "mv", "cat", "tr", "grep", "rm", "cp", "sleep", "printf", "ssh-keygen", "sshd"]
        try FileManager.default.createDirectory(atPath: fake, withIntermediateDirectories: true)
        for name in names {
            let stub = "#!/bin/sh\nid -u > /opt/fake/bin/ran-\(name)\nexec /usr/bin/\(name) \"$@\"\n"
            try stub.write(toFile: "\(fake)/\(name)", atomically: true, encoding: .utf8)
            _ = try IT.runner.run(["chmod", "0755", "\(fake)/\(name)"])
        }
        _ = try IT.runner.run(["chown", "-R", "\(IT.user.uid):\(IT.user.gid)", fake])
        _ = try IT.runner.run(["chmod", "0777", fake])
        let json = try create(["--gpu", "none", "--port", "auto", "--ttl", "10m", "-v", "\(fake):/opt/fake/bin",
                               "--image", try Self.image.name(home: home)])
        let path = try ssh(json, "echo \"$PATH\"")
        XCTAssertEqual(path.exitCode, 0, path.stderrText)
        XCTAssertTrue(path.stdoutText.hasPrefix("/opt/fake/bin:"), path.stdoutText)
        let ran = (try FileManager.default.contentsOfDirectory(atPath: fake)).filter { $0.hasPrefix("ran-") }
        for marker in ran {
            let uid = (try? String(contentsOfFile: "\(fake)/\(marker)", encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
            XCTAssertNotEqual(uid, "0", "the entrypoint ran the user's \(marker.dropFirst(4)) as root")
        }
        for target in ["/usr/local/sbin", "/etc/dbgbox", "/root/.ssh", "/usr/lib/x86_64-linux-gnu"] {
            let refused = try IT.dbgbox(["container", "create", "--gpu", "none", "-v", "\(fake):\(target)"], home: home)
            XCTAssertNotEqual(refused.exitCode, 0, target)
            XCTAssertTrue(refused.stderrText.contains(target) && refused.stderrText.contains("system directory"), refused.stderrText)
        }
    }
}
