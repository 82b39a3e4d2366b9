import Foundation
import XCTest
@testable import DbgboxKit
#if canImport(Glibc)
import Glibc
#endif

/// The proof that `SSHConfigResolver` reads ssh_config as OpenSSH does: for every case, the
/// config files are written to a temp directory, and our resolution must print, field by field,
/// what `ssh -G -F FILE [-p P] [-l U] [USER@]HOST` prints. A second test checks the expanded
/// IdentityFile paths against the ones ssh itself tries (`ssh -v` through a dead ProxyCommand).
///
/// ssh expands `~` and `%d` with the passwd home, not $HOME, so the resolver is given the
/// running user's passwd entry and ssh runs with the environment unchanged.
final class SSHConfigDifferentialTests: XCTestCase {
    struct Case {
        var name: String
        /// File name → contents; `@DIR@` stands for the temp directory. "config" is the -F file.
        var files: [String: String]
        var host: String
        var port: Int? = nil
        var loginName: String? = nil
    }

    var dir = ""
    var me: UserIdentity!
    var thisHost = ""

    override func setUpWithError() throws {
        try IT.require(LocalProcessRunner.resolve("ssh") != nil, "ssh (openssh-client)")
        dir = NSTemporaryDirectory() + "dbgbox-sshcfg-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        me = try XCTUnwrap(UserIdentity.lookup(uid: getuid()))
        var buffer = [CChar](repeating: 0, count: 256)
        gethostname(&buffer, buffer.count)
        thisHost = String(cString: buffer)
    }

    override func tearDownWithError() throws {
        if !dir.isEmpty { try? FileManager.default.removeItem(atPath: dir) }
    }

