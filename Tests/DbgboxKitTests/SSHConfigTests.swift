import Foundation
import XCTest
@testable import DbgboxKit

/// Fast checks of host specs and config resolution, with expectations recorded from OpenSSH 9.2's
/// `ssh -G` on Fixtures/ssh_config/home (see SSHConfigDifferentialTests for the live comparison).
final class SSHConfigTests: XCTestCase {
    let fs = LocalFileSystem()
    var home = ""

    override func setUpWithError() throws {
        home = NSTemporaryDirectory() + "dbgbox-sshcfg-unit-\(UUID().uuidString.prefix(8))"
        let fixture = try XCTUnwrap(Bundle.module.url(forResource: "Fixtures", withExtension: nil))
            .appendingPathComponent("ssh_config/home").path
        try FileManager.default.copyItem(atPath: fixture, toPath: home)
        for path in ["\(home)/.ssh/config", "\(home)/.ssh/config.d/10-gpu.conf"] { try fs.setMode(0o600, of: path) }
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: home) }

    func resolver(system: String = "/nonexistent/ssh_config") -> SSHConfigResolver {
        SSHConfigResolver(home: home, userName: "tester", fs: fs, localHostName: "laptop.example", uid: 1000,
                          systemConfigPath: system, environment: ["KEYS": "/keys"])
    }

    func resolve(_ spec: String, _ overrides: SSHConfigOverrides = SSHConfigOverrides()) throws -> ResolvedHost {
        try resolver().resolve(spec: HostSpec(parsing: spec), overrides: overrides)
    }

    // MARK: - HostSpec

    func testHostSpecForms() throws {
        XCTAssertEqual(try HostSpec(parsing: "login"), HostSpec(host: "login"))
        XCTAssertEqual(try HostSpec(parsing: "alice@login:2222"), HostSpec(user: "alice", host: "login", port: 2222))
        XCTAssertEqual(try HostSpec(parsing: "a@b@login"), HostSpec(user: "a@b", host: "login"), "the last @ splits, as in ssh")
        XCTAssertEqual(try HostSpec(parsing: "[::1]:2200"), HostSpec(host: "::1", port: 2200))
        XCTAssertEqual(try HostSpec(parsing: "bob@[fe80::1]"), HostSpec(user: "bob", host: "fe80::1"))
        XCTAssertEqual(try HostSpec(parsing: "fe80::1"), HostSpec(host: "fe80::1"), "a bare IPv6 address has no port")
        XCTAssertEqual(HostSpec(user: "u", host: "::1", port: 22).description, "u@[::1]:22")
    }

    func testHostSpecErrors() {
        let bad: [(String, String)] = [
            ("", "it is empty"), ("@host", "the user name before '@' is empty"), ("user@", "the host name is empty"),
            (":22", "the host name is empty"), ("host:0", "the port \"0\" is not a number from 1 to 65535"),
            ("host:65536", "the port \"65536\" is not a number from 1 to 65535"), ("host:", "the port \"\" is not a number from 1 to 65535"),
            ("host:22x", "the port \"22x\" is not a number from 1 to 65535"), ("[::1", "'[' has no matching ']'"),
            ("[::1]x", "only ':PORT' may follow ']'"), ("-oProxyCommand=x", "a host name cannot start with '-'"),
            ("a b", "it contains a blank or control character"),
        ]
        for (text, why) in bad {
            XCTAssertThrowsError(try HostSpec(parsing: text), text) { error in
                XCTAssertEqual(error as? SSHConfigError, .badHostSpec(text, why))
                XCTAssertFalse("\(error)".contains("\n"))
                XCTAssertTrue("\(error)".hasSuffix("use [USER@]HOST[:PORT], e.g. alice@login.example.org:2222"))
            }
        }
    }

    // MARK: - Recorded ssh -G results

    func testAliasWithRelativeIncludeAndTokens() throws {
        let login = try resolve("login")
        XCTAssertEqual(login.hostName, "login.cluster.example")
        XCTAssertEqual(login.user, "alice")
        XCTAssertEqual(login.port, 22)
        XCTAssertEqual(login.identityFilesAsWritten, ["~/.ssh/id_cluster", "%d/.ssh/id_%r@%h"])
        XCTAssertEqual(login.identityFiles, ["\(home)/.ssh/id_cluster", "\(home)/.ssh/id_alice@login.cluster.example"])
        XCTAssertEqual(login.serverAliveInterval, 30)
        XCTAssertNil(login.proxyJump)
        XCTAssertEqual(login.userKnownHostsFiles, ["\(home)/.ssh/known_hosts", "\(home)/.ssh/known_hosts2"])
        XCTAssertEqual(login.knownHostsName, "login.cluster.example")

        let gpu = try resolve("gpu")
        XCTAssertEqual([gpu.hostName, gpu.user, "\(gpu.port)"], ["gpu-gpu.example", "tester", "2201"])
        XCTAssertEqual(gpu.knownHostsName, "[gpu-gpu.example]:2201")
    }

    func testMatchExecIsFalseWithAWarning() throws {
        let node = try resolve("node7")
        XCTAssertEqual([node.hostName, node.user], ["node7", "alice"])
        XCTAssertEqual(node.proxyJump, "login")
        XCTAssertEqual(node.warnings, ["\(home)/.ssh/config line 13: Match exec \"test -t 0\" was taken as false: dbgbox does not run commands from ssh config"])
        XCTAssertEqual(try resolve("other").warnings.count, 1, "exec comes before host on that line, so ssh would run it")
        let skipped = try resolve("h", try write("Match host nomatch exec \"rm -rf /\"\n  User x\n"))
        XCTAssertEqual(skipped.warnings, [], "ssh skips exec once an earlier criterion failed")
        let negated = try resolve("h", try write("Match !exec false\n  User negated\n"))
        XCTAssertEqual(negated.user, "negated", "!exec of a command taken as false is true")
    }

    func testCommandLinePrecedence() throws {
        let r = try resolve("bob@gpu:3000", SSHConfigOverrides(identityFiles: ["~/cli_key"], options: ["Port 4000", "User opt"]))
        XCTAssertEqual([r.user, "\(r.port)"], ["opt", "4000"], "-o lines come before user@ and :PORT, as in ssh")
        XCTAssertEqual(r.identityFilesAsWritten, ["\(home)/cli_key", "%d/.ssh/id_%r@%h"])
        let l = try resolve("bob@gpu:3000", SSHConfigOverrides(user: "lee", port: 3100))
        XCTAssertEqual([l.user, "\(l.port)"], ["lee", "3100"])
        let s = try resolve("bob@gpu:3000")
        XCTAssertEqual([s.user, "\(s.port)"], ["bob", "3000"])
    }

    func testSystemConfigComesAfterUserConfig() throws {
        let system = "\(home)/ssh_config"
        try fs.writeAtomically(Data("Host *\n  User system\n  Port 2999\n  IdentityFile /etc/key\n".utf8), to: system, mode: 0o644)
        let r = try resolver(system: system).resolve(spec: HostSpec(host: "gpu"))
        XCTAssertEqual([r.user, "\(r.port)"], ["system", "2201"])
        XCTAssertEqual(r.identityFilesAsWritten, ["%d/.ssh/id_%r@%h", "/etc/key"])
    }

    // MARK: - Errors ssh also refuses

    func write(_ text: String) throws -> SSHConfigOverrides {
        let path = "\(home)/explicit.conf"
        try fs.writeAtomically(Data(text.utf8), to: path, mode: 0o600)
        return SSHConfigOverrides(configFile: path)
    }

    func assertBadLine(_ text: String, line: Int, _ why: String, file: StaticString = #filePath, lineNumber: UInt = #line) throws {
        let overrides = try write(text)
        XCTAssertThrowsError(try resolve("h", overrides), file: file, line: lineNumber) { error in
            XCTAssertEqual(error as? SSHConfigError, .badLine(file: overrides.configFile!, line: line, why), file: file, line: lineNumber)
        }
    }

    func testBadLines() throws {
        try assertBadLine("Host h\n  Colour blue\n", line: 2, "bad configuration option \"colour\"")
        try assertBadLine("Host x\n  Port 70000\n", line: 2, "bad port '70000'")
        try assertBadLine("User \"unclosed\n", line: 1, "invalid quotes")
        try assertBadLine("User a b\n", line: 1, "keyword user extra arguments at end of line")
        try assertBadLine("Hostname\n", line: 1, "no argument after keyword \"hostname\"")
        try assertBadLine("Match host\n", line: 1, "missing Match criteria for host")
        try assertBadLine("Match all host x\n", line: 1, "'all' cannot be combined with other Match attributes")
        try assertBadLine("Match nothing x\n", line: 1, "unsupported Match attribute nothing")
        try assertBadLine("StrictHostKeyChecking maybe\n", line: 1, "unsupported option \"maybe\"")
        try assertBadLine("UserKnownHostsFile none /x\n", line: 1, "\"none\" must appear alone in userknownhostsfile")
        try assertBadLine("ProxyJump @bad\n", line: 1, "invalid ProxyJump \"@bad\"")
        XCTAssertNoThrow(try resolve("h", try write("IgnoreUnknown colour\nColour blue\n")))
    }

    func testOtherErrors() throws {
        XCTAssertThrowsError(try resolve("h", SSHConfigOverrides(configFile: "\(home)/missing"))) {
            XCTAssertEqual($0 as? SSHConfigError, .unreadableConfig("\(home)/missing"))
        }
        try fs.setMode(0o666, of: "\(home)/.ssh/config")
        XCTAssertThrowsError(try resolve("h")) {
            XCTAssertEqual($0 as? SSHConfigError, .unsafePermissions("\(home)/.ssh/config"))
        }
        XCTAssertThrowsError(try resolve("h", try write("HostName %z.example\n"))) {
            XCTAssertEqual($0 as? SSHConfigError, .badExpansion(keyword: "HostName", value: "%z.example", "unknown token %z"))
        }
        let loop = try write("")
        try fs.writeAtomically(Data("Include \(loop.configFile!)\n".utf8), to: loop.configFile!, mode: 0o600)
        XCTAssertThrowsError(try resolve("h", loop)) { XCTAssertEqual($0 as? SSHConfigError, .includeTooDeep(loop.configFile!)) }
    }

    func testDollarExpansionAndAgent() throws {
        let r = try resolve("h", try write("IdentityFile ${KEYS}/%u\nIdentityAgent ~/agent.sock\n"))
        XCTAssertEqual(r.identityFiles, ["/keys/tester"])
        XCTAssertEqual(r.identityAgent, "\(home)/agent.sock")
        XCTAssertThrowsError(try resolve("h", try write("IdentityFile ${NOPE}/k\n")))
    }

    func testLineSplitting() throws {
        XCTAssertEqual(try SSHConfigLine.parse("  Host=a b # c"), SSHConfigLine(keyword: "host", rest: "a b # c", args: ["a", "b"]))
        XCTAssertEqual(try SSHConfigLine.parse("X \"a b\" 'c d' e\\ f"), SSHConfigLine(keyword: "x", rest: "\"a b\" 'c d' e\\ f", args: ["a b", "c d", "e f"]))
        XCTAssertNil(try SSHConfigLine.parse("   # only a comment"))
        XCTAssertNil(try SSHConfigLine.parse("\t\r"))
        XCTAssertEqual(SSHConfigLine.strdelimTokens("host=a user b").tokens, ["host", "a", "user", "b"])
        XCTAssertEqual(SSHConfigResolver.convtime("1m30s"), 90)
        XCTAssertNil(SSHConfigResolver.convtime("1x"))
        XCTAssertEqual(SSHConfigResolver.renderProxyJump("ssh://u@[::1]:2200,a@b"), "ssh://u@[::1]:2200,a@b")
        XCTAssertEqual(SSHConfigResolver.renderProxyJump("x,ssh://u@10.0.0.1:2200"), "x,u@[10.0.0.1]:2200")
    }
}
