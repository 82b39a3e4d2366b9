import Foundation
import XCTest
@testable import DbgboxKit

/// The testbed itself (scripts/testbed.sh): the topology the tunnel tests, demo and benchmark rely
/// on, checked with OpenSSH's own ssh from the laptop namespace as the test user.
final class TestbedTests: XCTestCase {
    private var bed: Testbed!

    override func setUpWithError() throws {
        bed = try Testbed.up()
    }

    override class func tearDown() {
        Testbed.downIfStartedHere()
        super.tearDown()
    }

    func testUpIsIdempotentAndEnvMatches() throws {
        let again = try Testbed.up()
        XCTAssertEqual(again, bed)
        XCTAssertEqual(try Testbed.current(), bed)
        XCTAssertEqual(try String(contentsOfFile: "\(bed.stateDir)/users/\(bed.user)/env", encoding: .utf8),
                       try Testbed.run(["env"]).stdoutText)
        let status = try Testbed.run(["status"])
        XCTAssertEqual(status.exitCode, 0, status.stdoutText + status.stderrText)

        XCTAssertEqual(bed.laptopNS, "dbgbox-laptop")
        XCTAssertEqual(bed.loginNS, "dbgbox-login")
        XCTAssertEqual(bed.user, IT.testUser)
        for addr in [bed.laptopAddr, bed.loginAddr, bed.nodeAddr] {
            XCTAssertTrue(addr.hasPrefix("198.18.") || addr.hasPrefix("198.19."), "\(addr) outside 198.18.0.0/15")
        }
        // The user's keys: theirs, private.
        for key in [bed.key, bed.rsaKey, bed.wrongKey] {
            let attributes = try FileManager.default.attributesOfItem(atPath: key)
            XCTAssertEqual((attributes[.posixPermissions] as? NSNumber)?.intValue, 0o600, key)
            XCTAssertEqual((attributes[.ownerAccountID] as? NSNumber)?.uint32Value, IT.user.uid, key)
        }
        // known_hosts: ed25519 and ECDSA for both hosts, plain ADDR TYPE KEY lines.
        let lines = try String(contentsOfFile: bed.knownHosts, encoding: .utf8).split(separator: "\n")
            .map { $0.split(separator: " ").prefix(2).joined(separator: " ") }
        XCTAssertEqual(Set(lines), ["\(bed.loginAddr) ssh-ed25519", "\(bed.loginAddr) ecdsa-sha2-nistp256",
                                    "\(bed.nodeAddr) ssh-ed25519", "\(bed.nodeAddr) ecdsa-sha2-nistp256"])
    }

    func testLaptopReachesLoginWithStrictHostKeyChecking() throws {
        let r = try bed.inLaptop(bed.ssh + [Testbed.loginAlias, "id", "-un"])
        XCTAssertEqual(r.exitCode, 0, r.stderrText)
        XCTAssertEqual(r.stdoutText, "\(bed.user)\n")
        // Each host key type is pinned: forcing ECDSA also verifies.
        let ecdsa = try bed.inLaptop(bed.ssh + ["-o", "HostKeyAlgorithms=ecdsa-sha2-nistp256", Testbed.loginAlias, "true"])
        XCTAssertEqual(ecdsa.exitCode, 0, ecdsa.stderrText)
        // The laptop's own loopback is up (tunnels listen on 127.0.0.1 there).
        let lo = try bed.inLaptop(["ip", "-o", "link", "show", "dev", "lo"], asUser: false)
        XCTAssertTrue(lo.stdoutText.contains(",UP"), lo.stdoutText)
    }

    func testLaptopCannotReachNode() throws {
        // Control: the node's sshd answers from login.
        let fromLogin = try bed.tcpConnect(from: bed.loginNS, host: bed.nodeAddr, port: bed.nodePort)
        XCTAssertTrue(fromLogin.connected, "login → node: \(fromLogin.error)")
        // The laptop has no route to it, nor to login's node-facing side: refused at once.
        let direct = try bed.tcpConnect(from: bed.laptopNS, host: bed.nodeAddr, port: bed.nodePort)
        XCTAssertFalse(direct.connected, "laptop reached node \(bed.nodeAddr):\(bed.nodePort) directly")
        XCTAssertLessThan(direct.seconds, 2.5, "the failure must be quick: \(direct.error)")
        let routes = try bed.inLaptop(["ip", "-4", "route", "show"], asUser: false)
        XCTAssertFalse(routes.stdoutText.contains("default"), routes.stdoutText)
        let loginRoutes = try IT.runner.run(["ip", "netns", "exec", bed.loginNS, "ip", "-4", "route", "show"])
        XCTAssertFalse(loginRoutes.stdoutText.contains("default"), loginRoutes.stdoutText)
        // Login does not forward between laptop and node.
        let forward = try IT.runner.run(["ip", "netns", "exec", bed.loginNS, "sysctl", "-n", "net.ipv4.ip_forward"])
        XCTAssertEqual(forward.stdoutText.trimmingCharacters(in: .whitespacesAndNewlines), "0")
        // And OpenSSH straight to node fails too.
        let ssh = try bed.inLaptop(bed.ssh + ["-o", "ConnectTimeout=2", Testbed.nodeAlias, "true"])
        XCTAssertNotEqual(ssh.exitCode, 0)
    }