    static let cases: [Case] = [
        Case(name: "alias with HostName, User, Port", files: ["config": """
            Host web
                HostName web.internal.example
                User deploy
                Port 2200
            """], host: "web"),
        Case(name: "no config entry: defaults", files: ["config": "# nothing\n"], host: "plain.example"),
        Case(name: "host argument is lowercased", files: ["config": "Host foo\n  Port 2\n"], host: "Mixed.Case.Example"),
        Case(name: "Host patterns are case-sensitive", files: ["config": "Host foo\n  Port 2\n"], host: "FOO"),
        Case(name: "HostName is lowercased", files: ["config": "Host a\n  HostName UPPER.Example\n"], host: "a"),
        Case(name: "IPv6 HostName is not lowercased", files: ["config": "Host v6\n  HostName FE80::A\n"], host: "v6"),
        Case(name: "wildcard *", files: ["config": "Host *.corp\n  User corpuser\n  Port 2022\n"], host: "box.corp"),
        Case(name: "wildcard ?", files: ["config": "Host node??\n  User n\nHost *\n  User fallback\n"], host: "node07"),
        Case(name: "? does not match two characters", files: ["config": "Host node?\n  User n\nHost *\n  User fallback\n"], host: "node07"),
        Case(name: "negation excludes", files: ["config": "Host *.corp !bastion.corp\n  ProxyJump bastion.corp\n"], host: "bastion.corp"),
        Case(name: "negation order does not matter", files: ["config": "Host !bastion.corp *.corp\n  ProxyJump jump@bastion.corp:2222\n"], host: "x.corp"),
        Case(name: "only a negation never matches", files: ["config": "Host !foo\n  User never\n"], host: "bar"),
        Case(name: "several patterns on one Host line", files: ["config": "Host alpha beta gamma\n  User greek\n"], host: "beta"),
        Case(name: "first obtained value wins", files: ["config": """
            Host gpu*
                User first
                Port 1111
            Host gpu1
                User second
                Port 2222
                HostName gpu1.example
            """], host: "gpu1"),
        Case(name: "Host * defaults at the top win", files: ["config": """
            Host *
                User topdefault
                IdentitiesOnly yes
            Host special
                User special
                IdentitiesOnly no
            """], host: "special"),
        Case(name: "Host * defaults at the bottom lose", files: ["config": """
            Host special
                User special
            Host *
                User bottomdefault
                StrictHostKeyChecking accept-new
            """], host: "special"),
        Case(name: "= syntax, odd spacing and case", files: ["config": """
            HOST=eq
              hostname=eq.example
              USER = equser
              port= 2022
            \tIdentityFile\t=\t~/.ssh/eq_key
            """], host: "eq"),
        Case(name: "quoted values", files: ["config": """
            Host "quoted"
              IdentityFile "~/My Keys/id_ed25519"
              UserKnownHostsFile "/tmp/a b/known" /tmp/plain
              User "q user"
            """], host: "quoted"),
        Case(name: "comments at end of lines", files: ["config": """
            # leading comment
            Host c1 # the c1 box
              User cuser # trailing
              Port 2201   # port
            """], host: "c1"),
        Case(name: "IdentityFile accumulates across blocks", files: ["config": """
            Host acc
              IdentityFile ~/.ssh/one
            Host a*
              IdentityFile ~/.ssh/two
              IdentityFile ~/.ssh/one
            Host *
              IdentityFile /abs/three
            """], host: "acc"),
        Case(name: "IdentityFile tokens", files: ["config": """
            Host tok
              HostName Tok.Example
              User ruser
              Port 2345
              IdentityFile %d/keys/%u@%l/%h_%r_%p_%%
              IdentityFile ~/.ssh/%n-%k-%L-%i-%C
            """], host: "tok"),
        Case(name: "IdentityFile none", files: ["config": "Host n\n  IdentityFile none\n"], host: "n"),
        Case(name: "HostName with %h", files: ["config": "Host short*\n  HostName %h.cluster.example\n"], host: "short3"),
        Case(name: "HostName %h with %%", files: ["config": "Host pct\n  HostName %h%%x\n"], host: "pct"),
        Case(name: "-p beats Port", files: ["config": "Host cp\n  Port 2200\n"], host: "cp", port: 2999),
        Case(name: "user@ beats User", files: ["config": "Host cu\n  User configuser\n"], host: "cliuser@cu"),
        Case(name: "-l beats user@ and User", files: ["config": "Host cl\n  User configuser\n"], host: "atuser@cl", loginName: "luser"),
        Case(name: "Match all", files: ["config": "Match all\n  User matchall\n"], host: "anything"),
        Case(name: "Match host uses HostName", files: ["config": """
            Host short
              HostName long.example.org
            Match host *.example.org
              User via-match
            """], host: "short"),
        Case(name: "Match originalhost", files: ["config": """
            Host orig
              HostName elsewhere.example
            Match originalhost orig
              Port 2444
            Match originalhost elsewhere.example
              Port 2555
            """], host: "orig"),
        Case(name: "Match user sees the command-line user", files: ["config": "Match user alice\n  Port 3001\nMatch user bob\n  Port 3002\n"], host: "bob@mu"),
        Case(name: "Match user after User in config", files: ["config": "Host mu2\n  User carol\nMatch user carol\n  IdentitiesOnly yes\n"], host: "mu2"),
        Case(name: "Match negated host", files: ["config": "Match !host *.internal\n  User outside\n"], host: "a.example"),
        Case(name: "Match several criteria", files: ["config": "Match host m.example user dave\n  Port 4040\nMatch host m.example user erin\n  Port 5050\n"], host: "dave@m.example"),
        Case(name: "Match final pass", files: ["config": """
            Host fin
              HostName Final.Example
            Match final host final.example
              User finaluser
            Host final.example
              Port 6060
            """], host: "fin"),
        Case(name: "Match with = between criterion and pattern", files: ["config": "Match host=eq.example user=root\n  Port 2626\n"], host: "root@eq.example"),
        Case(name: "Match canonical without canonicalization", files: ["config": "Match canonical\n  User canon\n"], host: "c"),
        Case(name: "Match exec that fails", files: ["config": "Match exec \"exit 1\"\n  User execuser\n"], host: "x"),
        Case(name: "Include with a glob, in order", files: [
            "config": "Include @DIR@/conf.d/*.conf\nHost *\n  User after-include\n",
            "conf.d/20-b.conf": "Host inc\n  Port 2020\n  IdentityFile ~/.ssh/from-b\n",
            "conf.d/10-a.conf": "Host inc\n  HostName inc.example\n  IdentityFile ~/.ssh/from-a\n",
        ], host: "inc"),
        Case(name: "Include inside a Host block applies only there", files: [
            "config": "Host other\n  Include @DIR@/inner.conf\nHost target\n  User t\n",
            "inner.conf": "User should-not-apply\nPort 9\n",
        ], host: "target"),
        Case(name: "Include with ~ relative path", files: [
            "config": "Include ~/../..@DIR@/tilde.conf\n",
            "tilde.conf": "Host tilde\n  Port 3131\n",
        ], host: "tilde"),
        Case(name: "Include that matches nothing", files: ["config": "Include @DIR@/none/*.conf\nHost *\n  Port 2323\n"], host: "z"),
        Case(name: "Match in an included file does not leak", files: [
            "config": "Include @DIR@/m.conf\nUser outer\n",
            "m.conf": "Match host nothing-matches\n",
        ], host: "leak"),
        Case(name: "ProxyJump chain", files: ["config": "Host node\n  ProxyJump alice@login1.example:2200,login2.example\n"], host: "node"),
        Case(name: "ProxyJump with an IPv6 address", files: ["config": "Host n6\n  ProxyJump [2001:db8::1]:2222\n"], host: "n6"),
        Case(name: "ProxyJump none", files: ["config": "Host pn\n  ProxyJump none\nHost *\n  ProxyJump never.example\n"], host: "pn"),
        Case(name: "ProxyCommand before ProxyJump", files: ["config": "Host pc\n  ProxyCommand ssh -W %h:%p gw # keep\nHost *\n  ProxyJump gw2\n"], host: "pc"),
        Case(name: "known hosts and alias", files: ["config": """
            Host kh
              UserKnownHostsFile ~/.ssh/kh_one %d/kh_%h_%p
              HostKeyAlias kh-alias
              StrictHostKeyChecking yes
              HashKnownHosts yes
            """], host: "kh"),
        Case(name: "UserKnownHostsFile none", files: ["config": "Host khn\n  UserKnownHostsFile none\n  StrictHostKeyChecking no\n"], host: "khn"),
        Case(name: "keepalive and timeouts", files: ["config": """
            Host ka
              ServerAliveInterval 1m30s
              ServerAliveCountMax 5
              ConnectTimeout 7
              AddKeysToAgent confirm
            """], host: "ka"),
        Case(name: "unused keywords are accepted", files: ["config": """
            Host many
              ForwardAgent yes
              Ciphers aes128-ctr
              LocalForward 8080 127.0.0.1:80
              SendEnv LANG LC_*
              ControlMaster auto
              ControlPath ~/.ssh/cm-%C
              User many
            """], host: "many"),
        Case(name: "IgnoreUnknown", files: ["config": "IgnoreUnknown UseKeychain,AddToKeychain\nHost *\n  UseKeychain yes\n  User ign\n"], host: "ign"),
        Case(name: "user@ IPv4 address", files: ["config": "Host 10.1.*\n  Port 2210\n"], host: "root@10.1.2.3"),
    ]

