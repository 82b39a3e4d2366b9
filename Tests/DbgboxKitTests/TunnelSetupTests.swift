import Foundation
import XCTest
@testable import DbgboxKit
import SSH

/// The tunnel command's own layer: hop resolution and credentials (TunnelPlanner) and the
/// host-key policy (HostKeyChecker). Fast: temp files only, no network.
final class TunnelSetupTests: XCTestCase {
    var dir = ""

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "dbgbox-tunnelsetup-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: "\(dir)/.ssh", withIntermediateDirectories: true)
    }

    override func tearDown() {
        try? FileManager.default.removeItem(atPath: dir)
    }

    func copyKey(_ fixture: String, to name: String) throws -> String {
        let src = URL(fileURLWithPath: try ThrowawayKeys.path(fixture))
        let dst = "\(dir)/.ssh/\(name)"
        try Data(contentsOf: src).write(to: URL(fileURLWithPath: dst))
        return dst
    }

    func planner(config: String = "", env: [String: String] = [:]) throws -> (TunnelPlanner, String) {
        let configPath = "\(dir)/.ssh/config"
        try config.write(toFile: configPath, atomically: true, encoding: .utf8)
        let resolver = SSHConfigResolver(home: dir, userName: "alice", localHostName: "laptop",
                                         userConfigPath: configPath, systemConfigPath: "/dev/null", environment: env)
        return (TunnelPlanner(resolver: resolver, home: dir, environment: env), configPath)
    }

    /// The dead-peer timeout follows OpenSSH: ServerAliveInterval × ServerAliveCountMax, and 30 s
    /// when no interval is set.
    func testDeadPeerTimeoutIsServerAliveIntervalTimesCountMax() throws {
        _ = try copyKey("ed25519_c", to: "id_dbgbox")
        for (config, keepalive, timeout) in [("", 15, 30.0), ("ServerAliveInterval 2\n", 2, 6),
                                             ("ServerAliveInterval 5\nServerAliveCountMax 4\n", 5, 20)] {
            let (planner, _) = try planner(config: config)
            let plan = try planner.plan(TunnelRequest(login: try HostSpec(parsing: "login"), node: try HostSpec(parsing: "node"),
                                                      targetPort: 2201))
            XCTAssertEqual(plan.configuration.keepaliveInterval, keepalive, config)
            XCTAssertEqual(plan.configuration.deadPeerTimeout, timeout, config)
        }
    }

    /// `dbgbox tunnel` logs each step of an outage once: a minute of failed attempts for the
    /// same reason is one line, not thirty.
    func testTunnelEventLogSaysEachStepOnce() {
        var log = TunnelEventLog()
        var lines: [String] = []
        lines += log.lines(for: .hopDown(.login, label: "login host", endpoint: "l:22", reason: "connection lost: Connection timed out"))
        lines += log.lines(for: .reconnecting(attempt: 1, delay: 0.25, lastError: "login host l:22: connection lost"))
        for attempt in 2...30 {
            lines += log.lines(for: .reconnecting(attempt: attempt, delay: 2, lastError: "login host l:22: cannot connect: timed out"))
        }
        lines += log.lines(for: .reconnecting(attempt: 31, delay: 2, lastError: "login host l:22: cannot connect: No route to host"))
        lines += log.lines(for: .connectionRefused(peer: "127.0.0.1:5", reason: "hops down"))
        lines += log.lines(for: .ready(listening: "127.0.0.1:2201"))
        XCTAssertEqual(lines, [
            "login host l:22 down: connection lost: Connection timed out",
            "reconnecting in 0.25 s (then every 2 s at most, until it works)",
            "reconnect attempt 1 failed: login host l:22: cannot connect: timed out",
            "reconnect attempt 30 failed: login host l:22: cannot connect: No route to host (trying on)",
            "reconnected after 31 attempts: 127.0.0.1:2201",
        ])
    }

    /// dbgbox builds the chain itself: a ProxyJump/ProxyCommand it does not use is said once
    /// (issue 12, item 7); a node's ProxyJump through the given login host is dbgbox's own route.
    func testProxyJumpAndProxyCommandThatAreNotUsedAreSaid() throws {
        _ = try copyKey("ed25519_c", to: "id_dbgbox")
        let (planner, _) = try planner(config: """
            Host cl
              HostName login.example.test
            Host gpu*
              ProxyJump cl
            Host other*
              ProxyJump bastion.example.test
            Host cmd*
              ProxyCommand nc %h %p
            Host jumpy
              HostName jumpy.example.test
              ProxyJump bastion.example.test
            """)
        func warnings(login: String, node: String) throws -> [String] {
            let plan = try planner.plan(TunnelRequest(login: try HostSpec(parsing: login), node: try HostSpec(parsing: node), targetPort: 2201))
            return (plan.login.resolved.warnings + plan.node.resolved.warnings).filter { $0.contains("Proxy") }
        }
        XCTAssertEqual(try warnings(login: "cl", node: "gpu07"), [])
        XCTAssertEqual(try warnings(login: "cl", node: "other1"),
                       ["ssh config gives ProxyJump bastion.example.test for the node other1; dbgbox does not use it and reaches the node through the login host cl"])
        XCTAssertEqual(try warnings(login: "cl", node: "cmd1"),
                       ["ssh config gives a ProxyCommand for the node cmd1; dbgbox does not run it and reaches the node through the login host cl (--node-via exec has the login host's own ssh reach it)"])
        XCTAssertEqual(try warnings(login: "jumpy", node: "n1"),
                       ["ssh config gives ProxyJump bastion.example.test for the login host jumpy; dbgbox does not use it and connects to jumpy.example.test directly"])
    }

    func testAliasesResolveAndTheLocalPortDefaultsToTheTargetPort() throws {
        let key = try copyKey("ed25519_c", to: "id_cluster")
        let dbgboxKey = try copyKey("ed25519_nocomment", to: "id_dbgbox")
        let (planner, _) = try planner(config: """
            Host cl
              HostName login.example.test
              User bob
              Port 2022
              IdentityFile ~/.ssh/id_cluster
            Host gpu*
              User bob
            """)
        let plan = try planner.plan(TunnelRequest(login: try HostSpec(parsing: "cl"), node: try HostSpec(parsing: "gpu07"),
                                                  targetPort: 2201))
        XCTAssertEqual(plan.configuration.login.host, "login.example.test")
        XCTAssertEqual(plan.configuration.login.port, 2022)
        XCTAssertEqual(plan.configuration.login.user, "bob")
        XCTAssertEqual(plan.configuration.node.host, "gpu07")
        XCTAssertEqual(plan.configuration.node.user, "bob")
        XCTAssertEqual(plan.configuration.localPort, 2201)
        XCTAssertEqual(plan.configuration.bindAddress, "127.0.0.1")
        // The config's key first, then dbgbox's own key as a default; the node has only the latter.
        XCTAssertEqual(plan.configuration.login.credentials,
                       [.keyFile(path: key, passphrase: nil), .keyFile(path: dbgboxKey, passphrase: nil)])
        XCTAssertEqual(plan.configuration.node.credentials, [.keyFile(path: dbgboxKey, passphrase: nil)])
        XCTAssertEqual(plan.configuration.nodeVia, .direct)
    }

    func testCommandLineBeatsConfig() throws {
        _ = try copyKey("ed25519_c", to: "id_dbgbox")
        let (planner, _) = try planner(config: "Host cl\n  HostName login.example.test\n  User bob\n  Port 2022\n")
        let plan = try planner.plan(TunnelRequest(login: try HostSpec(parsing: "carol@cl:2200"),
                                                  node: try HostSpec(parsing: "n1"), targetPort: 2201, localPort: 9000))
        XCTAssertEqual(plan.configuration.login.user, "carol")
        XCTAssertEqual(plan.configuration.login.port, 2200)
        XCTAssertEqual(plan.configuration.localPort, 9000)
    }

    func testAgentComesFirstAndDbgboxKeyIsADefault() throws {
        let key = try copyKey("ed25519_c", to: "id_dbgbox")
        let (planner, _) = try planner(env: ["SSH_AUTH_SOCK": "/tmp/agent.sock"])
        let plan = try planner.plan(TunnelRequest(login: HostSpec(host: "l"), node: HostSpec(host: "n"), targetPort: 2201))
        XCTAssertEqual(plan.login.hop.credentials, [.agent(socketPath: "/tmp/agent.sock"), .keyFile(path: key, passphrase: nil)])
    }

    func testExplicitRSAKeyIsRefusedWithTheReason() throws {
        let rsa = try copyKey("rsa_openssh", to: "id_rsa_explicit")
        let (planner, _) = try planner()
        XCTAssertThrowsError(try planner.plan(TunnelRequest(login: HostSpec(host: "l"), node: HostSpec(host: "n"),
                                                            targetPort: 2201, identityFiles: [rsa]))) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("rsa-sha2"), text)
            XCTAssertTrue(text.contains("dbgbox keygen"), text)
            XCTAssertFalse(text.contains("\n"))
        }
    }

    func testDefaultRSAKeyIsSkippedAndNamedWhenNothingElseIsLeft() throws {
        _ = try copyKey("rsa_openssh", to: "id_rsa")
        let (planner, _) = try planner()
        XCTAssertThrowsError(try planner.plan(TunnelRequest(login: HostSpec(host: "l"), node: HostSpec(host: "n"),
                                                            targetPort: 2201))) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("login host"), text)
            XCTAssertTrue(text.contains("id_rsa"), text)
            XCTAssertTrue(text.contains("dbgbox keygen"), text)
        }
    }

    func testEncryptedKeyIsListedForThePassphrasePrompt() throws {
        let key = try copyKey("encrypted_ed25519", to: "id_dbgbox")
        let (planner, _) = try planner()
        let plan = try planner.plan(TunnelRequest(login: HostSpec(host: "l"), node: HostSpec(host: "n"), targetPort: 2201))
        XCTAssertEqual(plan.login.encryptedKeys, [key])
        XCTAssertEqual(plan.node.encryptedKeys, [key])
    }

    func testMissingExplicitKeyAndBadPorts() throws {
        let (planner, _) = try planner()
        XCTAssertThrowsError(try planner.plan(TunnelRequest(login: HostSpec(host: "l"), node: HostSpec(host: "n"),
                                                            targetPort: 2201, loginIdentityFiles: ["~/.ssh/nope"])))
        _ = try copyKey("ed25519_c", to: "id_dbgbox")
        XCTAssertThrowsError(try planner.plan(TunnelRequest(login: HostSpec(host: "l"), node: HostSpec(host: "n"), targetPort: 0)))
        XCTAssertThrowsError(try planner.plan(TunnelRequest(login: HostSpec(host: "l"), node: HostSpec(host: "n"),
                                                            targetPort: 2201, localPort: 70000)))
    }

    func testExecRouteUsesTheResolvedNodeAddress() throws {
        _ = try copyKey("ed25519_c", to: "id_dbgbox")
        let (planner, _) = try planner(config: "Host gpu\n  HostName 10.9.8.7\n  User bob\n")
        let plan = try planner.plan(TunnelRequest(login: HostSpec(host: "l"), node: HostSpec(host: "gpu"),
                                                  targetPort: 2201, nodeVia: .exec))
        guard case .exec(let command) = plan.configuration.nodeVia else { return XCTFail("not exec") }
        XCTAssertTrue(command.contains("10.9.8.7:22"), "\(command)")
        XCTAssertFalse(command.contains("gpu"), "\(command)")
    }

    // MARK: host keys

    struct Answer: Prompter {
        var yes: Bool
        var isInteractive: Bool { true }
        func confirm(_ question: String) -> Bool { yes }
        func secret(_ prompt: String) -> String? { nil }
    }

    func plannedHop(host: String = "login.example.test", port: Int = 22, strict: String? = nil) throws -> PlannedHop {
        _ = try? copyKey("ed25519_c", to: "id_dbgbox")
        let (planner, _) = try planner(config: strict.map { "StrictHostKeyChecking \($0)\n" } ?? "")
        return try planner.plan(TunnelRequest(login: HostSpec(host: host, port: port), node: HostSpec(host: "n"),
                                              targetPort: 2201)).login
    }

    func hostKey(_ fixture: String) throws -> HostKey {
        let src = URL(fileURLWithPath: try ThrowawayKeys.path(fixture + ".pub"))
        let key = try SSHPublicKey(line: try String(contentsOf: src, encoding: .utf8))
        return HostKey(typeName: key.type, blob: key.blob)
    }

    func testHostKeyVerdicts() throws {
        let hop = try plannedHop(port: 2022)
        let file = "\(dir)/kh"
        let key = try hostKey("ed25519_c")
        let other = try hostKey("ed25519_nocomment")
        let original = "# mine\n[login.example.test]:2022 ssh-ed25519 \(other.blob.base64EncodedString())\n"
        try original.write(toFile: file, atomically: true, encoding: .utf8)

        // Changed: refused, naming file and line, the file untouched.
        let strict = HostKeyChecker(prompter: NoPrompter(), knownHostsOverride: file)
        XCTAssertThrowsError(try strict.check(hop, key: key)) { error in
            XCTAssertTrue("\(error)".contains("\(file):2"), "\(error)")
            XCTAssertTrue("\(error)".contains("CHANGED"), "\(error)")
        }
        // Even --accept-new never accepts a changed key.
        XCTAssertThrowsError(try HostKeyChecker(prompter: NoPrompter(), knownHostsOverride: file, acceptNew: true).check(hop, key: key))
        XCTAssertEqual(try String(contentsOfFile: file, encoding: .utf8), original)
        // Known: accepted.
        XCTAssertNoThrow(try strict.check(hop, key: other))

        // Unknown: refused without a terminal, appended (one line) with --accept-new or a "yes".
        let empty = "\(dir)/kh2"
        try "".write(toFile: empty, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try HostKeyChecker(prompter: NoPrompter(), knownHostsOverride: empty).check(hop, key: key)) { error in
            XCTAssertTrue("\(error)".contains("--accept-new"), "\(error)")
        }
        XCTAssertThrowsError(try HostKeyChecker(prompter: Answer(yes: false), knownHostsOverride: empty).check(hop, key: key))
        XCTAssertEqual(try String(contentsOfFile: empty, encoding: .utf8), "")
        XCTAssertNoThrow(try HostKeyChecker(prompter: Answer(yes: true), knownHostsOverride: empty).check(hop, key: key))
        XCTAssertEqual(try String(contentsOfFile: empty, encoding: .utf8),
                       "[login.example.test]:2022 ssh-ed25519 \(key.blob.base64EncodedString())\n")
        XCTAssertNoThrow(try strict.check(hop, key: other))
    }

    func testStrictHostKeyCheckingYesRefusesEvenWithATerminal() throws {
        let hop = try plannedHop(strict: "yes")
        let empty = "\(dir)/kh3"
        try "".write(toFile: empty, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try HostKeyChecker(prompter: Answer(yes: true), knownHostsOverride: empty).check(hop, key: try hostKey("ed25519_c")))
        XCTAssertEqual(HostKeyChecker(prompter: NoPrompter(), acceptNew: true).unknownKeyPolicy(for: hop), .acceptNew)
    }
}
