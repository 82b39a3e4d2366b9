import Foundation
import XCTest
@testable import DbgboxKit

/// `dbgbox tunnel` end to end on the netns testbed: laptop → login → node → a container made by
/// `dbgbox container create`, with OpenSSH's ssh as the client through the local port.
final class TunnelEndToEndTests: XCTestCase {
    nonisolated(unsafe) static var shared: (bed: Testbed, home: String, container: String, port: Int)?

    override class func tearDown() {
        if let shared {
            _ = try? IT.dbgbox(["container", "rm", shared.container], home: shared.home)
            try? FileManager.default.removeItem(atPath: shared.home)
        }
        shared = nil
        Testbed.downIfStartedHere()
        super.tearDown()
    }

    /// The testbed, an image and one container on the node (made once for the class).
    func setUpBed() throws -> (bed: Testbed, home: String, container: String, port: Int) {
        if let shared = Self.shared { return shared }
        _ = try IT.requireBinary()
        try IT.requireDocker()
        let bed = try Testbed.up()
        let home = try IT.scratchDir("tunnel-e2e")
        let image = try IT.dbgbox(["image", "create", "--base", IT.baseImage], home: home)
        XCTAssertEqual(image.exitCode, 0, image.stderrText)
        let create = try IT.dbgbox(["container", "create", "--gpu", "none", "--port", "auto", "--ttl", "1h",
                                    "--key", bed.key + ".pub", "--json"], home: home)
        XCTAssertEqual(create.exitCode, 0, create.stderrText)
        let json = try JSONSerialization.jsonObject(with: create.stdout) as? [String: Any]
        let name = try XCTUnwrap(json?["name"] as? String)
        let port = try XCTUnwrap(json?["port"] as? Int)
        Self.shared = (bed, home, name, port)
        return Self.shared!
    }

    /// A running `dbgbox tunnel` in the laptop namespace.
    final class RunningTunnel {
        let process: ChildProcess
        let out: String
        let err: String
        let localPort: Int
        init(process: ChildProcess, out: String, err: String, localPort: Int) {
            self.process = process; self.out = out; self.err = err; self.localPort = localPort
        }
        var stdout: String { (try? String(contentsOfFile: out, encoding: .utf8)) ?? "" }
        var stderr: String { (try? String(contentsOfFile: err, encoding: .utf8)) ?? "" }
        func stop() -> Int32 {
            process.signal(SIGTERM)
            return process.wait()
        }
    }

    func tunnelArgs(_ bed: Testbed, port: Int, localPort: Int, extra: [String] = []) -> [String] {
        [IT.binary!, "tunnel", "-F", bed.sshConfig, "--login", Testbed.loginAlias, "--node", Testbed.nodeAlias,
         "--port", String(port), "--local-port", String(localPort), "--known-hosts", bed.knownHosts, "--quiet"] + extra
    }

    func startTunnel(_ bed: Testbed, home: String, port: Int, extra: [String] = []) throws -> RunningTunnel {
        let localPort = Int.random(in: 30000...39999)
        let out = "\(home)/tunnel-\(localPort).out"
        let err = "\(home)/tunnel-\(localPort).err"
        let child = try bed.startInLaptop(tunnelArgs(bed, port: port, localPort: localPort, extra: extra), home: home,
                                          stdout: .file(out), stderr: .file(err))
        let tunnel = RunningTunnel(process: child, out: out, err: err, localPort: localPort)
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline {
            if tunnel.stdout.contains("ready: ") { return tunnel }
            if let code = child.exitStatusIfDone() {
                XCTFail("tunnel exited \(code): \(tunnel.stderr)")
                throw DbgboxError("tunnel exited")
            }
            usleep(50_000)
        }
        _ = tunnel.stop()
        XCTFail("tunnel not ready within 20 s: \(tunnel.stderr)")
        throw DbgboxError("tunnel not ready")
    }

    /// OpenSSH ssh into the container through the tunnel, strict host key check against the pin.
    func ssh(_ bed: Testbed, home: String, container: String, localPort: Int) -> [String] {
        ["ssh", "-F", "/dev/null", "-p", String(localPort), "-i", bed.key, "-o", "IdentitiesOnly=yes",
         "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes", "-o", "HostKeyAlias=dbgbox-\(container)",
         "-o", "UserKnownHostsFile=\(home)/.ssh/dbgbox/known_hosts", "-o", "ConnectTimeout=10",
         "\(bed.user)@127.0.0.1"]
    }

    func sh(_ bed: Testbed, home: String, _ script: String) throws -> ProcessResult {
        try bed.inLaptop(["bash", "-c", script], home: home)
    }

