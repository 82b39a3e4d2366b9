import Foundation
import XCTest
@testable import DbgboxKit

/// The Include edit of `up` and `down` against OpenSSH, on 1,000 generated ~/.ssh/config files
/// (Host and Match blocks, Include lines, comments, CRLF, a UTF-8 BOM, tabs, `Key=value` and
/// `Key = value`, no final newline): after the session is added and removed the file is
/// byte-identical; while it is added, `ssh -G -F FILE dbgbox-NAME` resolves to the session's
/// block, and `ssh -G -F FILE H` for every other host H the files name prints what it printed
/// before the edit.
///
/// The test calls the Kit code `up` and `down` run, in their order (`SessionManager.up`:
/// `SSHClientConfigFile.upsert`, then `SSHConfigInclude.ensureInclude`; `SessionManager.down`:
/// `SSHClientConfigFile.remove(name:)`, then `SSHConfigInclude.removeIncludeIfUnused`), not the
/// binary: a whole `up` needs docker and a cluster.
///
/// ssh runs as this process's user, reads only the -F file (no system config) and contacts
/// nothing with -G; the configs hold no `Match exec` and no `CanonicalizeHostname` (DNS). ssh
/// expands `~` from the passwd home, so the Include names dbgbox's file by absolute path, and the
/// generated Include lines name files under the case's directory or files that do not exist.
extension SSHConfigIncludeTests {
    // MARK: - Generating configs

    /// One case: the user's config, the files its Include lines reach, the hosts it names and the
    /// session added to it.
    struct GeneratedConfig {
        var config: [UInt8] = []
        /// Path relative to the case directory → contents.
        var included: [(String, [UInt8])] = []
        /// Every host the files name (literal Host and Match patterns, HostName and ProxyJump
        /// hosts), but the session's alias.
        var hosts: [String] = []
        var session = SessionHostBlock(name: "s1", port: 2201, user: "root", identityFile: "/k", knownHostsFile: "/kh")
        /// A BOM or a bad line makes ssh refuse the whole file, for every host alike: then only the
        /// session's alias is run (it must fail the same way with the Include).
        var refused = false

        var checkedHosts: [String] { refused ? [] : hosts }
    }

    static let settings: [(String, [String])] = [
        ("HostName", ["web.internal.example", "10.1.2.3", "%h.example.org", "gpu01", "127.0.0.1", "Login.Cluster.Example"]),
        ("Port", ["22", "2200", "2222", "65535"]),
        ("User", ["alice", "bob", "root", "deploy"]),
        ("IdentityFile", ["~/.ssh/id_ed25519", "~/.ssh/id_%h", "\"/tmp/a b/key\"", "/etc/dbgbox-none", "none"]),
        ("IdentitiesOnly", ["yes", "no"]),
        ("ProxyJump", ["login", "bob@bastion.example.org:2200", "none"]),
        ("ProxyCommand", ["ssh -W %h:%p gw", "none"]),
        ("ServerAliveInterval", ["30", "1m"]),
        ("StrictHostKeyChecking", ["yes", "accept-new", "no"]),
        ("ForwardAgent", ["yes", "no"]),
        ("UserKnownHostsFile", ["~/.ssh/known_hosts2", "/dev/null"]),
        ("HostKeyAlias", ["alias1", "Mixed.Alias"]),
        ("ConnectTimeout", ["5"]),
        ("SendEnv", ["LANG LC_*"]),
        ("LocalForward", ["8080 127.0.0.1:80"]),
        ("ControlPath", ["~/.ssh/cm-%C"]),
        ("ControlMaster", ["auto", "no"]),
        ("LogLevel", ["ERROR", "QUIET"]),
        ("RequestTTY", ["yes", "no"]),
    ]

    /// Host patterns, `@A` standing for the session's alias.
    static let hostPatterns = ["web", "db.example.org", "gpu0?", "*.example.org", "*", "!bastion.example.org", "login",
                               "Node7", "10.1.*", "127.0.0.1", "dbgbox-*", "dbgbox-other", "@A", "@Ax", "\"gpu01\""]

    /// Match criteria and the hosts they name.
    static let matchCriteria: [(String, [String])] = [
        ("all", []), ("host *.example.org", []), ("originalhost web", ["web"]), ("user alice", []),
        ("localuser root", []), ("host=db.example.org", ["db.example.org"]), ("!host web", ["web"]), ("final", []),
        ("canonical", []), ("host gpu0? user bob", []), ("originalhost dbgbox-*", []),
        ("final host 127.0.0.1", ["127.0.0.1"]),
    ]

    static let comments = ["# comment", "#", "  # indented", "\t#\ttab", "# Host @A", "#Include @T", "# dbgbox session @N"]

