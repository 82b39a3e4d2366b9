import Foundation
import XCTest
@testable import DbgboxCommands
@testable import DbgboxKit

/// Where each value comes from: the command line, then config.yaml (a profile over `defaults:`),
/// then ~/.ssh/config (what ssh itself resolves), then dbgbox's built-ins.
final class PrecedenceTests: XCTestCase {
    let config = """
        defaults:
          login: cfg-gw
          node: cfg-node
          ttl: 2h
          port: "2301"
          mounts: [/data:/data]
        profiles:
          p1:
            node: prof-node
            ttl: 30m
        """

    func testUpTakesLoginAndNodeFromTheCommandLineThenProfileThenDefaults() throws {
        let cases: [([String], String, String)] = [
            (["up"], "cfg-gw", "cfg-node"),
            (["up", "--profile", "p1"], "cfg-gw", "prof-node"),
            (["up", "--profile", "p1", "--login", "cli-gw", "--node", "cli-node"], "cli-gw", "cli-node"),
        ]
        for (args, login, node) in cases {
            let h = try CommandHarness(self)
            try h.makeKey()
            try h.write(".config/dbgbox/config.yaml", config)
            XCTAssertEqual(h.run(args), 1, "\(args)")
            XCTAssertTrue(h.errorLine().contains("chain requested"), h.stderr.text)
            let request = try XCTUnwrap(h.requests.first, "\(args)")
            XCTAssertEqual(request.login.host, login, "\(args)")
            XCTAssertEqual(request.node.host, node, "\(args)")
            // Nothing was made: no session record.
            XCTAssertFalse(FileManager.default.fileExists(atPath: "\(h.home)/.local/state/dbgbox/sessions/"), "\(args)")
        }
    }

    func testContainerPlanLayers() throws {
        let parsed = try DbgboxConfig.parse(config, path: "/c.yaml")
        let planner = ContainerPlanner(config: parsed, home: "/home/alice", absolute: { "/cwd/" + $0 })
        let defaults = try planner.plan(ContainerChoices())
        XCTAssertEqual(defaults.ttl, try TTL.parse("2h"))
        XCTAssertEqual(defaults.port, .fixed(2301))
        XCTAssertEqual(defaults.volumes, ["/data:/data"])
        XCTAssertEqual(defaults.keyPath, "/home/alice/.ssh/id_dbgbox.pub")
        XCTAssertEqual(defaults.identityFile, "/home/alice/.ssh/id_dbgbox")
        XCTAssertNil(defaults.settings.gpu)

        let profile = try planner.plan(ContainerChoices(profile: "p1"))
        XCTAssertEqual(profile.ttl, try TTL.parse("30m"))
        XCTAssertEqual(profile.settings.node, "prof-node")

        let given = try planner.plan(ContainerChoices(port: "auto", volumes: ["/x:/y"], ttl: "0", key: "k.pub", profile: "p1"))
        XCTAssertEqual(given.ttl, try TTL.parse("0"))
        XCTAssertEqual(given.port, .auto)
        XCTAssertEqual(given.volumes, ["/x:/y"], "a command-line mount replaces config.yaml's")
        XCTAssertEqual(given.keyPath, "/cwd/k.pub")

        let builtins = try ContainerPlanner(config: DbgboxConfig(), home: "/h", absolute: { $0 }).plan(ContainerChoices())
        XCTAssertEqual(builtins.ttl, try TTL.parse(TTL.defaultText))
        XCTAssertEqual(builtins.port, .auto)
        XCTAssertEqual(builtins.volumes, [])
        XCTAssertEqual(builtins.runtime, .gpus)
    }

    func testSSHConfigFillsWhatTheCommandLineLeavesOpen() throws {
        let h = try CommandHarness(self)
        try h.makeKey()
        try h.write(".ssh/config", """
            Host gw
              HostName 127.0.0.9
              User sshcfg
              Port 2222
              IdentityFile ~/.ssh/id_dbgbox
            """)
        h.planChain = true
        XCTAssertEqual(h.run(["container", "list", "--login", "gw", "--node", "n1"]), 1, h.stderr.text)
        let fromConfig = try XCTUnwrap(h.plans.last)
        XCTAssertEqual(fromConfig.login.hop.host, "127.0.0.9")
        XCTAssertEqual(fromConfig.login.hop.user, "sshcfg")
        XCTAssertEqual(fromConfig.login.hop.port, 2222)

        XCTAssertEqual(h.run(["container", "list", "--login", "other@gw:2200", "--node", "n1"]), 1, h.stderr.text)
        let fromCommandLine = try XCTUnwrap(h.plans.last)
        XCTAssertEqual(fromCommandLine.login.hop.user, "other")
        XCTAssertEqual(fromCommandLine.login.hop.port, 2200)
        // Built-in: the node's user is this machine's user when nothing names one.
        XCTAssertEqual(fromCommandLine.node.hop.user, "alice")
        XCTAssertEqual(fromCommandLine.node.hop.port, 22)
    }

    func testContainerCreateNeedsAGPUFromSomewhere() throws {
        let h = try CommandHarness(self)
        try h.makeKey()
        XCTAssertEqual(h.run(["container", "create"]), 1)
        XCTAssertTrue(h.errorLine().contains("container create needs --gpu"), h.stderr.text)
        XCTAssertTrue(h.runner.calls.isEmpty, "no docker before the input is whole: \(h.runner.calls)")
    }

    func testAMalformedConfigIsOneLineNamingTheFile() throws {
        let h = try CommandHarness(self)
        try h.makeKey()
        try h.write(".config/dbgbox/config.yaml", "gpu_profiles: [1, 2\n")
        XCTAssertEqual(h.run(["up", "--login", "gw", "--node", "n"]), 1)
        XCTAssertTrue(h.errorLine().contains("config.yaml"), h.stderr.text)
        XCTAssertTrue(h.requests.isEmpty, "no chain for a bad config")
    }

    func testUpRefusesAMissingKeyBeforeTheChain() throws {
        let h = try CommandHarness(self)
        XCTAssertEqual(h.run(["up", "--login", "gw", "--node", "n", "--key", "nokey.pub"]), 1)
        XCTAssertTrue(h.errorLine().contains("\(h.home)/nokey.pub"), h.stderr.text)
        XCTAssertTrue(h.requests.isEmpty)
    }
}
