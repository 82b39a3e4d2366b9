import Foundation
import XCTest
@testable import DbgboxKit

/// The chained-tunnel testbed of scripts/testbed.sh, seen from tests: laptop (netns) → login (netns)
/// → node (the root namespace, where dockerd runs), each hop with its own OpenSSH sshd.
///
/// `Testbed.up()` brings it up (idempotent) and parses the env it prints. Commands run inside the
/// laptop or login namespace as the test user with a clean environment. Test classes call
/// `Testbed.downIfStartedHere()` in `class func tearDown()`: a testbed this process found already up
/// (a demo, another run) is left alone, and DBGBOX_TESTBED_KEEP=1 keeps it in any case.
struct Testbed: Sendable, Equatable {
    let laptopNS: String
    let loginNS: String
    let laptopAddr: String
    /// Login's address as the laptop sees it.
    let loginAddr: String
    /// Node's address as login sees it (the laptop has no route to it).
    let nodeAddr: String
    let loginPort: UInt16
    let nodePort: UInt16
    /// The test user's authorized ed25519 key (laptop → login and login → node).
    let key: String
    /// An authorized RSA key: OpenSSH logs in with it (rsa-sha2); libssh2 1.10 cannot.
    let rsaKey: String
    /// An ed25519 key neither sshd accepts.
    let wrongKey: String
    /// Both hosts' ed25519 and ECDSA keys, as `ADDR TYPE BASE64` lines.
    let knownHosts: String
    /// An ssh config with the aliases `tb-login` and `tb-node`.
    let sshConfig: String
    let stateDir: String
    let user: String
    /// Every variable the script printed.
    let variables: [String: String]

    static let loginAlias = "tb-login"
    static let nodeAlias = "tb-node"

    // MARK: lifecycle

    /// scripts/testbed.sh of this checkout (DBGBOX_TESTBED_SCRIPT overrides).
    static var script: String {
        if let path = IT.env["DBGBOX_TESTBED_SCRIPT"] { return path }
        return URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("scripts/testbed.sh").path
    }