    /// The host a pattern names: itself without quotes and negation; none for a wildcard (every
    /// ssh -G run costs some 4 ms, and each case has a run before and one with the Include).
    static func named(_ pattern: String) -> String? {
        var host = pattern.replacingOccurrences(of: "\"", with: "")
        if host.hasPrefix("!") { host.removeFirst() }
        return host.contains("*") || host.contains("?") ? nil : host
    }

    struct Writer {
        var rng: SplitMix64
        let alias: String, name: String, target: String
        var lines: [String] = []
        var hosts: [String] = []

        mutating func keyword(_ word: String) -> String {
            rng.pick([word, word, word.lowercased(), word.uppercased()])
        }

        mutating func separator() -> String { rng.pick([" ", " ", "=", " = ", "\t", "= ", " =", "  "]) }

        func substitute(_ text: String) -> String {
            text.replacingOccurrences(of: "@Ax", with: alias + "x").replacingOccurrences(of: "@A", with: alias)
                .replacingOccurrences(of: "@T", with: target).replacingOccurrences(of: "@N", with: name)
        }

        mutating func setting(indent: Bool) {
            let (word, values) = rng.pick(SSHConfigIncludeTests.settings)
            let value = rng.pick(values)
            let lead = indent ? rng.pick(["  ", "    ", "\t", " \t", ""]) : rng.pick(["", "", " "])
            let tail = rng.oneIn(6) ? rng.pick([" # note", "\t# x", "  ", "\t"]) : ""
            lines.append(lead + keyword(word) + separator() + value + tail)
            if word == "HostName", !value.contains("%") { hosts.append(value) }
            if word == "ProxyJump", value != "none" {
                hosts.append(String(value.split(separator: "@").last?.split(separator: ":").first ?? ""))
            }
        }

        mutating func filler() {
            if rng.oneIn(2) {
                lines.append(substitute(rng.pick(SSHConfigIncludeTests.comments)))
            } else {
                lines.append(rng.pick(["", "", "  ", "\t"]))
            }
        }

        mutating func block(includes: [String]) {
            if rng.oneIn(4) {
                let (criteria, named) = rng.pick(SSHConfigIncludeTests.matchCriteria)
                lines.append(rng.pick(["", "", " "]) + keyword("Match") + rng.pick([" ", "\t", " "]) + criteria)
                hosts += named
            } else {
                let patterns = (0..<(rng.oneIn(3) ? 2 : 1)).map { _ in substitute(rng.pick(SSHConfigIncludeTests.hostPatterns)) }
                lines.append(rng.pick(["", "", " "]) + keyword("Host") + separator() + patterns.joined(separator: rng.pick([" ", "\t", "  "])))
                hosts += patterns.compactMap(SSHConfigIncludeTests.named)
            }
            for _ in 0..<(1 + rng.below(4)) {
                if !includes.isEmpty && rng.oneIn(8) {
                    lines.append("  " + keyword("Include") + " " + rng.pick(includes))
                } else if rng.oneIn(5) {
                    filler()
                } else {
                    setting(indent: true)
                }
            }
        }
    }

    /// The config of one seed; `caseDir` is where its included files go.
    func generated(seed: UInt64, caseDir: String) -> GeneratedConfig {
        var rng = SplitMix64(state: seed)
        var result = GeneratedConfig()
        let name = rng.pick(["s1", "alice_01234", "Bob_00042", "x", "a.b-c_9"])
        let identity = rng.pick(["\(caseDir)/keys/id_dbgbox", "\(caseDir)/keys/id dbgbox", "~/.ssh/id_dbgbox", "\(caseDir)/keys/100%key"])
        result.session = SessionHostBlock(name: name, port: rng.pick([1024, 2201, 40000, 65535]), user: rng.pick(["root", "alice", "dev-user"]),
                                          identityFile: identity, knownHostsFile: PinnedHostKeys.defaultPath(home: caseDir))
        var writer = Writer(rng: rng, alias: result.session.alias, name: name, target: "\(caseDir)/dbgbox/config")
        let includes = ["\(caseDir)/extra/*.conf", "dbgbox-diff-absent/*", "~/.dbgbox-diff-absent \(caseDir)/extra/one.conf"]

        // Files the Include lines reach: one block each.
        for file in ["extra/a.conf", "extra/one.conf"] {
            guard writer.rng.oneIn(2) else { continue }
            var inner = Writer(rng: SplitMix64(state: writer.rng.next()), alias: writer.alias, name: name, target: writer.target)
            inner.block(includes: [])
            result.included.append((file, Array((inner.lines.joined(separator: "\n") + "\n").utf8)))
            writer.hosts += inner.hosts
        }
        // Global lines, then blocks.
        if writer.rng.oneIn(4) { writer.lines += ["IgnoreUnknown UseKeychain,AddKeysToKeychain", "UseKeychain yes"] }
        for _ in 0..<writer.rng.below(3) {
            switch writer.rng.below(3) {
            case 0: writer.setting(indent: false)
            case 1: writer.lines.append(writer.keyword("Include") + writer.separator() + writer.rng.pick(includes))
            default: writer.filler()
            }
        }
        for _ in 0..<(1 + writer.rng.below(3)) { writer.block(includes: includes) }
        // A config ssh refuses as a whole: then it must refuse it the same way with the Include.
        if writer.rng.oneIn(30) {
            result.refused = true
            writer.lines.insert(writer.rng.pick(["Bogus option", "Port notanumber", "\u{FEFF}Host mid-file-bom"]),
                                at: writer.rng.below(writer.lines.count + 1))
        }

        let ending = writer.rng.pick(["\n", "\n", "\n", "\r\n", "mixed"])
        var text = ""
        for (i, line) in writer.lines.enumerated() {
            text += line
            if i < writer.lines.count - 1 || !writer.rng.oneIn(3) {
                text += ending == "mixed" ? writer.rng.pick(["\n", "\r\n"]) : ending
            }
        }
        if writer.rng.oneIn(15) {
            result.refused = true
            text = "\u{FEFF}" + text
        }
        result.config = Array(text.utf8)
        let alias = result.session.alias
        var seen = Set<String>()
        result.hosts = writer.hosts.filter { !$0.isEmpty && $0 != alias && seen.insert($0).inserted }
        return result
    }

