import Foundation
import XCTest
@testable import DbgboxKit

/// `dbgbox up`, `status` and `down` on the netns testbed, from the laptop namespace as the test
/// user with a scratch HOME (XDG_STATE_HOME inside it) whose ~/.ssh/config and known_hosts exist
/// before and must be byte-identical after `down`.
///
/// HOME is not the passwd home here, so dbgbox writes the Include line with the absolute path of
/// $HOME/.ssh/dbgbox/config (ssh would expand `~` from the passwd entry), and the test runs
/// `ssh -F $HOME/.ssh/config dbgbox-NAME`: the alias is resolved through the user's config, its
/// Include and dbgbox's Host block, with no -o option of ours.
final class UpDownTests: XCTestCase {
    nonisolated(unsafe) static var containers: [String] = []
    nonisolated(unsafe) static var homes: [String] = []

    /// An image whose python3 is found only on its Docker ENV PATH (see `IT.envFragment`).
    static let envImage = IT.ClassImage(label: "updown-env", append: IT.envFragment)

    override class func tearDown() {
        for name in containers { _ = try? IT.runner.run(["docker", "rm", "-f", name]) }
        envImage.remove()
        for home in homes { try? FileManager.default.removeItem(atPath: home) }
        if !homes.isEmpty, let user = UserIdentity.lookup(name: IT.testUser) {
            _ = try? IT.runner.run(["docker", "image", "rm", "-f", "\(user.name.lowercased())/updown-it:latest"])
        }
        containers = []
        homes = []
        Testbed.downIfStartedHere()
        super.tearDown()
    }

    let userConfig = """
        # my own ssh config, with comments
        Host *
            ServerAliveInterval 42
            # a comment inside Host *

        Host example
            HostName example.invalid

        """
    let userKnownHosts = "# kept\nexample.invalid ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPdEnfBREMo2QJpuuo8u1nPTjWmhz7JkePPbU8ppai4I\n"

    func remoteArgs(_ bed: Testbed) -> [String] {
        ["-F", bed.sshConfig, "--login", Testbed.loginAlias, "--node", Testbed.nodeAlias, "--known-hosts", bed.knownHosts]
    }

    func run(_ bed: Testbed, home: String, _ args: [String]) throws -> ProcessResult {
        try bed.inLaptop([try IT.requireBinary()] + args, home: home, extraEnv: ["XDG_STATE_HOME": "\(home)/state"])
    }

    func write(_ text: String, _ path: String) throws {
        try text.write(toFile: path, atomically: false, encoding: .utf8)
        _ = try IT.runner.run(["chown", "\(IT.user.uid):\(IT.user.gid)", path])
    }

    func status(_ bed: Testbed, home: String) throws -> [[String: Any]] {
        let result = try run(bed, home: home, ["status", "--json"])
        XCTAssertEqual(result.exitCode, 0, result.stderrText)
        return try XCTUnwrap(try JSONSerialization.jsonObject(with: result.stdout) as? [[String: Any]], result.stdoutText)
    }

    /// The testbed and a scratch HOME of the test user (removed in tearDown).
    func prepare(_ label: String) throws -> (Testbed, String) {
        _ = try IT.requireBinary()
        try IT.requireDocker()
        let bed = try Testbed.up()
        let home = try IT.scratchDir(label)
        Self.homes.append(home)
        return (bed, home)
    }

