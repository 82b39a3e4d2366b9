import Foundation
import XCTest
@testable import DbgboxKit

/// Cleanup against a real container and a known_hosts with plain and hashed entries: the container and
/// the port's entries go, every other byte stays (compared with what `ssh-keygen -R` leaves).
final class CleanupContainerIntegrationTests: ContainerITCase {
    func testCleanupRemovesContainerPinAndKnownHostsEntriesOnly() throws {
        let json = try create(["--gpu", "none", "--port", "auto"])
        let name = json["name"] as! String
        let port = json["port"] as! Int
        let pinned = json["known_hosts"] as! String

        // A known_hosts as a user's would look after PyCharm connected through the forwarded port.
        let key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
        let other = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG3Mz1eRCvuSiJ4zWGx0zF0mKEmJ2dXDl6dYAf8V7F9p"
        let sshDir = "\(home)/.ssh"
        let plain = """
        # my hosts
        github.com \(other)
        [127.0.0.1]:\(port) \(key)
        [127.0.0.1]:\(port + 1) \(other)
        [localhost]:\(port) \(key)
        login.cluster.example \(other) comment

        """
        let tmp = "\(home)/hash-me"
        try "[127.0.0.1]:\(port) \(key)\n".write(toFile: tmp, atomically: true, encoding: .utf8)
        XCTAssertEqual(try IT.runner.run(["ssh-keygen", "-H", "-f", tmp]).exitCode, 0)
        let hashed = try String(contentsOfFile: tmp, encoding: .utf8)
        let knownHosts = "\(sshDir)/known_hosts"
        try (plain + hashed + "last.example \(other)\n").write(toFile: knownHosts, atomically: true, encoding: .utf8)
        _ = try IT.runner.run(["chown", "-R", "\(IT.user.uid):\(IT.user.gid)", sshDir])

        // What ssh-keygen -R leaves, on a copy.
        let expectedPath = "\(home)/expected"
        try FileManager.default.copyItem(atPath: knownHosts, toPath: expectedPath)
        for host in ["[127.0.0.1]:\(port)", "[localhost]:\(port)"] {
            XCTAssertEqual(try IT.runner.run(["ssh-keygen", "-R", host, "-f", expectedPath]).exitCode, 0)
        }
        let expected = try Data(contentsOf: URL(fileURLWithPath: expectedPath))
        let original = try Data(contentsOf: URL(fileURLWithPath: knownHosts))
        XCTAssertNotEqual(expected, original)

        let dry = try IT.dbgbox(["cleanup", "--container", name, "--dry-run"], home: home)
        XCTAssertEqual(dry.exitCode, 0, dry.stderrText)
        XCTAssertTrue(dry.stdoutText.contains("would remove container \(name)"), dry.stdoutText)
        XCTAssertEqual(status(name), "running")
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: knownHosts)), original)

        let r = try IT.dbgbox(["cleanup", "--container", name], home: home)
        XCTAssertEqual(r.exitCode, 0, r.stderrText)
        XCTAssertTrue(r.stdoutText.contains("removed container \(name)"), r.stdoutText)
        XCTAssertTrue(r.stdoutText.contains("removed pinned host key dbgbox-\(name)"), r.stdoutText)
        XCTAssertNil(status(name))
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: knownHosts)), expected)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: knownHosts + ".old")), original)
        let pins = (try? String(contentsOfFile: pinned, encoding: .utf8)) ?? ""
        XCTAssertFalse(pins.contains("dbgbox-\(name)"), pins)
    }

    /// With no option, cleanup removes every container of the caller (and only theirs).
    func testCleanupWithoutOptionsRemovesAllOwnContainers() throws {
        let a = try create(["--gpu", "none"])["name"] as! String
        let b = try create(["--gpu", "none"])["name"] as! String
        let r = try IT.dbgbox(["cleanup"], home: home)
        XCTAssertEqual(r.exitCode, 0, r.stderrText)
        XCTAssertNil(status(a))
        XCTAssertNil(status(b))
    }
}