    // MARK: - Running ssh -G

    /// `ssh -G` outputs: the file `out` holds stdout, then a line `exit N`.
    struct Resolution: Equatable {
        var stdout: String
        var exit: String

        init(_ text: String) {
            guard let mark = text.range(of: "exit ", options: .backwards),
                  mark.lowerBound == text.startIndex || text[text.index(before: mark.lowerBound)] == "\n" else {
                (stdout, exit) = (text, "missing")
                return
            }
            stdout = String(text[..<mark.lowerBound])
            exit = String(text[mark.upperBound...]).trimmingCharacters(in: .whitespacesAndNewlines)
        }

        var ok: Bool { exit == "0" }

        /// The values of `key`, in order.
        func values(_ key: String) -> [String] { SSHConfigIncludeTests.fields(stdout)[key] ?? [] }
    }

    func sshGCommand(config: String, host: String, out: String) -> String {
        let q = ShellBatch.quote
        return "{ ssh -G -F \(q(config)) \(q(host)) </dev/null 2>/dev/null; echo \"exit $?\"; } >\(q(out))"
    }

    func resolution(_ path: String) -> Resolution {
        Resolution(String(decoding: (try? fs.read(path)) ?? Data(), as: UTF8.self))
    }

    // MARK: - The test

    func testIncludeEditRoundTripsAndResolvesLikeBeforeOnGeneratedConfigs() throws {
        let started = Date()
        let test = "SSHConfigIncludeTests/testIncludeEditRoundTripsAndResolvesLikeBeforeOnGeneratedConfigs"
        let cases = DiffCase.cases(base: 0x5C0F_16_1C1D_0001, count: 1000)
        var configs: [GeneratedConfig] = []
        var before: [String] = []
        for (i, c) in cases.enumerated() {
            let caseDir = "\(home)/c\(i)"
            try fs.createDirectory("\(caseDir)/extra", mode: 0o700)
            let config = generated(seed: c.seed, caseDir: caseDir)
            configs.append(config)
            try writeScratch(Data(config.config), to: "\(caseDir)/config")
            for (path, bytes) in config.included { try writeScratch(Data(bytes), to: "\(caseDir)/\(path)") }
            for (h, host) in ([config.session.alias] + config.checkedHosts).enumerated() {
                before.append(sshGCommand(config: "\(caseDir)/config", host: host, out: "\(caseDir)/before\(h)"))
            }
        }
        let generatedAt = Date()
        try ShellBatch.run(before, in: home, label: "before")
        let beforeAt = Date()

        // up: the Host block, then the Include line.
        var failures: [String] = []
        var during: [String] = []
        for (i, c) in cases.enumerated() {
            let caseDir = "\(home)/c\(i)", config = configs[i]
            let (dbgboxConfig, include) = edit(caseDir)
            try dbgboxConfig.upsert(config.session)
            let outcome = try include.ensureInclude()
            if outcome != .added { failures.append("\(c.label(test)): ensureInclude \(outcome)") }
            for (h, host) in ([config.session.alias] + config.checkedHosts).enumerated() {
                during.append(sshGCommand(config: "\(caseDir)/config", host: host, out: "\(caseDir)/during\(h)"))
            }
        }
        let upAt = Date()
        try ShellBatch.run(during, in: home, label: "during")
        let resolvedAt = Date()

        // down: the block, then the Include line; and the comparisons.
        var sessionChecks = 0, refusedConfigs = 0, hostChecks = 0
        for (i, c) in cases.enumerated() {
            let caseDir = "\(home)/c\(i)", config = configs[i]
            var problems: [String] = []
            let (dbgboxConfig, include) = edit(caseDir)
            XCTAssertTrue(try dbgboxConfig.remove(name: config.session.name))
            let removal = try include.removeIncludeIfUnused()
            if removal != .removed { problems.append("removeIncludeIfUnused \(removal)") }
            let after = try fs.read("\(caseDir)/config")
            if after != Data(config.config) { problems.append("bytes after down: \(show(after))") }

            let aliasBefore = resolution("\(caseDir)/before0"), aliasDuring = resolution("\(caseDir)/during0")
            if aliasBefore.ok == config.refused {
                problems.append("the generator meant ssh to \(config.refused ? "refuse" : "accept") the config: exit \(aliasBefore.exit)")
            }
            if aliasBefore.ok {
                sessionChecks += 1
                problems += sessionProblems(aliasDuring, config.session)
            } else {
                refusedConfigs += 1
                if aliasDuring != aliasBefore { problems.append("ssh refused the config before but resolves \(config.session.alias) with the Include") }
            }
            for (h, host) in config.checkedHosts.enumerated() {
                let was = resolution("\(caseDir)/before\(h + 1)"), now = resolution("\(caseDir)/during\(h + 1)")
                hostChecks += 1
                if was != now { problems.append("ssh -G \(host) differs: before \(was.exit) \(diffLines(was.stdout, now.stdout))") }
            }
            if !problems.isEmpty {
                failures.append("\(c.label(test)): config \(show(Data(config.config))): " + problems.joined(separator: "; "))
            }
        }
        XCTAssertEqual(failures.count, 0, failures.prefix(5).joined(separator: "\n"))
        if cases.count > 1 {
            XCTAssertGreaterThan(sessionChecks, cases.count * 4 / 5, "most configs must be ones ssh reads")
            XCTAssertGreaterThan(refusedConfigs, 0, "some configs must be ones ssh refuses")
        }
        let seconds = { (a: Date, b: Date) in String(format: "%.1f", b.timeIntervalSince(a)) }
        print("ssh config include differential: \(cases.count) configs, \(sessionChecks) session checks, \(refusedConfigs) refused by ssh, "
              + "\(hostChecks) other hosts; generate \(seconds(started, generatedAt)) s, ssh -G before \(seconds(generatedAt, beforeAt)) s, "
              + "up \(seconds(beforeAt, upAt)) s, ssh -G during \(seconds(upAt, resolvedAt)) s, down and compare \(seconds(resolvedAt, Date())) s, "
              + "total \(seconds(started, Date())) s")
    }