    func testUpSSHStatusKillDownLeavesNothing() throws {
        let (bed, home) = try prepare("updown")
        _ = try IT.runner.run(["install", "-d", "-m", "700", "-o", String(IT.user.uid), "-g", String(IT.user.gid), "\(home)/.ssh"])
        try write(userConfig, "\(home)/.ssh/config")
        try write(userKnownHosts, "\(home)/.ssh/known_hosts")

        // The first up may build the image; the second, timed, finds it cached.
        let image = "\(bed.user.lowercased())/updown-it:latest"
        let upArgs = ["up", "--gpu", "none", "--port", "auto", "--ttl", "1h", "--base", IT.baseImage, "--image", image,
                      "--key", bed.key + ".pub"] + remoteArgs(bed)
        let warm = try run(bed, home: home, upArgs)
        XCTAssertEqual(warm.exitCode, 0, warm.stderrText)
        let warmName = try XCTUnwrap(try status(bed, home: home).first?["name"] as? String, warm.stdoutText + warm.stderrText)
        Self.containers.append(warmName)
        let warmDown = try run(bed, home: home, ["down", warmName])
        XCTAssertEqual(warmDown.exitCode, 0, warmDown.stderrText)

        let upStart = Date()
        let up = try run(bed, home: home, upArgs)
        let upSeconds = Date().timeIntervalSince(upStart)
        XCTAssertEqual(up.exitCode, 0, up.stderrText)
        print("dbgbox up (cached image): \(String(format: "%.2f", upSeconds)) s\n\(up.stdoutText)\(up.stderrText)")
        XCTAssertLessThanOrEqual(upSeconds, 10, "up with a cached image should take at most 10 s")
        var rows = try status(bed, home: home)
        XCTAssertEqual(rows.count, 1)
        let row = try XCTUnwrap(rows.first)
        let name = try XCTUnwrap(row["name"] as? String)
        Self.containers.append(name)
        let localPort = try XCTUnwrap(row["local_port"] as? Int)
        let pid = try XCTUnwrap(row["tunnel_pid"] as? Int)
        XCTAssertEqual(row["tunnel"] as? String, "alive")
        XCTAssertEqual(row["alive"] as? Bool, true)
        XCTAssertTrue(up.stdoutText.contains("ssh dbgbox-\(name)"), up.stdoutText)
        XCTAssertTrue(up.stdoutText.contains("dbgbox ide pycharm \(name)"), up.stdoutText)
        let table = try run(bed, home: home, ["status"])
        XCTAssertTrue(table.stdoutText.contains(name) && table.stdoutText.contains("alive"), table.stdoutText)

        // The user's config now starts with the Include; every other byte is still there.
        let configNow = try String(contentsOfFile: "\(home)/.ssh/config", encoding: .utf8)
        XCTAssertEqual(configNow, "Include \(home)/.ssh/dbgbox/config\n" + userConfig)

        // ssh through the alias, with the user's config.
        let ssh = try bed.inLaptop(["ssh", "-F", "\(home)/.ssh/config", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10",
                                    "dbgbox-\(name)", "echo", "hello-from-$(hostname)"], home: home)
        XCTAssertEqual(ssh.exitCode, 0, ssh.stderrText)
        XCTAssertTrue(ssh.stdoutText.hasPrefix("hello-from-"), ssh.stdoutText)

        // ssh run by hand without the alias would have recorded the tunnel port in known_hosts.
        try write(userKnownHosts + "[127.0.0.1]:\(localPort) ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPdEnfBREMo2QJpuuo8u1nPTjWmhz7JkePPbU8ppai4I\n",
                  "\(home)/.ssh/known_hosts")

        // The tunnel killed by hand: status says dead, down still cleans everything.
        XCTAssertEqual(kill(pid_t(pid), SIGKILL), 0)
        var deadline = Date().addingTimeInterval(5)
        while ProcFSInspector().startTime(of: pid_t(pid)) != nil && Date() < deadline { usleep(50_000) }
        rows = try status(bed, home: home)
        XCTAssertEqual(rows.first?["tunnel"] as? String, "dead")
        XCTAssertEqual(rows.first?["alive"] as? Bool, false)

        let downStart = Date()
        let down = try run(bed, home: home, ["down"])
        let downSeconds = Date().timeIntervalSince(downStart)
        print("dbgbox down: \(String(format: "%.2f", downSeconds)) s\n\(down.stdoutText)\(down.stderrText)")
        XCTAssertEqual(down.exitCode, 0, down.stderrText)

        XCTAssertNotEqual(try IT.runner.run(["docker", "inspect", name]).exitCode, 0, "container still on the node")
        XCTAssertNil(ProcFSInspector().startTime(of: pid_t(pid)), "tunnel process left")
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(home)/.ssh/dbgbox/config"), "Host block file left")
        let pinned = (try? String(contentsOfFile: "\(home)/.ssh/dbgbox/known_hosts", encoding: .utf8)) ?? ""
        XCTAssertFalse(pinned.contains("dbgbox-\(name) "), pinned)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: "\(home)/.ssh/config")), Data(userConfig.utf8))
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: "\(home)/.ssh/known_hosts")), Data(userKnownHosts.utf8))
        let state = (try? FileManager.default.subpathsOfDirectory(atPath: "\(home)/state")) ?? []
        XCTAssertTrue(state.filter { $0.hasSuffix(".json") || $0.hasSuffix(".log") }.isEmpty, "\(state)")
        XCTAssertEqual(try status(bed, home: home).count, 0)
        // No process of the test user still listens on the port.
        deadline = Date().addingTimeInterval(2)
        XCTAssertFalse(try bed.tcpConnect(from: bed.laptopNS, host: "127.0.0.1", port: UInt16(localPort)).connected)
        _ = deadline
    }

    /// `up --foreground`: the tunnel runs in the `up` process itself (the same runner as `dbgbox
    /// tunnel`); ssh reaches the container through the alias, and SIGINT ends the tunnel and removes
    /// the session (container, Host block, record).
    func testForegroundUpServesUntilSIGINTThenRemovesTheSession() throws {
        let (bed, home) = try prepare("foreground")
        _ = try IT.runner.run(["install", "-d", "-m", "700", "-o", String(IT.user.uid), "-g", String(IT.user.gid), "\(home)/.ssh"])
        let image = "\(bed.user)/updown-it:latest"
        let out = "\(home)/up.out", err = "\(home)/up.err"
        let up = try bed.startInLaptop([try IT.requireBinary(), "up", "--foreground", "--gpu", "none", "--port", "auto",
                                        "--ttl", "1h", "--base", IT.baseImage, "--image", image, "--key", bed.key + ".pub"]
                                       + remoteArgs(bed), home: home, extraEnv: ["XDG_STATE_HOME": "\(home)/state"],
                                       stdout: .file(out), stderr: .file(err))
        defer { up.signal(SIGKILL); up.wait() }
        let deadline = Date().addingTimeInterval(240)
        var text = ""
        while Date() < deadline && up.exitStatusIfDone() == nil {
            text = (try? String(contentsOfFile: out, encoding: .utf8)) ?? ""
            if text.contains("ready: ") { break }
            usleep(100_000)
        }
        XCTAssertTrue(text.contains("remove it"), "\(text)\n\((try? String(contentsOfFile: err, encoding: .utf8)) ?? "")")
        XCTAssertTrue(text.contains("ready: "), text)
        let rows = try status(bed, home: home)
        let name = try XCTUnwrap(rows.first?["name"] as? String, text)
        Self.containers.append(name)
        XCTAssertEqual(rows.first?["tunnel"] as? String, "none (foreground)", "\(rows)")

        let ssh = try bed.inLaptop(["ssh", "-F", "\(home)/.ssh/config", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10",
                                    "dbgbox-\(name)", "echo", "hello-from-foreground"], home: home)
        XCTAssertEqual(ssh.exitCode, 0, ssh.stderrText)
        XCTAssertEqual(ssh.stdoutText, "hello-from-foreground\n")

        up.signal(SIGINT)
        let code = up.wait()
        XCTAssertEqual(code, 0, (try? String(contentsOfFile: err, encoding: .utf8)) ?? "")
        XCTAssertTrue(((try? String(contentsOfFile: err, encoding: .utf8)) ?? "").contains("tunnel closed"))
        XCTAssertNotEqual(try IT.runner.run(["docker", "inspect", name]).exitCode, 0, "container still on the node")
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(home)/.ssh/dbgbox/config"), "Host block file left")
        XCTAssertEqual(try status(bed, home: home).count, 0)
    }

    /// Two `up`s: two sessions on two ports, both usable; `down` of one (its tunnel alive: SIGTERM)
    /// leaves the other working; `down --all` removes the rest.
    func testTwoSessionsDownOneLeavesTheOther() throws {
        let (bed, home) = try prepare("updown2")
        let upArgs = ["up", "--gpu", "none", "--port", "auto", "--ttl", "1h", "--base", IT.baseImage,
                      "--image", "\(bed.user.lowercased())/updown-it:latest", "--key", bed.key + ".pub"] + remoteArgs(bed)
        for _ in 0..<2 {
            let up = try run(bed, home: home, upArgs)
            XCTAssertEqual(up.exitCode, 0, up.stderrText)
        }
        let rows = try status(bed, home: home)
        XCTAssertEqual(rows.count, 2)
        let names = rows.compactMap { $0["name"] as? String }
        Self.containers += names
        XCTAssertEqual(Set(rows.compactMap { $0["local_port"] as? Int }).count, 2, "\(rows)")
        // The tunnels run detached: each leads its own session (setsid), stdin is /dev/null.
        for row in rows {
            let pid = try XCTUnwrap(row["tunnel_pid"] as? Int)
            let stat = try String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)
            let fields = stat[stat.index(after: stat.lastIndex(of: ")")!)...].split(separator: " ")
            XCTAssertEqual(Int(fields[3]), pid, "session id of the tunnel")
            XCTAssertEqual(try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/fd/0"), "/dev/null")
        }
        func ssh(_ name: String) throws -> ProcessResult {
            try bed.inLaptop(["ssh", "-F", "\(home)/.ssh/config", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10",
                              "dbgbox-\(name)", "true"], home: home)
        }
        for name in names { XCTAssertEqual(try ssh(name).exitCode, 0) }
        let firstPID = try XCTUnwrap(rows[0]["tunnel_pid"] as? Int)
        let start = Date()
        let down = try run(bed, home: home, ["down", names[0]])
        print("dbgbox down (live tunnel): \(String(format: "%.2f", Date().timeIntervalSince(start))) s")
        XCTAssertEqual(down.exitCode, 0, down.stderrText)
        XCTAssertTrue(down.stdoutText.contains("tunnel stopped"), down.stdoutText)
        XCTAssertNil(ProcFSInspector().startTime(of: pid_t(firstPID)), "tunnel still running")
        XCTAssertNotEqual(try IT.runner.run(["docker", "inspect", names[0]]).exitCode, 0)
        let ssh1 = try ssh(names[1])
        XCTAssertEqual(ssh1.exitCode, 0, ssh1.stderrText)
        // The Include stays while a block remains.
        XCTAssertTrue(try String(contentsOfFile: "\(home)/.ssh/config", encoding: .utf8).hasPrefix("Include "))
        let all = try run(bed, home: home, ["down", "--all"])
        XCTAssertEqual(all.exitCode, 0, all.stderrText)
        XCTAssertEqual(try status(bed, home: home).count, 0)
        XCTAssertNotEqual(try IT.runner.run(["docker", "inspect", names[1]]).exitCode, 0)
        // dbgbox created ~/.ssh/config for the Include: it goes with the last block.
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(home)/.ssh/config"))
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(home)/.ssh/dbgbox/config"))
    }

    /// `ide pycharm` on a laptop without docker: everything comes from the session record, and
    /// Python is found in the container (on the image's ENV PATH) through the session's tunnel.
    func testIdeFromTheSessionRecordWithoutDocker() throws {
        let (bed, home) = try prepare("updown-ide")
        let image = try Self.envImage.name(home: home)
        let up = try run(bed, home: home, ["up", "--gpu", "none", "--port", "auto", "--ttl", "1h", "--image", image,
                                           "--key", bed.key + ".pub"] + remoteArgs(bed))
        XCTAssertEqual(up.exitCode, 0, up.stderrText)
        let row = try XCTUnwrap(try status(bed, home: home).first)
        let name = try XCTUnwrap(row["name"] as? String)
        Self.containers.append(name)
        let localPort = try XCTUnwrap(row["local_port"] as? Int)

        // A PATH with nothing on it: no docker, no ssh.
        let emptyBin = "\(home)/empty-bin"
        try FileManager.default.createDirectory(atPath: emptyBin, withIntermediateDirectories: true)
        func ide(_ args: [String]) throws -> ProcessResult {
            try bed.inLaptop([try IT.requireBinary(), "ide"] + args, home: home,
                             extraEnv: ["XDG_STATE_HOME": "\(home)/state", "PATH": emptyBin])
        }
        let noDocker = try bed.inLaptop(["/bin/sh", "-c", "command -v docker || echo none"], home: home,
                                        extraEnv: ["PATH": emptyBin])
        XCTAssertEqual(noDocker.stdoutText, "none\n", "docker must not be on this PATH")

        for args in [["pycharm", name], ["pycharm"]] {
            let pycharm = try ide(args)
            XCTAssertEqual(pycharm.exitCode, 0, pycharm.stderrText)
            IT.assertContains(pycharm.stdoutText, [
                "Interpreter         /opt/fake/bin/python3  (path, Python 3.99.1)", "Port                \(localPort)\n",
                "Host                dbgbox-\(name)\n", "Private key file    \(bed.key)\n",
                "The container runs on \(Testbed.nodeAlias)", "\(IT.user.home) → \(IT.user.home)",
            ])
        }
        let vscode = try ide(["vscode", name])
        XCTAssertEqual(vscode.exitCode, 0, vscode.stderrText)
        XCTAssertTrue(vscode.stdoutText.contains("vscode-remote://ssh-remote+dbgbox-\(name)\(IT.user.home)\n"), vscode.stdoutText)
        XCTAssertTrue(vscode.stdoutText.contains("\"python.defaultInterpreterPath\": \"/opt/fake/bin/python3\""), vscode.stdoutText)

        // The debugger: a debugpy attach configuration merged into a launch.json with comments and
        // another configuration, which keeps every byte of them; a rerun replaces it.
        let project = "\(home)/project"
        _ = try IT.runner.run(["install", "-d", "-m", "755", "-o", String(IT.user.uid), "-g", String(IT.user.gid), project, project + "/.vscode"])
        let launch = """
            {
              // mine
              "version": "0.2.0",
              "configurations": [
                { "name": "Python: Current File", "type": "debugpy", "request": "launch", "program": "${file}", }, /* keep */
              ],
            }

            """
        try write(launch, project + "/.vscode/launch.json")
        for round in 0..<2 {
            let attach = try ide(["vscode", name, "--attach", "5678", "--write", project])
            XCTAssertEqual(attach.exitCode, 0, attach.stderrText)
            IT.assertContains(attach.stdoutText, [
                "\"dbgbox: attach \(name)\" \(round == 0 ? "added to" : "replaced in") \(project)/.vscode/launch.json",
                "/opt/fake/bin/python3 -m debugpy --listen 127.0.0.1:5678 --wait-for-client",
                "ssh -N -L 127.0.0.1:5678:127.0.0.1:5678 dbgbox-\(name)",
            ])
        }
        let merged = try String(contentsOfFile: project + "/.vscode/launch.json", encoding: .utf8)
        XCTAssertEqual(merged.components(separatedBy: "dbgbox: attach \(name)").count, 2, merged)
        XCTAssertTrue(merged.hasPrefix("{\n  // mine\n  \"version\": \"0.2.0\",\n  \"configurations\": [\n    {\n"), merged)
        XCTAssertTrue(merged.hasSuffix("    { \"name\": \"Python: Current File\", \"type\": \"debugpy\", \"request\": \"launch\", \"program\": \"${file}\", }, /* keep */\n  ],\n}\n"), merged)
        XCTAssertTrue(merged.contains("\"localRoot\": \"\(IT.user.home)\", \"remoteRoot\": \"\(IT.user.home)\""), merged)
        let server = try ide(["pycharm", name, "--debug-server", "5679"])
        XCTAssertEqual(server.exitCode, 0, server.stderrText)
        IT.assertContains(server.stdoutText, ["ssh -N -R 127.0.0.1:5679:127.0.0.1:5679 dbgbox-\(name)",
                                              "pydevd_pycharm.settrace('127.0.0.1', port=5679"])
        let badPort = try ide(["vscode", name, "--attach", "70000"])
        XCTAssertNotEqual(badPort.exitCode, 0)
        XCTAssertTrue(badPort.stderrText.contains("--attach 70000 is outside 1-65535"), badPort.stderrText)

        // Not a session, and no docker here for a local container: one clear line.
        let missing = try ide(["pycharm", "no-such-session"])
        XCTAssertNotEqual(missing.exitCode, 0)
        let err = missing.stderrText.trimmingCharacters(in: .newlines)
        XCTAssertFalse(err.contains("\n"), err)
        XCTAssertTrue(err.contains("no session named no-such-session") && err.contains("docker"), err)

        let down = try run(bed, home: home, ["down", name])
        XCTAssertEqual(down.exitCode, 0, down.stderrText)
    }

    /// The Host block shares one ssh connection: the first `ssh dbgbox-NAME` becomes the master,
    /// the second rides it (`ssh -O check` says so); a master killed with SIGKILL leaves a stale
    /// socket that does not break the next ssh; `down` ends the master and leaves no socket.
    func testConnectionSharingMasterIsReusedAndDownClosesIt() throws {
        let (bed, home) = try prepare("updown-cm")
        let up = try run(bed, home: home, ["up", "--gpu", "none", "--port", "auto", "--ttl", "1h", "--base", IT.baseImage,
                                           "--image", "\(bed.user.lowercased())/updown-it:latest", "--key", bed.key + ".pub"] + remoteArgs(bed))
        XCTAssertEqual(up.exitCode, 0, up.stderrText)
        let name = try XCTUnwrap(try status(bed, home: home).first?["name"] as? String)
        Self.containers.append(name)
        let cm = "\(home)/.ssh/dbgbox/cm"
        var st = stat()
        XCTAssertEqual(lstat(cm, &st), 0)
        XCTAssertEqual(st.st_mode & 0o7777, 0o700)
        XCTAssertEqual(st.st_uid, IT.user.uid)
        let block = try String(contentsOfFile: "\(home)/.ssh/dbgbox/config", encoding: .utf8)
        IT.assertContains(block, ["    ControlMaster auto\n", "    ControlPath \(cm)/", "    ControlPersist 10m\n"])

        func ssh(_ args: [String]) throws -> (ProcessResult, Double) {
            let start = Date()
            let result = try bed.inLaptop(["ssh", "-F", "\(home)/.ssh/config", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10"]
                                          + args, home: home)
            return (result, Date().timeIntervalSince(start))
        }
        func masterPID() throws -> Int32? {
            let (check, _) = try ssh(["-O", "check", "dbgbox-\(name)"])
            guard check.exitCode == 0, let range = check.stderrText.range(of: #"pid=(\d+)"#, options: .regularExpression) else { return nil }
            return Int32(check.stderrText[range].dropFirst(4))
        }
        XCTAssertNil(try masterPID(), "no master before the first ssh")
        let (first, firstSeconds) = try ssh(["dbgbox-\(name)", "true"])
        XCTAssertEqual(first.exitCode, 0, first.stderrText)
        let master = try XCTUnwrap(try masterPID(), "the first ssh left no master")
        let (second, secondSeconds) = try ssh(["dbgbox-\(name)", "true"])
        XCTAssertEqual(second.exitCode, 0, second.stderrText)
        print("ssh dbgbox-NAME true: first (new master) \(String(format: "%.3f", firstSeconds)) s, second (shared) \(String(format: "%.3f", secondSeconds)) s")
        XCTAssertLessThan(secondSeconds, firstSeconds, "the second ssh should ride the master")
        XCTAssertEqual(try masterPID(), master, "the same master")
        let sockets = try FileManager.default.contentsOfDirectory(atPath: cm)
        XCTAssertEqual(sockets.count, 1, "\(sockets)")

        // A master that died without cleaning up leaves its socket: ssh unlinks it and starts over.
        XCTAssertEqual(kill(master, SIGKILL), 0)
        var deadline = Date().addingTimeInterval(5)
        while kill(master, 0) == 0 && Date() < deadline { usleep(20_000) }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: cm), sockets, "the stale socket is there")
        let (afterStale, _) = try ssh(["dbgbox-\(name)", "true"])
        XCTAssertEqual(afterStale.exitCode, 0, afterStale.stderrText)
        let newMaster = try XCTUnwrap(try masterPID(), "no new master after the stale socket")
        XCTAssertNotEqual(newMaster, master)

        let down = try run(bed, home: home, ["down", name])
        XCTAssertEqual(down.exitCode, 0, down.stderrText)
        deadline = Date().addingTimeInterval(5)
        while kill(newMaster, 0) == 0 && Date() < deadline { usleep(20_000) }
        XCTAssertNotEqual(kill(newMaster, 0), 0, "the ssh master outlived down")
        XCTAssertFalse(FileManager.default.fileExists(atPath: cm), "control socket directory left: \((try? FileManager.default.contentsOfDirectory(atPath: cm)) ?? [])")
    }

    /// SIGINT or SIGTERM at a known step of `up` (the test hook DBGBOX_TEST_PAUSE_AFTER holds it
    /// there): before the container, up just ends; after it (the container running, its key pinned,
    /// not yet ready) or after the last step (tunnel, record, Host block and Include written), up
    /// undoes everything, says so in one line and exits 128+signal. Nothing of the session is left.
    func testInterruptedUpLeavesNothing() throws {
        let (bed, home) = try prepare("updown-int")
        let bin = try IT.requireBinary()
        let upArgs = ["up", "--gpu", "none", "--port", "auto", "--ttl", "1h", "--base", IT.baseImage,
                      "--image", "\(bed.user.lowercased())/updown-it:latest", "--key", bed.key + ".pub"] + remoteArgs(bed)
        func ownContainers() throws -> Set<String> {
            Set(try IT.runner.run(["docker", "ps", "-a", "--filter", "label=dbgbox.owner=\(IT.testUser)",
                                   "--format", "{{.Names}}"]).stdoutText.split(separator: "\n").map(String.init))
        }
        for (step, signal) in [("image", SIGINT), ("container", SIGINT), ("host block", SIGTERM)] {
            let before = try ownContainers()
            let log = "\(home)/up-\(step.replacingOccurrences(of: " ", with: "-")).err"
            let child = try bed.startInLaptop([bin] + upArgs, home: home,
                                              extraEnv: ["XDG_STATE_HOME": "\(home)/state", "DBGBOX_TEST_PAUSE_AFTER": step],
                                              stdout: .null, stderr: .file(log))
            let deadline = Date().addingTimeInterval(180) // the first run may build the image
            func stderrText() -> String { (try? String(contentsOfFile: log, encoding: .utf8)) ?? "" }
            while !stderrText().contains("paused after \(step)") && child.exitStatusIfDone() == nil && Date() < deadline {
                usleep(50_000)
            }
            XCTAssertNil(child.exitStatusIfDone(), "up ended before pausing after \(step): \(stderrText())")
            guard child.exitStatusIfDone() == nil else { continue }

            // The container exists (docker ps shows it with dbgbox's labels) from the container step on.
            let made = try ownContainers().subtracting(before)
            XCTAssertEqual(made.count, step == "image" ? 0 : 1, "\(made)")
            Self.containers += made
            var nodePorts: [String] = []
            for name in made {
                nodePorts.append(try IT.runner.run(["docker", "inspect", "--format", "{{index .Config.Labels \"dbgbox.port\"}}", name])
                    .stdoutText.trimmingCharacters(in: .whitespacesAndNewlines))
            }

            XCTAssertEqual(kill(child.pid, signal), 0)
            let code = child.wait()
            XCTAssertEqual(code, 128 + signal, "\(step): \(stderrText())")
            let last = stderrText().split(separator: "\n").last.map(String.init) ?? ""
            XCTAssertTrue(last.hasPrefix("dbgbox: error: up interrupted by \(signal == SIGINT ? "SIGINT" : "SIGTERM"): "), last)
            if step == "image" {
                XCTAssertTrue(last.hasSuffix("nothing had been made"), last)
            } else {
                XCTAssertTrue(last.contains("the container \(made.first ?? "?")") && last.hasSuffix("nothing of the session is left"), last)
            }
            if step == "host block" {
                XCTAssertTrue(last.contains("the tunnel") && last.contains("the Host block") && last.contains("the session record"), last)
            }

            // Nothing is left: no container, no pinned key, no Host block or Include, no record, log or
            // options file, no tunnel process.
            XCTAssertEqual(try ownContainers().subtracting(before), [], step)
            let pinned = (try? String(contentsOfFile: "\(home)/.ssh/dbgbox/known_hosts", encoding: .utf8)) ?? ""
            for name in made { XCTAssertFalse(pinned.contains("dbgbox-\(name) "), pinned) }
            XCTAssertFalse(FileManager.default.fileExists(atPath: "\(home)/.ssh/dbgbox/config"), step)
            XCTAssertFalse(FileManager.default.fileExists(atPath: "\(home)/.ssh/config"), step)
            let state = (try? FileManager.default.subpathsOfDirectory(atPath: "\(home)/state")) ?? []
            XCTAssertEqual(state.filter { $0.hasSuffix(".json") || $0.hasSuffix(".log") }, [], step)
            XCTAssertEqual(try status(bed, home: home).count, 0)
            for port in nodePorts {
                let tunnels = (try FileManager.default.contentsOfDirectory(atPath: "/proc")).compactMap { pid -> String? in
                    guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return nil }
                    let argv = String(decoding: data, as: UTF8.self).split(separator: "\0").map(String.init)
                    guard argv.first == bin, argv.dropFirst().first == "tunnel",
                          let i = argv.firstIndex(of: "--port"), argv.indices.contains(i + 1), argv[i + 1] == port else { return nil }
                    return pid
                }
                XCTAssertEqual(tunnels, [], "a tunnel to port \(port) is still running")
            }
        }
    }

    /// The probe's case (issue 12, item 2): with ~/.ssh/config a directory, `up` used to make the
    /// container, start the tunnel, write the record and the Host block, then crash, leaving all of
    /// it. Now the session is made whole and the one thing it cannot do is said in one warning, as
    /// for a config it may not edit (the Include line to add by hand); `down` then leaves nothing.
    func testUpWithAnOddSSHConfigWarnsOnceAndDownLeavesNothing() throws {
        let (bed, home) = try prepare("updown-odd")
        _ = try IT.asUser(["mkdir", "-p", "\(home)/.ssh/config"], home: home)
        func ownContainers() throws -> Set<String> {
            Set(try IT.runner.run(["docker", "ps", "-a", "--filter", "label=dbgbox.owner=\(IT.testUser)",
                                   "--format", "{{.Names}}"]).stdoutText.split(separator: "\n").map(String.init))
        }
        let before = try ownContainers()
        let up = try run(bed, home: home, ["up", "--gpu", "none", "--port", "auto", "--ttl", "1h", "--base", IT.baseImage,
                                           "--image", "\(bed.user.lowercased())/updown-it:latest", "--key", bed.key + ".pub"] + remoteArgs(bed))
        let made = try ownContainers().subtracting(before)
        Self.containers += made
        XCTAssertEqual(up.exitCode, 0, up.stderrText)
        XCTAssertFalse(up.stderrText.contains("Fatal error"), up.stderrText)
        let warnings = up.stderrText.split(separator: "\n").filter { $0.hasPrefix("dbgbox: warning: ") }
        XCTAssertEqual(warnings.count, 1, up.stderrText)
        XCTAssertTrue(warnings.first.map { $0.contains(".ssh/config") && $0.contains("is a directory") && $0.contains("Include ") } ?? false,
                      up.stderrText)
        XCTAssertEqual(made.count, 1)
        XCTAssertEqual(try status(bed, home: home).count, 1)

        let down = try run(bed, home: home, ["down", "--all"])
        XCTAssertEqual(down.exitCode, 0, down.stderrText)
        XCTAssertEqual(try ownContainers().subtracting(before), [], "a container was left")
        let pinned = (try? String(contentsOfFile: "\(home)/.ssh/dbgbox/known_hosts", encoding: .utf8)) ?? ""
        XCTAssertFalse(pinned.contains("dbgbox-"), pinned)
        XCTAssertFalse((try? String(contentsOfFile: "\(home)/.ssh/dbgbox/config", encoding: .utf8))?.contains("Host dbgbox-") ?? false)
        let state = (try? FileManager.default.subpathsOfDirectory(atPath: "\(home)/state")) ?? []
        XCTAssertEqual(state.filter { $0.hasSuffix(".json") || $0.hasSuffix(".log") }, [])
        var isDirectory: ObjCBool = false
        XCTAssertTrue(FileManager.default.fileExists(atPath: "\(home)/.ssh/config", isDirectory: &isDirectory) && isDirectory.boolValue,
                      "the user's ~/.ssh/config is left as it was")
    }
}