    /// What the testbed needs; fails under CI=true, skips elsewhere.
    static func requirePrerequisites(file: StaticString = #filePath, line: UInt = #line) throws {
        try IT.require(getuid() == 0, "root (the testbed makes network namespaces)", file: file, line: line)
        for tool in ["ip", "ss", "ssh", "ssh-keygen", "setpriv", "timeout"] {
            try IT.require(LocalProcessRunner.resolve(tool, path: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin") != nil,
                           "\(tool) (scripts/bootstrap.sh installs iproute2, openssh, util-linux)", file: file, line: line)
        }
        try IT.require(FileManager.default.isExecutableFile(atPath: "/usr/sbin/sshd"), "OpenSSH sshd (openssh-server)", file: file, line: line)
        try IT.require(FileManager.default.isReadableFile(atPath: script), "scripts/testbed.sh at \(script)", file: file, line: line)
        try IT.require(UserIdentity.lookup(name: IT.testUser) != nil, "test user \(IT.testUser) (scripts/test.sh creates it)", file: file, line: line)
    }

    /// Runs `scripts/testbed.sh ARGS` (as root, for the test user).
    @discardableResult
    static func run(_ args: [String]) throws -> ProcessResult {
        var env = ProcessInfo.processInfo.environment
        env["DBGBOX_TEST_USER"] = IT.testUser
        return try LocalProcessRunner(environment: env).run(["bash", script] + args)
    }

    /// Whether every part of the testbed is up (`testbed.sh status` exits 0).
    static var isUp: Bool { (try? run(["status"]).succeeded) ?? false }

    /// Brings the testbed up (or repairs it) and returns its description.
    static func up(file: StaticString = #filePath, line: UInt = #line) throws -> Testbed {
        try requirePrerequisites(file: file, line: line)
        lifecycle.observeFirst { isUp }
        let result = try run(["up"])
        guard result.succeeded else {
            throw DbgboxError("scripts/testbed.sh up failed (\(result.exitCode)): \(result.stderrText)")
        }
        return try parse(result.stdoutText)
    }

    /// The running testbed's description (`testbed.sh env`), nil when it is not up.
    static func current() throws -> Testbed? {
        let result = try run(["env"])
        return result.succeeded ? try parse(result.stdoutText) : nil
    }

    /// Takes the testbed down unconditionally.
    static func down() throws {
        let result = try run(["down"])
        guard result.succeeded else {
            throw DbgboxError("scripts/testbed.sh down failed (\(result.exitCode)): \(result.stderrText)")
        }
    }

    /// Takes the testbed down if this process's first `up()` found it down (and DBGBOX_TESTBED_KEEP
    /// is not 1): it is left as this process found it.
    static func downIfStartedHere() {
        guard lifecycle.startedHere, IT.env["DBGBOX_TESTBED_KEEP"] != "1" else { return }
        do { try down() } catch { XCTFail("testbed down: \(error)") }
    }

    private final class Lifecycle: @unchecked Sendable {
        private let lock = NSLock()
        private var foundUp: Bool?
        /// Records, once per process, whether the testbed was already up before this process's first `up()`.
        func observeFirst(_ isUp: () -> Bool) { lock.withLock { if foundUp == nil { foundUp = isUp() } } }
        var startedHere: Bool { lock.withLock { foundUp == false } }
    }
    private static let lifecycle = Lifecycle()

    /// Parses `KEY=value` lines (an `export ` prefix and surrounding quotes are accepted).
    static func parse(_ text: String) throws -> Testbed {
        var vars: [String: String] = [:]
        for raw in text.split(separator: "\n") {
            var line = raw.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") { continue }
            if line.hasPrefix("export ") { line.removeFirst("export ".count) }
            guard let eq = line.firstIndex(of: "=") else { continue }
            var value = String(line[line.index(after: eq)...])
            if value.count >= 2, let q = value.first, q == "'" || q == "\"", value.last == q {
                value = String(value.dropFirst().dropLast())
            }
            vars[String(line[..<eq])] = value
        }
        func need(_ name: String) throws -> String {
            guard let v = vars[name], !v.isEmpty else { throw DbgboxError("testbed env lacks \(name)") }
            return v
        }
        func port(_ name: String) throws -> UInt16 {
            guard let p = UInt16(try need(name)) else { throw DbgboxError("testbed env: \(name) is not a port") }
            return p
        }
        return Testbed(laptopNS: try need("TB_LAPTOP_NS"), loginNS: try need("TB_LOGIN_NS"),
                       laptopAddr: vars["TB_LAPTOP_ADDR"] ?? "", loginAddr: try need("TB_LOGIN_ADDR"),
                       nodeAddr: try need("TB_NODE_ADDR"), loginPort: try port("TB_LOGIN_PORT"),
                       nodePort: try port("TB_NODE_PORT"), key: try need("TB_KEY"), rsaKey: try need("TB_RSA_KEY"),
                       wrongKey: try need("TB_WRONG_KEY"), knownHosts: try need("TB_KNOWN_HOSTS"),
                       sshConfig: try need("TB_SSH_CONFIG"), stateDir: try need("TB_STATE_DIR"),
                       user: try need("TB_USER"), variables: vars)
    }

    // MARK: control

    /// Sets the laptop-side veth down (`false`) or up (`true`).
    func setLink(up: Bool) throws {
        let result = try Self.run(["link", up ? "up" : "down"])
        guard result.succeeded else { throw DbgboxError("testbed link: \(result.stderrText)") }
    }

    /// Drops (`true`) or lets through (`false`) every packet between laptop and login.
    func setSilence(_ on: Bool) throws {
        let result = try Self.run(["silence", on ? "on" : "off"])
        guard result.succeeded else { throw DbgboxError("testbed silence: \(result.stderrText)") }
    }

    /// Kills the login sshd's per-connection processes; its listener stays.
    func killLoginSessions() throws {
        let result = try Self.run(["kill-login-sessions"])
        guard result.succeeded else { throw DbgboxError("testbed kill-login-sessions: \(result.stderrText)") }
    }

    /// The login / node sshd listener's pid.
    func sshdPID(_ host: String) -> pid_t? {
        guard let text = try? String(contentsOfFile: "\(stateDir)/\(host)/sshd.pid", encoding: .utf8) else { return nil }
        return pid_t(text.trimmingCharacters(in: .whitespacesAndNewlines))
    }

    // MARK: commands in the namespaces

    /// The argv prefix that runs a command in `ns`, as the test user (clean environment, HOME the
    /// user's home unless given) or as root.
    func prefix(ns: String, asUser: Bool, home: String? = nil, extraEnv: [String: String] = [:]) -> [String] {
        var argv = ["ip", "netns", "exec", ns]
        guard asUser else { return argv }
        let identity = IT.user
        // setpriv execs the command itself (runuser forks and waits): the pid we hold is the
        // command's, and signals reach it directly.
        argv += ["setpriv", "--reuid=\(identity.uid)", "--regid=\(identity.gid)", "--init-groups", "env", "-i",
                 "PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin", "USER=\(user)", "LOGNAME=\(user)",
                 "HOME=\(home ?? identity.home)", "LANG=C.UTF-8"]
        for (k, v) in extraEnv.sorted(by: { $0.key < $1.key }) { argv.append("\(k)=\(v)") }
        return argv
    }

    /// Runs `argv` in the laptop namespace and waits for it.
    func inLaptop(_ argv: [String], asUser: Bool = true, home: String? = nil, extraEnv: [String: String] = [:],
                  input: Data? = nil) throws -> ProcessResult {
        try IT.runner.run(prefix(ns: laptopNS, asUser: asUser, home: home, extraEnv: extraEnv) + argv, input: input)
    }

    /// Runs `argv` in the login namespace and waits for it.
    func inLogin(_ argv: [String], asUser: Bool = true, home: String? = nil, extraEnv: [String: String] = [:],
                 input: Data? = nil) throws -> ProcessResult {
        try IT.runner.run(prefix(ns: loginNS, asUser: asUser, home: home, extraEnv: extraEnv) + argv, input: input)
    }

    /// Starts a long-running `argv` in the laptop namespace (a tunnel); the caller signals and
    /// waits for it. Output goes to files (or pipes the caller drains).
    func startInLaptop(_ argv: [String], asUser: Bool = true, home: String? = nil, extraEnv: [String: String] = [:],
                       stdin: ChildProcess.Stdio = .null, stdout: ChildProcess.Stdio, stderr: ChildProcess.Stdio) throws -> ChildProcess {
        try ChildProcess(prefix(ns: laptopNS, asUser: asUser, home: home, extraEnv: extraEnv) + argv,
                         stdin: stdin, stdout: stdout, stderr: stderr)
    }

    /// Whether a TCP connect from `ns` (nil: the root namespace) to host:port succeeds within
    /// `timeout` seconds, and how long the attempt took.
    func tcpConnect(from ns: String?, host: String, port: UInt16, timeout: Int = 3) throws -> (connected: Bool, seconds: Double, error: String) {
        let probe = ["timeout", String(timeout), "bash", "-c", "exec 3<>/dev/tcp/\(host)/\(port)"]
        let start = Date()
        let result = try IT.runner.run((ns.map { ["ip", "netns", "exec", $0] } ?? []) + probe)
        return (result.succeeded, Date().timeIntervalSince(start), result.stderrText)
    }

    /// `ssh` as the laptop user would run it with the testbed's config: strict host key checking,
    /// never a prompt.
    var ssh: [String] {
        ["ssh", "-F", sshConfig, "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes", "-o", "ConnectTimeout=5"]
    }

    /// `ssh` with no config file: only the given key, the testbed's known_hosts.
    func plainSSH(key: String) -> [String] {
        ["ssh", "-F", "/dev/null", "-i", key, "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
         "-o", "StrictHostKeyChecking=yes", "-o", "UserKnownHostsFile=\(knownHosts)",
         "-o", "GlobalKnownHostsFile=/dev/null", "-o", "ConnectTimeout=5"]
    }
}