    /// The Kit objects `up` and `down` use, for the user config and dbgbox's config under `caseDir`.
    func edit(_ caseDir: String) -> (SSHClientConfigFile, SSHConfigInclude) {
        let dbgboxConfig = SSHClientConfigFile(path: "\(caseDir)/dbgbox/config")
        return (dbgboxConfig, SSHConfigInclude(home: caseDir, dbgboxConfig: dbgboxConfig, userConfigPath: "\(caseDir)/config",
                                               includeTarget: dbgboxConfig.path))
    }

    /// How `ssh -G dbgbox-NAME` falls short of the session's block ([] when it does not).
    func sessionProblems(_ r: Resolution, _ session: SessionHostBlock) -> [String] {
        guard r.ok else { return ["ssh -G \(session.alias) failed with the Include: exit \(r.exit)"] }
        let expected: [(String, String)] = [
            ("hostname", "127.0.0.1"), ("port", "\(session.port)"), ("user", session.user),
            // ssh -G prints IdentityFile as written: `%` doubled, unquoted.
            ("identityfile", session.identityFile.replacingOccurrences(of: "%", with: "%%")),
            ("hostkeyalias", session.alias.lowercased()), ("userknownhostsfile", session.knownHostsFile),
        ]
        var problems = expected.compactMap { key, value in
            r.values(key).first == value ? nil : "ssh -G \(session.alias): \(key) \(r.values(key)), want \(value)"
        }
        // The tunnel listens on this machine: a jump host or proxy command reaches some other 127.0.0.1.
        for key in ["proxyjump", "proxycommand"] where !r.values(key).isEmpty {
            problems.append("ssh -G \(session.alias): \(key) \(r.values(key)), want none")
        }
        return problems
    }

    func show(_ data: Data) -> String { String(decoding: data, as: UTF8.self).debugDescription }

    /// The lines only in `a` and only in `b`.
    func diffLines(_ a: String, _ b: String) -> String {
        let la = a.split(separator: "\n").map(String.init), lb = b.split(separator: "\n").map(String.init)
        return "only before: \(la.filter { !lb.contains($0) }), only with the Include: \(lb.filter { !la.contains($0) })"
    }
}
