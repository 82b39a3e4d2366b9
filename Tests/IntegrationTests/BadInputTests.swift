import Foundation
import XCTest
@testable import DbgboxKit

/// Every bad input gets exactly one line on stderr (`dbgbox: error: …` naming the problem),
/// nothing on stdout, a non-zero exit, and leaves no container behind. Run through the installed
/// binary as the ordinary test user, against the real Docker engine.
final class BadInputTests: XCTestCase {
    struct Case {
        var args: [String]
        /// A piece the one line must contain (case-insensitive).
        var mentions: String
        var env: [String: String] = [:]
        var asRoot = false
    }

    func testEachBadInputGivesOneClearLine() throws {
        _ = try IT.requireBinary()
        try IT.requireDocker()
        let home = try IT.scratchDir("badinput")
        defer { try? FileManager.default.removeItem(atPath: home) }
        let keygen = try IT.dbgbox(["keygen"], home: home)
        XCTAssertEqual(keygen.exitCode, 0, keygen.stderrText)
        // An RSA public key, a private key, a malformed config, an existing mount source.
        _ = try IT.asUser(["ssh-keygen", "-q", "-t", "rsa", "-b", "2048", "-N", "", "-f", "\(home)/rsa"], home: home)
        _ = try IT.asUser(["mkdir", "-p", "\(home)/.config/dbgbox", "\(home)/data"], home: home)
        let badConfig = try IT.scratchDir("badconfig")
        defer { try? FileManager.default.removeItem(atPath: badConfig) }
        _ = try IT.asUser(["mkdir", "-p", "\(badConfig)/.config/dbgbox"], home: badConfig)
        _ = try IT.asUser(["sh", "-c", "printf 'gpu_profiles: [1, 2\\n' > \"$HOME/.config/dbgbox/config.yaml\""], home: badConfig)
        _ = try IT.dbgbox(["keygen"], home: badConfig)
        // An ssh config whose HostName is a megabyte long (with a %-token ssh does not know).
        let bigHost = "\(home)/big-hostname.conf"
        try Data("Host big\n  HostName \(String(repeating: "a", count: 1_000_000))%z\n".utf8).write(to: URL(fileURLWithPath: bigHost))
        _ = try IT.runner.run(["chown", "\(IT.user.uid):\(IT.user.gid)", bigHost])

        let image = "dbgbox-it/never-built:\(UUID().uuidString.prefix(6).lowercased())"
        let cases: [Case] = [
            Case(args: ["container", "create", "--gpu", "X"], mentions: "--gpu"),
            Case(args: ["container", "create", "--gpu", "none", "--port", "80"], mentions: "80"),
            Case(args: ["container", "create", "--gpu", "none", "--port", "22a"], mentions: "22a"),
            Case(args: ["container", "create", "--gpu", "none", "--port", "70000"], mentions: "70000"),
            Case(args: ["container", "create", "--gpu", "none", "--port", " 2201"], mentions: "\" 2201\""),
            Case(args: ["container", "create", "--gpu", "none", "--image=-v"], mentions: "--image \"-v\""),
            Case(args: ["container", "create", "--gpu", "none", "--image", "a\nb"], mentions: "--image \"a\\nb\""),
            Case(args: ["cleanup", "--container", "no such/name"], mentions: "no such/name"),
            Case(args: ["keygen", "other", "--comment", "a\nssh-ed25519 AAAA evil"], mentions: "--comment"),
            Case(args: ["keygen", "other"], mentions: "HOME=\"relative\"", env: ["HOME": "relative"]),
            Case(args: ["keygen", "other"], mentions: "HOME=\"\"", env: ["HOME": ""]),
            Case(args: ["tunnel", "--login", "big", "--node", "big", "--port", "2222", "-F", bigHost], mentions: "…"),
            Case(args: ["container", "create", "--gpu", "none", "--mount", "relative:/x"], mentions: "absolute"),
            Case(args: ["container", "create", "--gpu", "none", "--mount", "/nonexistent-dbgbox-src:/x"], mentions: "nonexistent-dbgbox-src"),
            Case(args: ["container", "create", "--gpu", "none", "--mount", "\(home)/data"], mentions: "mount"),
            Case(args: ["container", "create", "--gpu", "none", "-v", "\(home)/data:/etc"], mentions: "/etc"),
            Case(args: ["container", "create", "--gpu", "none", "--key", "\(home)/missing.pub"], mentions: "missing.pub"),
            Case(args: ["container", "create", "--gpu", "none", "--key", "\(home)/rsa.pub"], mentions: "rsa"),
            Case(args: ["container", "create", "--gpu", "none", "--key", "\(home)/.ssh/id_dbgbox"], mentions: ".pub"),
            Case(args: ["container", "create", "--gpu", "none", "--image", image], mentions: "image create"),
            Case(args: ["container", "create", "--gpu", "none", "--ttl", "5x"], mentions: "ttl"),
            Case(args: ["container", "create", "--gpu", "none", "--gpu-runtime", "foo"], mentions: "gpu-runtime"),
            Case(args: ["container", "create", "--gpu", "V"], mentions: "PBS_GPUFILE"),
            Case(args: ["container", "create", "--gpu", "0"], mentions: "nvidia"),
            Case(args: ["container", "create", "--gpu", "none"], mentions: "config.yaml"),  // run with the bad config home
            Case(args: ["image", "create", "--base", "dbgbox-it/no-such-base:1"], mentions: "no-such-base"),
            Case(args: ["image", "create", "--base", IT.baseImage, "--name", "Bad Name"], mentions: "Bad Name"),
            Case(args: ["image", "create", "--base", ""], mentions: "base"),
            Case(args: ["image", "create", "--base", IT.baseImage, "--family", "pacman", "--print"], mentions: "family"),
            Case(args: ["keygen", "--type", "rsa"], mentions: "rsa-sha2"),
            Case(args: ["keygen"], mentions: "--force"),
            Case(args: ["keygen", "../evil"], mentions: "name"),
            Case(args: ["container", "rm", "dbgbox_no_such_container"], mentions: "dbgbox_no_such_container"),
            Case(args: ["container", "list"], mentions: "docker", env: ["DOCKER_HOST": "unix:///tmp/dbgbox-no-docker.sock"]),
            Case(args: ["cleanup", "--port", "80"], mentions: "80"),
            Case(args: ["container", "create", "--gpu", "none", "--frobnicate"], mentions: "frobnicate"),
            Case(args: ["tunnelx"], mentions: "tunnelx"),
            Case(args: ["container", "create", "--gpu", "none"], mentions: "--user", asRoot: true),
        ]
        XCTAssertGreaterThanOrEqual(cases.count, 20)
        let before = try ownContainers()
        for (index, c) in cases.enumerated() {
            let caseHome = c.mentions == "config.yaml" ? badConfig : home
            let result: ProcessResult
            if c.asRoot {
                result = try IT.runner.run([IT.binary!] + c.args)
            } else {
                result = try IT.dbgbox(c.args, home: caseHome, extraEnv: c.env)
            }
            let label = "case \(index): dbgbox \(c.args.joined(separator: " "))"
            XCTAssertNotEqual(result.exitCode, 0, label)
            XCTAssertEqual(result.stdoutText, "", "\(label): stdout must be empty")
            let lines = result.stderrText.split(separator: "\n", omittingEmptySubsequences: false)
            XCTAssertEqual(lines.count, 2, "\(label): expected one line, got: \(result.stderrText.prefix(2000))")
            XCTAssertLessThan(result.stderrText.count, 2000, "\(label): a long value must be cut")
            XCTAssertTrue(result.stderrText.hasPrefix("dbgbox: error: "), "\(label): \(result.stderrText)")
            XCTAssertTrue(result.stderrText.lowercased().contains(c.mentions.lowercased()),
                          "\(label): should mention \(c.mentions): \(result.stderrText)")
        }
        XCTAssertEqual(try ownContainers(), before, "a bad input left a container behind")
    }

    private func ownContainers() throws -> [String] {
        let r = try IT.runner.run(["docker", "ps", "-aq", "--filter", "label=dbgbox.owner=\(IT.testUser)"])
        return r.stdoutText.split(separator: "\n").map(String.init).sorted()
    }
}