    func testLoginRunsACommandAndMoves100MiBEachWay() throws {
        let (bed, home, container, port) = try setUpBed()
        let tunnel = try startTunnel(bed, home: home, port: port)
        defer { _ = tunnel.stop() }
        XCTAssertTrue(tunnel.stdout.contains("→ \(bed.nodeAddr) → 127.0.0.1:\(port)"), tunnel.stdout)
        let ssh = self.ssh(bed, home: home, container: container, localPort: tunnel.localPort)
        let hello = try bed.inLaptop(ssh + ["id", "-un"], home: home)
        XCTAssertEqual(hello.exitCode, 0, hello.stderrText + tunnel.stderr)
        XCTAssertEqual(hello.stdoutText, "\(bed.user)\n")

        let q = ssh.map { "'\($0)'" }.joined(separator: " ")
        let up = try sh(bed, home: home, """
            set -euo pipefail
            head -c 104857600 /dev/urandom > "$HOME/up.bin"
            local=$(sha256sum < "$HOME/up.bin" | cut -d' ' -f1)
            remote=$(\(q) 'sha256sum' < "$HOME/up.bin" | cut -d' ' -f1)
            [ "$local" = "$remote" ] || { echo "upload mismatch $local $remote" >&2; exit 1; }
            remote=$(\(q) 'head -c 104857600 /dev/urandom | tee /tmp/dl.bin | sha256sum' | cut -d' ' -f1)
            local=$(\(q) 'cat /tmp/dl.bin; rm -f /tmp/dl.bin' | sha256sum | cut -d' ' -f1)
            [ "$local" = "$remote" ] || { echo "download mismatch $local $remote" >&2; exit 1; }
            rm -f "$HOME/up.bin"
            """)
        XCTAssertEqual(up.exitCode, 0, up.stderrText + tunnel.stderr)
        XCTAssertEqual(tunnel.stop(), 0, tunnel.stderr)
    }

    func testSixtyFourConcurrentConnectionsEachChecksummed() throws {
        let (bed, home, container, port) = try setUpBed()
        let tunnel = try startTunnel(bed, home: home, port: port)
        defer { _ = tunnel.stop() }
        let q = ssh(bed, home: home, container: container, localPort: tunnel.localPort).map { "'\($0)'" }.joined(separator: " ")
        let result = try sh(bed, home: home, """
            set -uo pipefail
            dir=$(mktemp -d "$HOME/conc.XXXX")
            for i in $(seq 1 64); do
              head -c 1048576 /dev/urandom > "$dir/$i"
              ( want=$(sha256sum < "$dir/$i" | cut -d' ' -f1)
                got=$(\(q) sha256sum < "$dir/$i" | cut -d' ' -f1)
                [ "$want" = "$got" ] && echo ok > "$dir/$i.ok" ) &
            done
            wait
            n=$(ls "$dir"/*.ok 2>/dev/null | wc -l)
            rm -rf "$dir"
            echo "$n"
            [ "$n" -eq 64 ]
            """)
        XCTAssertEqual(result.exitCode, 0, "ok connections: \(result.stdoutText) \(result.stderrText) \(tunnel.stderr)")
    }

    func testNodeViaExec() throws {
        let (bed, home, container, port) = try setUpBed()
        let tunnel = try startTunnel(bed, home: home, port: port, extra: ["--node-via", "exec"])
        defer { _ = tunnel.stop() }
        let r = try bed.inLaptop(ssh(bed, home: home, container: container, localPort: tunnel.localPort) + ["echo", "via-exec"], home: home)
        XCTAssertEqual(r.exitCode, 0, r.stderrText + tunnel.stderr)
        XCTAssertEqual(r.stdoutText, "via-exec\n")
    }

    func testReconnectsAfterTheLoginConnectionIsKilled() throws {
        let (bed, home, container, port) = try setUpBed()
        let tunnel = try startTunnel(bed, home: home, port: port)
        defer { _ = tunnel.stop() }
        let ssh = self.ssh(bed, home: home, container: container, localPort: tunnel.localPort)
        XCTAssertEqual(try bed.inLaptop(ssh + ["true"], home: home).exitCode, 0, tunnel.stderr)

        try bed.killLoginSessions()
        let killedAt = Date()
        var recovered: Double?
        while Date().timeIntervalSince(killedAt) < 10 {
            if tunnel.stderr.contains("reconnected"),
               (try? bed.inLaptop(ssh + ["true"], home: home).exitCode) == 0 {
                recovered = Date().timeIntervalSince(killedAt)
                break
            }
            usleep(100_000)
        }
        XCTAssertNotNil(recovered, "no reconnect within 10 s: \(tunnel.stderr)")
        XCTAssertLessThan(recovered ?? 99, 5, "reconnect took too long: \(tunnel.stderr)")
        XCTAssertTrue(tunnel.stderr.contains("down"), tunnel.stderr)

        // The path itself goes away and comes back.
        try bed.setLink(up: false)
        sleep(2)
        try bed.setLink(up: true)
        let back = Date()
        recovered = nil
        while Date().timeIntervalSince(back) < 30 {
            if (try? bed.inLaptop(ssh + ["true"], home: home).exitCode) == 0 {
                recovered = Date().timeIntervalSince(back)
                break
            }
            usleep(200_000)
        }
        XCTAssertNotNil(recovered, "no connection after the link came back: \(tunnel.stderr)")
    }