    func testNodeSSHDListensOnlyOnTheLoginFacingAddress() throws {
        let pid = try XCTUnwrap(bed.sshdPID("node"))
        let listeners = try IT.runner.run(["ss", "-Hltnp"]).stdoutText.split(separator: "\n")
            .filter { $0.contains("pid=\(pid),") }
            .map { $0.split(separator: " ", omittingEmptySubsequences: true)[3] }
        XCTAssertEqual(listeners, ["\(bed.nodeAddr):\(bed.nodePort)"])
        let loginPID = try XCTUnwrap(bed.sshdPID("login"))
        let loginListeners = try IT.runner.run(["ip", "netns", "exec", bed.loginNS, "ss", "-Hltnp"]).stdoutText
            .split(separator: "\n").filter { $0.contains("pid=\(loginPID),") }
            .map { $0.split(separator: " ", omittingEmptySubsequences: true)[3] }
        XCTAssertEqual(loginListeners, ["\(bed.loginAddr):\(bed.loginPort)"])
    }

    func testProxyJumpThroughLoginReachesNode() throws {
        let r = try bed.inLaptop(bed.ssh + ["-J", Testbed.loginAlias, Testbed.nodeAlias, "id", "-un"])
        XCTAssertEqual(r.exitCode, 0, r.stderrText)
        XCTAssertEqual(r.stdoutText, "\(bed.user)\n")
    }

    /// What `--node-via exec` relies on: on login, the user's plain `ssh NODE` / `ssh -W NODE:22 NODE`
    /// (their ~/.ssh/config, shared home) reaches node with its host key checked.
    func testSSHWFromLoginReachesNodeAsTheTestUser() throws {
        let onLogin = try bed.inLogin(["ssh", "-o", "ConnectTimeout=5", bed.nodeAddr, "id", "-un"])
        XCTAssertEqual(onLogin.exitCode, 0, onLogin.stderrText)
        XCTAssertEqual(onLogin.stdoutText, "\(bed.user)\n")

        let proxy = "ssh -F \(bed.sshConfig) -o BatchMode=yes \(Testbed.loginAlias) ssh -W %h:%p %h"
        let r = try bed.inLaptop(bed.ssh + ["-o", "ProxyCommand=\(proxy)", Testbed.nodeAlias, "id", "-un"])
        XCTAssertEqual(r.exitCode, 0, r.stderrText)
        XCTAssertEqual(r.stdoutText, "\(bed.user)\n")
    }

    /// The keys the error tests use: the wrong key is refused; the RSA key is authorized (OpenSSH
    /// logs in with rsa-sha2-512) but refused with the ssh-rsa signature, the only one libssh2 1.10 makes.
    func testWrongAndRSAKeys() throws {
        let target = "\(bed.user)@\(bed.loginAddr)"
        let good = try bed.inLaptop(bed.plainSSH(key: bed.key) + [target, "true"])
        XCTAssertEqual(good.exitCode, 0, good.stderrText)
        let wrong = try bed.inLaptop(bed.plainSSH(key: bed.wrongKey) + [target, "true"])
        XCTAssertEqual(wrong.exitCode, 255)
        XCTAssertTrue(wrong.stderrText.contains("Permission denied"), wrong.stderrText)
        let rsa = try bed.inLaptop(bed.plainSSH(key: bed.rsaKey) + [target, "true"])
        XCTAssertEqual(rsa.exitCode, 0, rsa.stderrText)
        let sha1 = try bed.inLaptop(bed.plainSSH(key: bed.rsaKey) + ["-o", "PubkeyAcceptedAlgorithms=ssh-rsa", target, "true"])
        XCTAssertEqual(sha1.exitCode, 255)
    }

    func testLinkDownAndUp() throws {
        try bed.setLink(up: false)
        var restored = false
        defer { if !restored { try? bed.setLink(up: true) } }
        let down = try bed.tcpConnect(from: bed.laptopNS, host: bed.loginAddr, port: bed.loginPort, timeout: 2)
        XCTAssertFalse(down.connected, "login reachable with the link down")
        XCTAssertNotEqual(try Testbed.run(["status"]).exitCode, 0, "status says up with the link down")

        try bed.setLink(up: true)
        restored = true
        let deadline = Date().addingTimeInterval(5)
        var up = try bed.tcpConnect(from: bed.laptopNS, host: bed.loginAddr, port: bed.loginPort, timeout: 2)
        while !up.connected && Date() < deadline {
            usleep(100_000)
            up = try bed.tcpConnect(from: bed.laptopNS, host: bed.loginAddr, port: bed.loginPort, timeout: 2)
        }
        XCTAssertTrue(up.connected, up.error)
        let ssh = try bed.inLaptop(bed.ssh + [Testbed.loginAlias, "true"])
        XCTAssertEqual(ssh.exitCode, 0, ssh.stderrText)
        XCTAssertEqual(try Testbed.run(["status"]).exitCode, 0)
    }

