import Foundation
import XCTest
@testable import DbgboxKit

/// The real ssh reads dbgbox's block through the Include line, even when the user's config
/// starts with a `Host *` block that sets Port, User and IdentityFile (devpod#899).
///
/// ssh expands `~` in Include from the passwd home, not $HOME, so the Include names the temp
/// home's dbgbox config by absolute path.
final class SSHConfigIncludeTests: XCTestCase {
    var home = ""
    let fs = LocalFileSystem()

    override func setUpWithError() throws {
        try IT.require(LocalProcessRunner.resolve("ssh") != nil, "ssh (openssh-client) on PATH")
        home = NSTemporaryDirectory() + "dbgbox-sshinc-\(UUID().uuidString.prefix(8))"
        try fs.createDirectory("\(home)/.ssh", mode: 0o700)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: home)
    }

    /// `ssh -G` for `host` with only `config` (no system file), as key → values.
    func sshG(_ config: String, _ host: String) throws -> [String: [String]] {
        let result = try IT.runner.run(["ssh", "-G", "-F", config, host])
        XCTAssertEqual(result.exitCode, 0, String(decoding: result.stderr, as: UTF8.self))
        return Self.fields(String(decoding: result.stdout, as: UTF8.self))
    }

    /// `ssh -G` output as key → values.
    static func fields(_ output: String) -> [String: [String]] {
        var values: [String: [String]] = [:]
        for line in output.split(separator: "\n") {
            let parts = line.split(separator: " ", maxSplits: 1)
            values[String(parts[0]), default: []].append(parts.count > 1 ? String(parts[1]) : "")
        }
        return values
    }

    /// The identity files ssh itself tries, from `ssh -v` through a dead ProxyCommand (ssh loads
    /// them once the ProxyCommand has started, before the failing handshake).
    func identityFilesLoaded(_ config: String, _ host: String) throws -> [String] {
        let result = try IT.runner.run(["ssh", "-v", "-o", "ProxyCommand=exit 0", "-o", "BatchMode=yes", "-F", config, host])
        var loaded: [String] = []
        for line in result.stderrText.replacingOccurrences(of: "\r", with: "").split(separator: "\n") {
            guard line.hasPrefix("debug1: identity file "), let typeAt = line.range(of: " type ", options: .backwards) else { continue }
            let path = String(line[line.index(line.startIndex, offsetBy: 22)..<typeAt.lowerBound])
            if let last = loaded.last, path == last + "-cert" { continue }
            loaded.append(path)
        }
        return loaded
    }

    func prepare(userConfig: String) throws -> (SSHClientConfigFile, SSHConfigInclude, SessionHostBlock) {
        let sshConfig = "\(home)/.ssh/config"
        try fs.writeAtomically(Data(userConfig.utf8), to: sshConfig, mode: 0o600)
        let dbgboxConfig = SSHClientConfigFile(path: SSHClientConfigFile.defaultPath(home: home))
        let include = SSHConfigInclude(home: home, dbgboxConfig: dbgboxConfig, includeTarget: dbgboxConfig.path)
        let block = SessionHostBlock(name: "foo", port: 2201, user: "alice", identityFile: "\(home)/keys/id dbgbox",
                                     knownHostsFile: PinnedHostKeys.defaultPath(home: home))
        try dbgboxConfig.upsert(block)
        return (dbgboxConfig, include, block)
    }

    func testSshResolvesTheBlockDespiteHostStarAtTheTop() throws {
        let userConfig = """
            # mine
            Host *
                Port 2222
                User someone
                IdentityFile ~/.ssh/id_everywhere
                HostKeyAlias everywhere
                StrictHostKeyChecking no

            Match host *.cluster
                ProxyJump login

            """
        let (dbgboxConfig, include, block) = try prepare(userConfig: userConfig)
        let sshConfig = include.userConfigPath

        // Without the Include first, the user's Host * wins: this is the failure being prevented.
        try fs.writeAtomically(Data((userConfig + "Include \(dbgboxConfig.path)\n").utf8), to: sshConfig, mode: 0o600)
        XCTAssertEqual(try sshG(sshConfig, "dbgbox-foo")["port"], ["2222"])
        try fs.writeAtomically(Data(userConfig.utf8), to: sshConfig, mode: 0o600)

        XCTAssertEqual(try include.ensureInclude(), .added)
        let g = try sshG(sshConfig, "dbgbox-foo")
        XCTAssertEqual(g["hostname"], ["127.0.0.1"])
        XCTAssertEqual(g["port"], ["2201"])
        XCTAssertEqual(g["user"], ["alice"])
        XCTAssertEqual(g["identityfile"]?.first, "\(home)/keys/id dbgbox")
        XCTAssertEqual(g["identitiesonly"], ["yes"])
        XCTAssertEqual(g["hostkeyalias"], ["dbgbox-foo"])
        XCTAssertEqual(g["userknownhostsfile"], [block.knownHostsFile])
        XCTAssertEqual(g["stricthostkeychecking"], ["true"])
        XCTAssertNil(g["proxyjump"])

        // Every other host resolves as before.
        let other = try sshG(sshConfig, "login.cluster")
        XCTAssertEqual(other["port"], ["2222"])
        XCTAssertEqual(other["user"], ["someone"])
        XCTAssertEqual(other["proxyjump"], ["login"])

        // down: block, then Include; the file is as the user left it.
        XCTAssertTrue(try dbgboxConfig.remove(name: "foo"))
        XCTAssertEqual(try include.removeIncludeIfUnused(), .removed)
        XCTAssertEqual(String(decoding: try fs.read(sshConfig), as: UTF8.self), userConfig)
        XCTAssertEqual(try sshG(sshConfig, "dbgbox-foo")["port"], ["2222"])
    }

    /// Paths with spaces, `%` and quotes reach ssh as written; an Include of a missing file
    /// (the line left behind after dbgbox's file is gone) does not break ssh.
    func testQuotedPathsAndAMissingIncludedFile() throws {
        let (dbgboxConfig, include, _) = try prepare(userConfig: "Host *\n  User someone\n")
        var block = SessionHostBlock(name: "bar", port: 2202, user: "bob", identityFile: "\(home)/my keys/100% \"id\"",
                                     knownHostsFile: "\(home)/known hosts %")
        try dbgboxConfig.upsert(block)
        XCTAssertEqual(try include.ensureInclude(), .added)
        var g = try sshG(include.userConfigPath, "dbgbox-bar")
        XCTAssertEqual(g["userknownhostsfile"], [block.knownHostsFile])
        // -G prints IdentityFile before percent expansion; the file ssh loads is the path as given.
        XCTAssertEqual(try identityFilesLoaded(include.userConfigPath, "dbgbox-bar"), [block.identityFile])
        XCTAssertEqual(g["user"], ["bob"])

        block.port = 2203
        try dbgboxConfig.upsert(block)
        g = try sshG(include.userConfigPath, "dbgbox-bar")
        XCTAssertEqual(g["port"], ["2203"])

        try fs.remove(dbgboxConfig.path)
        g = try sshG(include.userConfigPath, "dbgbox-bar")
        XCTAssertEqual(g["user"], ["someone"])
    }
}
