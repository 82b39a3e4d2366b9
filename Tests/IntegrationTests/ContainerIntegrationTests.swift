import Foundation
import XCTest
#if canImport(Glibc)
import Glibc
#endif
@testable import DbgboxKit

/// Shared setup for the container integration tests: the image (built once per run), a key in a
/// scratch home of the test user, and tracking of everything a test creates so teardown removes it.
class ContainerITCase: XCTestCase {
    nonisolated(unsafe) static var imageBuilt = false
    var home = ""
    var created: [String] = []

    override func setUpWithError() throws {
        try IT.requireDocker()
        _ = try IT.requireBinary()
        if !Self.imageBuilt {
            let r = try IT.dbgbox(["image", "create", "--base", IT.baseImage])
            XCTAssertEqual(r.exitCode, 0, "image create: \(r.stderrText)")
            try XCTSkipIf(r.exitCode != 0 && !IT.isCI, "image create failed")
            Self.imageBuilt = true
        }
        home = try IT.scratchDir("cit")
        let scratch = home
        addTeardownBlock { try? FileManager.default.removeItem(atPath: scratch) }
        let key = try IT.dbgbox(["keygen"], home: home)
        XCTAssertEqual(key.exitCode, 0, "keygen: \(key.stderrText)")
        addTeardownBlock { [unowned self] in
            for name in self.created { _ = try? IT.runner.run(["docker", "rm", "-f", name]) }
        }
    }

    /// `container create … --json` as the test user; records the container for teardown.
    func create(_ args: [String], file: StaticString = #filePath, line: UInt = #line) throws -> [String: Any] {
        let r = try IT.dbgbox(["container", "create", "--json"] + args, home: home)
        XCTAssertEqual(r.exitCode, 0, "create failed: \(r.stderrText)", file: file, line: line)
        guard r.exitCode == 0, let json = try JSONSerialization.jsonObject(with: r.stdout) as? [String: Any] else {
            throw XCTSkip("container create failed: \(r.stderrText)")
        }
        if let name = json["name"] as? String { created.append(name) }
        return json
    }

    func ssh(_ json: [String: Any], _ command: String) throws -> ProcessResult {
        let argv = json["ssh_argv"] as! [String]
        // BatchMode: never prompt; a host-key problem must fail, not ask.
        let withOptions = [argv[0], "-o", "BatchMode=yes", "-o", "ConnectTimeout=10"] + argv.dropFirst() + [command]
        return try IT.asUser(withOptions, home: home)
    }

    func status(_ name: String) -> String? {
        guard let r = try? IT.runner.run(["docker", "container", "inspect", "--format", "{{.State.Status}}", name]), r.succeeded else { return nil }
        return r.stdoutText.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    func containers(ownedBy uid: UInt32) throws -> [String] {
        try IT.runner.run(["docker", "ps", "-aq", "--filter", "label=dbgbox.owner-uid=\(uid)"]).stdoutText
            .split(whereSeparator: \.isNewline).map(String.init)
    }

    /// A port free right now in the auto range (the test picks it, so it can reuse it).
    func freePort() -> UInt16 {
        while true {
            let p = UInt16.random(in: 30000...39999)
            if BindPortProbe().isFree(p) { return p }
        }
    }
}

final class ContainerIntegrationTests: ContainerITCase {
    /// config.yaml's `defaults:` and profiles apply to `container create` as documented
    /// (docs/config.md): command line > the profile > defaults: > built-ins (issue 12, item 6).
    func testConfigDefaultsAndProfilesApplyWithTheCommandLineFirst() throws {
        let data = "\(home)/cfgdata"
        _ = try IT.asUser(["mkdir", "-p", data, "\(home)/.config/dbgbox"], home: home)
        let yaml = """
            defaults:
              gpu: none
              ttl: 1m
              mounts: [\(data):/cfgdata:ro]
            profiles:
              long: {ttl: 2h}
            """
        _ = try IT.asUser(["sh", "-c", "cat > \"$HOME/.config/dbgbox/config.yaml\""], home: home, input: Data(yaml.utf8))
        let fromDefaults = try create([])
        XCTAssertEqual(fromDefaults["ttl_seconds"] as? Int, 60, "ttl: 1m from defaults:")
        XCTAssertEqual(fromDefaults["gpus"] as? [String], [])
        let name = try XCTUnwrap(fromDefaults["name"] as? String)
        let mounts = try IT.runner.run(["docker", "inspect", "--format", "{{range .Mounts}}{{.Destination}}={{.RW}} {{end}}", name])
        XCTAssertTrue(mounts.stdoutText.contains("/cfgdata=false"), "the config's read-only mount: \(mounts.stdoutText)")
        XCTAssertEqual(try create(["--profile", "long"])["ttl_seconds"] as? Int, 7200, "the profile over defaults:")
        XCTAssertEqual(try create(["--profile", "long", "--ttl", "5m"])["ttl_seconds"] as? Int, 300, "the command line first")
        // Without --gpu and without gpu: in the config, one line says what is missing.
        _ = try IT.asUser(["sh", "-c", "printf 'defaults:\\n  ttl: 1m\\n' > \"$HOME/.config/dbgbox/config.yaml\""], home: home)
        let missing = try IT.dbgbox(["container", "create"], home: home)
        XCTAssertNotEqual(missing.exitCode, 0)
        XCTAssertTrue(missing.stderrText.contains("--gpu") && missing.stderrText.contains("config.yaml"), missing.stderrText)
        XCTAssertEqual(missing.stderrText.split(separator: "\n").count, 1, missing.stderrText)
    }