    /// Writes a case's config files under `caseDir`, with @DIR@ replaced by it.
    func writeFiles(of testCase: Case, into caseDir: String) throws {
        for (name, text) in testCase.files {
            let path = "\(caseDir)/\(name)"
            try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent,
                                                    withIntermediateDirectories: true)
            try LocalFileSystem().writeAtomically(Data(text.replacingOccurrences(of: "@DIR@", with: caseDir).utf8),
                                                  to: path, mode: 0o644)
        }
    }

    func testResolutionMatchesSSHG() throws {
        XCTAssertGreaterThanOrEqual(Self.cases.count, 30)
        var failures: [String] = []
        for (index, testCase) in Self.cases.enumerated() {
            let caseDir = "\(dir)/case\(index)"
            try writeFiles(of: testCase, into: caseDir)
            let config = "\(caseDir)/config"
            let expected = try sshG(config: config, testCase)
            let ours = try resolve(config: config, testCase)
            for key in Self.comparedKeys where expected[key] != ours[key] {
                failures.append("case \(index) \"\(testCase.name)\" \(key): ssh -G \(expected[key] ?? []) ours \(ours[key] ?? [])")
            }
        }
        XCTAssertEqual(failures, [], failures.joined(separator: "\n"))
    }

    static let comparedKeys = ["hostname", "user", "port", "identityfile", "proxyjump", "proxycommand",
                               "userknownhostsfile", "hostkeyalias", "stricthostkeychecking", "identitiesonly",
                               "hashknownhosts", "connecttimeout", "serveraliveinterval", "serveralivecountmax",
                               "addkeystoagent", "certificatefile"]

    func sshArgs(config: String, _ testCase: Case) -> [String] {
        var argv = ["-F", config]
        if let port = testCase.port { argv += ["-p", "\(port)"] }
        if let login = testCase.loginName { argv += ["-l", login] }
        return argv + [testCase.host]
    }

    /// `ssh -G` output as keyword → values (repeated keywords in order).
    func sshG(config: String, _ testCase: Case) throws -> [String: [String]] {
        let result = try IT.runner.run(["ssh", "-G"] + sshArgs(config: config, testCase))
        XCTAssertTrue(result.succeeded, "\(testCase.name): \(result.stderrText)")
        var fields: [String: [String]] = [:]
        for line in result.stdoutText.split(separator: "\n") {
            let parts = line.split(separator: " ", maxSplits: 1)
            guard parts.count == 2 else { continue }
            fields[String(parts[0]), default: []].append(String(parts[1]))
        }
        return fields.filter { Self.comparedKeys.contains($0.key) }
    }

    func resolver() -> SSHConfigResolver {
        SSHConfigResolver(home: me.home, userName: me.name, fs: LocalFileSystem(), localHostName: thisHost)
    }

    func resolved(config: String, _ testCase: Case) throws -> ResolvedHost {
        try resolver().resolve(spec: HostSpec(parsing: testCase.host),
                               overrides: SSHConfigOverrides(user: testCase.loginName, port: testCase.port, configFile: config))
    }

    /// Our resolution printed the way dump_client_config prints it.
    func resolve(config: String, _ testCase: Case) throws -> [String: [String]] {
        let r = try resolved(config: config, testCase)
        var fields: [String: [String]] = [
            "hostname": [r.hostName], "user": [r.user], "port": ["\(r.port)"],
            "identityfile": r.identityFilesAsWritten,
            "stricthostkeychecking": [r.strictHostKeyChecking.rawValue],
            "identitiesonly": [r.identitiesOnly ? "yes" : "no"], "hashknownhosts": [r.hashKnownHosts ? "yes" : "no"],
            "connecttimeout": [r.connectTimeout.map(String.init) ?? "none"],
            "serveraliveinterval": ["\(r.serverAliveInterval)"], "serveralivecountmax": ["\(r.serverAliveCountMax)"],
            "addkeystoagent": [r.addKeysToAgent.rawValue],
        ]
        fields["userknownhostsfile"] = [r.userKnownHostsFiles.isEmpty ? "none" : r.userKnownHostsFiles.joined(separator: " ")]
        if let jump = r.proxyJump { fields["proxyjump"] = [jump] }
        if let command = r.proxyCommand { fields["proxycommand"] = [command] }
        if let alias = r.hostKeyAlias { fields["hostkeyalias"] = [alias] }
        if !r.certificateFiles.isEmpty { fields["certificatefile"] = r.certificateFiles }
        return fields
    }

    /// The identity files ssh really tries, `~` and `%` tokens expanded, seen in `ssh -v` output:
    /// ssh loads them once its ProxyCommand has started, before the (here failing) handshake.
    func testExpandedIdentityFilesMatchWhatSSHLoads() throws {
        let expandable = Self.cases.enumerated().filter { _, c in
            c.files["config"].map { !$0.contains("ProxyJump") && !$0.contains("ProxyCommand") } ?? false
        }
        var failures: [String] = []
        for (index, testCase) in expandable {
            let caseDir = "\(dir)/v\(index)"
            try writeFiles(of: testCase, into: caseDir)
            let config = "\(caseDir)/config"
            let result = try IT.runner.run(["ssh", "-v", "-o", "ProxyCommand=exit 0", "-o", "BatchMode=yes"]
                                           + sshArgs(config: config, testCase))
            // ssh logs "\r\n"-terminated lines, and tries FILE-cert after each FILE.
            var loaded: [String] = []
            for line in result.stderrText.replacingOccurrences(of: "\r", with: "").split(separator: "\n") {
                guard line.hasPrefix("debug1: identity file "), let typeAt = line.range(of: " type ", options: .backwards) else { continue }
                let path = String(line[line.index(line.startIndex, offsetBy: 22)..<typeAt.lowerBound])
                if let last = loaded.last, path == last + "-cert" { continue }
                loaded.append(path)
            }
            let ours = try resolved(config: config, testCase).identityFiles
            if loaded != ours { failures.append("case \(index) \"\(testCase.name)\": ssh \(loaded) ours \(ours)") }
        }
        XCTAssertEqual(failures, [], failures.joined(separator: "\n"))
    }
}