    /// Path faults on the laptop–login link, timed (issue 11, case 5): the link silent (packets
    /// dropped, not refused) for 60 s, then down for 20 s. With ServerAliveInterval 2 (and the
    /// default ServerAliveCountMax 3) the dead peer is found within 6 s (+2 s of slack); the
    /// tunnel is back within 5 s of the path returning; the listener stays all along; new
    /// connections work after; and the log says each step once.
    func testSilentAndDownLinkAreFoundAndRecovered() throws {
        let (bed, home, container, port) = try setUpBed()
        let config = "\(home)/ssh_config_keepalive"
        let text = "ServerAliveInterval 2\n" + (try String(contentsOfFile: bed.sshConfig, encoding: .utf8))
        try text.write(toFile: config, atomically: true, encoding: .utf8)
        _ = try IT.runner.run(["chown", "\(IT.user.uid):\(IT.user.gid)", config])
        _ = try IT.runner.run(["chmod", "600", config])
        let tunnel = try startTunnel(bed, home: home, port: port, extra: ["-F", config])
        defer { _ = tunnel.stop(); try? bed.setSilence(false); try? bed.setLink(up: true) }
        let ssh = self.ssh(bed, home: home, container: container, localPort: tunnel.localPort)
        XCTAssertEqual(try bed.inLaptop(ssh + ["true"], home: home).exitCode, 0, tunnel.stderr)

        func waitFor(_ seconds: Double, _ condition: () -> Bool) -> Double? {
            let start = Date()
            while Date().timeIntervalSince(start) < seconds {
                if condition() { return Date().timeIntervalSince(start) }
                usleep(100_000)
            }
            return nil
        }
        func lines(_ marker: String) -> Int { tunnel.stderr.components(separatedBy: "\n").filter { $0.contains(marker) }.count }
        func listening() -> Bool { (try? bed.tcpConnect(from: bed.laptopNS, host: "127.0.0.1", port: UInt16(tunnel.localPort)))?.connected ?? false }

        for (fault, hold) in [("silent", 60.0), ("down", 20.0)] {
            let downsBefore = lines(" down: ")
            let backBefore = lines("reconnected")
            if fault == "silent" { try bed.setSilence(true) } else { try bed.setLink(up: false) }
            let found = waitFor(hold) { lines(" down: ") > downsBefore }
            XCTAssertNotNil(found, "\(fault): the dead peer was not found within \(hold) s: \(tunnel.stderr)")
            if fault == "silent" { XCTAssertLessThanOrEqual(found ?? 99, 8, "silent: found after \(found ?? -1) s") }
            print("fault suite: link \(fault): dead peer found after \(String(format: "%.1f", found ?? -1)) s")
            XCTAssertTrue(listening(), "\(fault): the listener went away during the fault")
            Thread.sleep(forTimeInterval: max(0, hold - (found ?? hold)))
            XCTAssertTrue(listening(), "\(fault): the listener went away during the fault")
            if fault == "silent" { try bed.setSilence(false) } else { try bed.setLink(up: true) }
            let back = waitFor(15) { lines("reconnected") > backBefore }
            print("fault suite: link \(fault) for \(Int(hold)) s: back \(String(format: "%.1f", back ?? -1)) s after the path returned")
            XCTAssertNotNil(back, "\(fault): not back within 15 s: \(tunnel.stderr)")
            XCTAssertLessThan(back ?? 99, 5, "\(fault): back only after \(back ?? -1) s")
            XCTAssertEqual(try bed.inLaptop(ssh + ["true"], home: home).exitCode, 0, "\(fault): \(tunnel.stderr)")
            XCTAssertEqual(lines(" down: "), downsBefore + 1, "\(fault): the hop went down once: \(tunnel.stderr)")
            XCTAssertEqual(lines("reconnected"), backBefore + 1, tunnel.stderr)
            XCTAssertLessThanOrEqual(lines("reconnect attempt"), 2 * (backBefore + 1), "\(fault): a line per attempt: \(tunnel.stderr)")
        }
    }