    /// Stays up, OpenSSH logs in with StrictHostKeyChecking=yes via the pinned alias, and a file
    /// written into a mounted directory belongs to the host user.
    func testContainerStaysUpSSHWorksAndMountedFilesBelongToTheUser() throws {
        let data = "\(home)/data dir"
        XCTAssertEqual(try IT.asUser(["mkdir", data], home: home).exitCode, 0)
        let json = try create(["--gpu", "none", "--port", "auto", "-v", "\(data):/data", "--ttl", "10m"])
        let name = json["name"] as! String
        XCTAssertEqual(json["host_key_alias"] as? String, "dbgbox-\(name)")
        XCTAssertTrue((json["host_key_fingerprint"] as? String ?? "").hasPrefix("SHA256:"))
        XCTAssertTrue((json["ssh_command"] as? String ?? "").contains("StrictHostKeyChecking=yes"))
        Thread.sleep(forTimeInterval: 3)
        XCTAssertEqual(status(name), "running", "the container must stay up")

        let r = try ssh(json, "id -u; id -g; echo hi > /data/from-inside; echo $HOME")
        XCTAssertEqual(r.exitCode, 0, "ssh failed: \(r.stderrText)")
        let lines = r.stdoutText.split(whereSeparator: \.isNewline).map(String.init)
        XCTAssertEqual(lines.prefix(2), [String(IT.user.uid), String(IT.user.gid)])
        XCTAssertEqual(lines.last, IT.user.home)
        XCTAssertFalse(r.stderrText.contains("WARNING"), r.stderrText)

        var st = stat()
        XCTAssertEqual(stat("\(data)/from-inside", &st), 0)
        XCTAssertEqual(st.st_uid, IT.user.uid)
        XCTAssertEqual(st.st_gid, IT.user.gid)

        let list = try IT.dbgbox(["container", "list", "--json"], home: home)
        XCTAssertTrue(list.stdoutText.contains("\"name\":\"\(name)\""), list.stdoutText)
    }

    /// A new container on the same port has a new host key; through the alias ssh never warns.
    func testRecreatingOnTheSamePortGivesNoHostKeyWarning() throws {
        let port = String(freePort())
        let first = try create(["--gpu", "none", "--port", port])
        XCTAssertEqual(try ssh(first, "true").exitCode, 0)
        let rm = try IT.dbgbox(["container", "rm", first["name"] as! String], home: home)
        XCTAssertEqual(rm.exitCode, 0, rm.stderrText)
        let second = try create(["--gpu", "none", "--port", port])
        XCTAssertNotEqual(first["host_key_fingerprint"] as? String, second["host_key_fingerprint"] as? String)
        let r = try ssh(second, "true")
        XCTAssertEqual(r.exitCode, 0, r.stderrText)
        XCTAssertFalse(r.stderrText.contains("IDENTIFICATION HAS CHANGED"), r.stderrText)
        XCTAssertFalse(r.stderrText.contains("WARNING"), r.stderrText)
    }