    func testKillLoginSessionsEndsSessionsAndKeepsTheListener() throws {
        let dir = try IT.scratchDir("testbed")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let out = "\(dir)/session.out"
        let session = try bed.startInLaptop(bed.ssh + [Testbed.loginAlias, "echo started; exec sleep 60"],
                                            stdout: .file(out), stderr: .file("\(dir)/session.err"))
        defer { session.signal(SIGKILL); session.wait() }
        let started = Date()
        while (try? String(contentsOfFile: out, encoding: .utf8))?.contains("started") != true {
            guard Date().timeIntervalSince(started) < 10, session.exitStatusIfDone() == nil else {
                XCTFail("session did not start: \((try? String(contentsOfFile: "\(dir)/session.err", encoding: .utf8)) ?? "")")
                return
            }
            usleep(50_000)
        }
        let listener = bed.sshdPID("login")
        try bed.killLoginSessions()
        let killed = Date()
        while session.exitStatusIfDone() == nil && Date().timeIntervalSince(killed) < 5 { usleep(50_000) }
        XCTAssertEqual(session.exitStatusIfDone(), 255, "ssh did not see its session die")
        XCTAssertEqual(bed.sshdPID("login"), listener)
        let again = try bed.inLaptop(bed.ssh + [Testbed.loginAlias, "true"])
        XCTAssertEqual(again.exitCode, 0, again.stderrText)
    }

    /// `down` leaves no trace (namespaces, veths, sshds, state, the user's ~/.ssh/config byte for
    /// byte), is safe when nothing is up, and `up` brings it all back.
    func testDownLeavesNoTraceAndUpRestores() throws {
        try XCTSkipIf(IT.env["DBGBOX_TESTBED_KEEP"] == "1", "DBGBOX_TESTBED_KEEP=1")
        let config = "\(IT.user.home)/.ssh/config"
        let withBlock = try Data(contentsOf: URL(fileURLWithPath: config))
        try Testbed.down()
        defer { _ = try? Testbed.up() }
        let before = FileManager.default.contents(atPath: config)
        XCTAssertFalse(before.map { String(decoding: $0, as: UTF8.self).contains("dbgbox testbed") } ?? false)
        XCTAssertEqual(before?.count ?? 0, withBlock.count - blockLength(withBlock))
        try assertNoTrace()
        try Testbed.down()  // nothing up: still fine
        try assertNoTrace()

        bed = try Testbed.up()
        let after = try Data(contentsOf: URL(fileURLWithPath: config))
        XCTAssertTrue(String(decoding: after, as: UTF8.self).hasPrefix("# >>> dbgbox testbed"))
        XCTAssertEqual(after.suffix(from: blockLength(after)), before ?? Data())
        try Testbed.down()
        XCTAssertEqual(FileManager.default.contents(atPath: config), before)
        try assertNoTrace()
    }

    private func blockLength(_ data: Data) -> Int {
        let text = String(decoding: data, as: UTF8.self)
        guard let end = text.range(of: "# <<< dbgbox testbed <<<\n") else { return 0 }
        return text.utf8.distance(from: text.startIndex, to: end.upperBound)
    }

    private func assertNoTrace(file: StaticString = #filePath, line: UInt = #line) throws {
        let netns = try IT.runner.run(["ip", "netns", "list"]).stdoutText
        XCTAssertFalse(netns.contains(bed.laptopNS) || netns.contains(bed.loginNS), netns, file: file, line: line)
        let links = try IT.runner.run(["ip", "-o", "link", "show"]).stdoutText
        XCTAssertFalse(links.contains("dbgbox-"), links, file: file, line: line)
        let addrs = try IT.runner.run(["ip", "-o", "addr", "show"]).stdoutText
        XCTAssertFalse(addrs.contains(" 198.18.") || addrs.contains(" 198.19."), addrs, file: file, line: line)
        XCTAssertFalse(FileManager.default.fileExists(atPath: bed.stateDir), bed.stateDir, file: file, line: line)
        let ps = try IT.runner.run(["ps", "-eo", "args"]).stdoutText
        XCTAssertFalse(ps.contains("\(bed.stateDir)/"), "an sshd of the testbed still runs", file: file, line: line)
    }
}