    /// Each failure: one line naming the hop, a non-zero exit, no traceback.
    func testFailuresGiveOneLineNamingTheHop() throws {
        let (bed, home, _, port) = try setUpBed()
        let emptyKnownHosts = "\(home)/empty_known_hosts"
        let changedKnownHosts = "\(home)/changed_known_hosts"
        _ = try IT.asUser(["touch", emptyKnownHosts], home: home)
        // The login address with another key of the same type: a changed host key.
        let other = "\(home)/otherhost"
        _ = try IT.asUser(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", other], home: home)
        let otherKey = try String(contentsOfFile: other + ".pub", encoding: .utf8).split(separator: " ")
        let otherECDSA = "\(home)/otherhost-ecdsa"
        _ = try IT.asUser(["ssh-keygen", "-q", "-t", "ecdsa", "-N", "", "-f", otherECDSA], home: home)
        let otherECDSAKey = try String(contentsOfFile: otherECDSA + ".pub", encoding: .utf8).split(separator: " ")
        let changed = "# comment line\n\(bed.loginAddr) \(otherKey[0]) \(otherKey[1])\n\(bed.loginAddr) \(otherECDSAKey[0]) \(otherECDSAKey[1])\n"
        _ = try IT.asUser(["sh", "-c", "cat > '\(changedKnownHosts)'"], home: home, input: Data(changed.utf8))

        // No config file here: with an alias, ssh (and dbgbox) would add the config's IdentityFile
        // to -i, and the right key would log in.
        let noConfig = "\(home)/empty_ssh_config"
        _ = try IT.asUser(["touch", noConfig], home: home)
        struct Case { var extra: [String]; var knownHosts: String?; var node: String?; var mentions: [String] }
        let key = ["-i", bed.key]
        let cases: [Case] = [
            Case(extra: ["-i", bed.wrongKey], knownHosts: nil, node: nil, mentions: ["login host", "authentic"]),
            Case(extra: key, knownHosts: emptyKnownHosts, node: nil, mentions: ["login host", "unknown host key", "--accept-new"]),
            Case(extra: key, knownHosts: changedKnownHosts, node: nil, mentions: ["login host", "CHANGED", "\(changedKnownHosts):2"]),
            Case(extra: ["-i", bed.rsaKey], knownHosts: nil, node: nil, mentions: ["rsa-sha2", "dbgbox keygen"]),
            Case(extra: key, knownHosts: nil, node: "\(bed.user)@198.18.2.99", mentions: ["node", "198.18.2.99"]),
        ]
        for (index, c) in cases.enumerated() {
            var argv = [IT.binary!, "tunnel", "-F", noConfig, "--login", "\(bed.user)@\(bed.loginAddr)",
                        "--node", c.node ?? "\(bed.user)@\(bed.nodeAddr)", "--port", String(port),
                        "--local-port", String(40000 + index), "--known-hosts", c.knownHosts ?? bed.knownHosts, "--quiet"]
            argv += c.extra
            let r = try bed.inLaptop(["timeout", "60"] + argv, home: home)
            let label = "case \(index) \(c.extra) \(c.node ?? "")"
            XCTAssertNotEqual(r.exitCode, 0, label)
            XCTAssertNotEqual(r.exitCode, 124, "\(label): timed out")
            let lines = r.stderrText.split(separator: "\n")
            XCTAssertEqual(lines.count, 1, "\(label): \(r.stderrText)")
            for piece in c.mentions {
                XCTAssertTrue(r.stderrText.contains(piece), "\(label) should mention \(piece): \(r.stderrText)")
            }
        }

        // The local port taken.
        let holder = try bed.startInLaptop(["python3", "-c",
            "import socket,time; s=socket.socket(); s.bind(('127.0.0.1', 40100)); s.listen(); time.sleep(60)"],
            home: home, stdout: .null, stderr: .null)
        defer { holder.signal(SIGKILL); holder.wait() }
        usleep(500_000)
        let taken = try bed.inLaptop(["timeout", "60"] + tunnelArgs(bed, port: port, localPort: 40100), home: home)
        XCTAssertNotEqual(taken.exitCode, 0)
        XCTAssertEqual(taken.stderrText.split(separator: "\n").count, 1, taken.stderrText)
        XCTAssertTrue(taken.stderrText.contains("40100"), taken.stderrText)
    }
}