/// KnownHostsVerifier against OpenSSH's own reading of the same files: whether `ssh-keygen -F NAME -f FILE`
/// finds a host agrees with match/mismatch vs notFound, and every line `appendLine` writes (plain
/// and hashed) is found by `ssh-keygen -F` under the name ssh looks up.
final class KnownHostsVerifierDifferentialTests: XCTestCase {
    var dir = ""
    let fs = LocalFileSystem()

    override func setUpWithError() throws {
        try IT.require(LocalProcessRunner.resolve("ssh-keygen") != nil, "ssh-keygen (openssh-client)")
        dir = NSTemporaryDirectory() + "dbgbox-khvdiff-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { if !dir.isEmpty { try? FileManager.default.removeItem(atPath: dir) } }

    func newKey(_ name: String) throws -> SSHPublicKey {
        let path = "\(dir)/\(name)"
        let r = try IT.runner.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "", "-f", path])
        XCTAssertTrue(r.succeeded, r.stderrText)
        return try SSHPublicKey(line: String(decoding: try fs.read(path + ".pub"), as: UTF8.self))
    }

    /// Line numbers of the entries `ssh-keygen -F name` prints (its "# Host … found: line N" comments).
    func keygenFound(_ name: String, in file: String) throws -> [Int] {
        let r = try IT.runner.run(["ssh-keygen", "-F", name, "-f", file])
        return r.stdoutText.split(separator: "\n").compactMap { line in
            line.hasPrefix("# Host ") ? line.split(separator: " ").last.flatMap { Int($0) } : nil
        }
    }

    func testFoundAgreesWithSSHKeygen() throws {
        let key = try newKey("k1"), other = try newKey("k2")
        let file = "\(dir)/known_hosts"
        let lines = ["plain.example", "[ported.example]:2222", "a,b,c", "*.wild.example,!no.wild.example", "UPPER.example",
                     "[10.0.0.1]:22*", "?.single"].map { "\($0) \(key.line)" } + ["@cert-authority ca.example \(key.line)", "# comment"]
        try fs.writeAtomically(Data((lines.joined(separator: "\n") + "\n").utf8), to: file, mode: 0o600)
        let probes: [(String, Int)] = [("plain.example", 22), ("plain.example", 2222), ("ported.example", 2222),
                                       ("ported.example", 22), ("b", 22), ("x.wild.example", 22), ("no.wild.example", 22),
                                       ("upper.example", 22), ("10.0.0.1", 2222), ("10.0.0.1", 22), ("q.single", 22),
                                       ("qq.single", 22), ("ca.example", 22), ("nothing", 22)]
        let verifier = KnownHostsVerifier(files: [file], fs: fs)
        for (host, port) in probes {
            let name = KnownHostsVerifier.lookupName(host: host, port: port)
            let found = try keygenFound(name, in: file)
            let verdict = try verifier.verify(host: host, port: port, keyType: key.type, keyBlob: key.blob)
            let mismatch = try verifier.verify(host: host, port: port, keyType: other.type, keyBlob: other.blob)
            switch verdict {
            case .match(_, let line):
                XCTAssertEqual(found.first, line, name)
                if case .mismatch(_, line, key.fingerprintSHA256) = mismatch {} else { XCTFail("\(name): \(mismatch)") }
            case .notFound:
                // ssh-keygen -F also lists @cert-authority lines; a plain host key ignores them.
                XCTAssertTrue(found.isEmpty || host == "ca.example", "\(name): ssh-keygen found \(found)")
                XCTAssertEqual(mismatch, .notFound, name)
            default:
                XCTFail("\(name): \(verdict)")
            }
        }
    }

    func testAppendedLinesAreFoundBySSHKeygen() throws {
        let key = try newKey("k3")
        let file = "\(dir)/.ssh/known_hosts"
        let verifier = KnownHostsVerifier(files: [file], fs: fs)
        let hops: [(String, Int, Bool)] = [("Login.Example", 22, false), ("node", 2222, false), ("hashed.example", 22, true),
                                          ("hashed-port.example", 2201, true), ("::1", 2200, false)]
        for (index, (host, port, hash)) in hops.enumerated() {
            try verifier.appendLine(host: host, port: port, keyType: key.type, keyBlob: key.blob, hash: hash, to: file)
            let name = KnownHostsVerifier.lookupName(host: host.lowercased(), port: port)
            XCTAssertEqual(try keygenFound(name, in: file), [index + 1], name)
            XCTAssertEqual(try verifier.verify(host: host, port: port, keyType: key.type, keyBlob: key.blob),
                           .match(file: file, line: index + 1))
        }
        // ssh-keygen -H hashes our plain lines into ones we still find.
        XCTAssertTrue(try IT.runner.run(["ssh-keygen", "-H", "-f", file]).succeeded)
        XCTAssertEqual(try verifier.verify(host: "node", port: 2222, keyType: key.type, keyBlob: key.blob), .match(file: file, line: 2))
    }
}