    /// A port something listens on: one clear line, non-zero exit, no container left.
    func testPortInUseIsAClearErrorAndLeavesNoContainer() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        let port = freePort()
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = port.bigEndian
        addr.sin_addr = in_addr(s_addr: UInt32(0x7f00_0001).bigEndian)
        let rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        XCTAssertEqual(rc, 0)
        XCTAssertEqual(listen(fd, 4), 0)
        let before = try containers(ownedBy: IT.user.uid)
        let r = try IT.dbgbox(["container", "create", "--gpu", "none", "--port", String(port)], home: home)
        XCTAssertNotEqual(r.exitCode, 0)
        let err = r.stderrText.trimmingCharacters(in: .newlines)
        XCTAssertFalse(err.contains("\n"), err)
        XCTAssertTrue(err.contains("port \(port) is in use"), err)
        XCTAssertEqual(try containers(ownedBy: IT.user.uid), before)
    }

    func testPortAutoSucceeds() throws {
        let json = try create(["--gpu", "none", "--port", "auto"])
        let port = json["port"] as! Int
        XCTAssertTrue((20000...59999).contains(port))
        XCTAssertEqual(try ssh(json, "true").exitCode, 0)
    }

    func testTTLExpiryRemovesTheContainer() throws {
        let json = try create(["--gpu", "none", "--ttl", "5s"])
        let name = json["name"] as! String
        XCTAssertEqual(status(name), "running")
        let deadline = Date().addingTimeInterval(30)
        while status(name) != nil && Date() < deadline { Thread.sleep(forTimeInterval: 0.5) }
        XCTAssertNil(status(name), "container \(name) outlived its 5 s TTL")
    }

    /// Another user's container is refused by name and left alone.
    func testRmRefusesAnotherOwnersContainer() throws {
        let name = "other_\(Int.random(in: 10000...99999))"
        let run = try IT.runner.run(["docker", "run", "-d", "--rm", "--name", name, "--label", "dbgbox.owner=other",
                                     "--label", "dbgbox.owner-uid=4242", IT.baseImage, "sleep", "300"])
        XCTAssertEqual(run.exitCode, 0, run.stderrText)
        addTeardownBlock { _ = try? IT.runner.run(["docker", "rm", "-f", name]) }
        let r = try IT.dbgbox(["container", "rm", name], home: home)
        XCTAssertNotEqual(r.exitCode, 0)
        XCTAssertTrue(r.stderrText.contains("container \(name) belongs to other: dbgbox works only with your own containers"), r.stderrText)
        XCTAssertEqual(status(name), "running")
        let c = try IT.dbgbox(["cleanup", "--container", name], home: home)
        XCTAssertNotEqual(c.exitCode, 0)
        XCTAssertEqual(status(name), "running")
    }

    func testBadInputsFailWithOneLine() throws {
        let cases: [([String], String)] = [
            (["--gpu", "X"], "unknown --gpu"),
            (["--gpu", "V"], "--gpu 0"),
            (["--gpu", "0"], "no NVIDIA driver on this node: use --gpu none"),
            (["--gpu", "none", "--port", "80"], "1024-65535"),
            (["--gpu", "none", "--port", "22a"], "digits only"),
            (["--gpu", "none", "--mount", "relative:/x"], "absolute"),
            (["--gpu", "none", "--image", "nosuch/image:1"], "dbgbox image create"),
            (["--gpu", "none", "--key", "/nonexistent.pub"], "dbgbox keygen"),
            (["--gpu", "none", "--ttl", "soon"], "--ttl"),
        ]
        // On a node with a driver, `--gpu 0` is valid: that case only holds without one.
        let hasDriver = LocalProcessRunner.resolve("nvidia-smi") != nil
        for (args, needle) in cases where !(hasDriver && args == ["--gpu", "0"]) {
            let r = try IT.dbgbox(["container", "create"] + args, home: home, extraEnv: ["PATH": "/usr/bin:/bin"])
            XCTAssertNotEqual(r.exitCode, 0, "\(args)")
            let err = r.stderrText.trimmingCharacters(in: .newlines)
            XCTAssertFalse(err.contains("\n"), "\(args): \(err)")
            XCTAssertTrue(err.contains(needle), "\(args): \(err)")
        }
    }
}
