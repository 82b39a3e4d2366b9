import Foundation
import XCTest
@testable import DbgboxCommands
@testable import DbgboxKit

/// Option parsing and errors: every bad input is one `dbgbox: error:` line and a non-zero exit,
/// before anything is made.
final class CommandParsingTests: XCTestCase {
    func testSharedChainGroupParsesTheSameForEveryCommand() throws {
        for prefix in [["container", "list"], ["container", "rm", "x"], ["cleanup"], ["image", "create", "--base", "b"],
                       ["container", "create"], ["up"], ["down"]] {
            let parsed = try Dbgbox.parseAsRoot(prefix + ["--login", "u@gw:2200", "--node", "n1", "-i", "k1", "-i", "k2",
                                                          "--node-via", "exec", "--accept-new", "--known-hosts", "kh", "-F", "cfg"])
            let request = try XCTUnwrap(try Self.request(of: parsed), "\(prefix)")
            XCTAssertEqual(request.login, HostSpec(user: "u", host: "gw", port: 2200), "\(prefix)")
            XCTAssertEqual(request.node.host, "n1")
            XCTAssertEqual(request.identityFiles, ["k1", "k2"])
            XCTAssertEqual(request.nodeVia, .exec)
            XCTAssertTrue(request.acceptNew)
            XCTAssertEqual(request.knownHostsFile, "kh")
            XCTAssertEqual(request.sshConfigFile, "cfg")
        }
    }

    func testContainerGroupIsSharedByCreateAndUp() throws {
        let args = ["--gpu", "V", "--port", "2201", "--mount", "/a:/a;/b:/b", "-v", "/c:/c:ro", "--base", "deb",
                    "--image", "me/ssh:1", "--ttl", "2h", "--key", "k.pub", "--profile", "p", "--gpu-runtime", "nvidia"]
        let expected = ContainerChoices(gpu: "V", port: "2201", mountLists: ["/a:/a;/b:/b"], volumes: ["/c:/c:ro"],
                                        base: "deb", image: "me/ssh:1", ttl: "2h", key: "k.pub", profile: "p",
                                        gpuRuntime: "nvidia")
        let create = try XCTUnwrap(try Dbgbox.parseAsRoot(["container", "create"] + args) as? ContainerCreate)
        let up = try XCTUnwrap(try Dbgbox.parseAsRoot(["up"] + args) as? Up)
        XCTAssertEqual(create.container.choices, expected)
        XCTAssertEqual(up.container.choices, expected)
    }

    func testTunnelTakesTheChainAndItsOwnOptions() throws {
        let tunnel = try XCTUnwrap(try Dbgbox.parseAsRoot(["tunnel", "--login", "gw", "--node", "n", "--port", "2201",
                                                           "--local-port", "3301", "--login-key", "a", "--node-key", "b"]) as? TunnelCommand)
        XCTAssertEqual(tunnel.port, 2201)
        XCTAssertEqual(tunnel.localPort, 3301)
        XCTAssertEqual(try tunnel.chain.request(targetPort: 2201, localPort: 3301)?.localPort, 3301)
        XCTAssertEqual(tunnel.loginKey, ["a"])
        XCTAssertEqual(tunnel.nodeKey, ["b"])
    }

    func testRecordedFlagsAreAbsoluteAndRoundTrip() throws {
        let h = try CommandHarness(self)
        let up = try XCTUnwrap(try Dbgbox.parseAsRoot(["up", "--login", "gw", "--node", "n", "-F", "cfg", "-i", "~/k",
                                                       "--known-hosts", "/kh", "--node-via", "exec"]) as? Up)
        let flags = up.chain.flags(h.context)
        XCTAssertEqual(flags, ["-F", "\(h.home)/cfg", "--known-hosts", "/kh", "-i", "\(h.home)/k", "--node-via", "exec"])
        let again = try ChainOptions.parse(["--login", "gw", "--node", "n"] + flags)
        XCTAssertEqual(again.flags(h.context), flags)
    }

    func testBadInputIsOneLine() throws {
        let cases: [([String], String)] = [
            (["tunnel", "--port", "2201"], "tunnel needs --login and --node"),
            (["container", "list", "--login", "gw"], "--login and --node go together"),
            (["container", "list", "--login", "gw", "--node", "n", "--node-via", "carrier-pigeon"], "--node-via carrier-pigeon"),
            (["container", "create", "--gpu", "none", "--frobnicate"], "(see `dbgbox container create --help`)"),
            (["container", "create", "--gpu", "none", "--gpu-runtime", "foo"], "--gpu-runtime 'foo' is unknown"),
            (["container", "create", "--gpu", "none", "--image=-v"], "--image \"-v\""),
            (["up", "--gpu", "none"], "up needs --login and --node"),
            (["down", "a", "--all"], "give a session name or --all, not both"),
            (["cleanup", "--port", "auto"], "--port auto means nothing to cleanup"),
            (["ide", "vscode", "x", "relative/path"], "relative/path"),
            (["tunnelx"], "tunnelx"),
        ]
        try assertRefusedInOneLine(cases)
    }

    func testRootMustNameAUser() throws {
        let h = try CommandHarness(self)
        h.realUID = 0
        XCTAssertEqual(h.run(["container", "list"]), 1)
        XCTAssertTrue(h.errorLine().contains("--user NAME"), h.stderr.text)
    }

    func testHelpAndVersionGoToStdout() throws {
        let h = try CommandHarness(self)
        XCTAssertEqual(h.run(["up", "--help"]), 0)
        XCTAssertTrue(h.stdout.text.contains("THE CLUSTER:"), h.stdout.text)
        XCTAssertTrue(h.stdout.text.contains("THE CONTAINER:"), h.stdout.text)
        XCTAssertTrue(h.stdout.text.contains("--foreground"), h.stdout.text)
        XCTAssertEqual(h.stderr.text, "")

        h.stdout.reset()
        XCTAssertEqual(h.run(["--version"]), 0)
        XCTAssertTrue(h.stdout.text.hasPrefix("dbgbox \(DbgboxVersion.current)\nlibssh2 "), h.stdout.text)
        XCTAssertTrue(h.stdout.text.contains("libssh2 fast path: "), h.stdout.text)
    }

    func testDownOfALocalSessionRemovesItsContainerThroughTheRunner() throws {
        let h = try CommandHarness(self)
        h.runner = FakeRunner { _ in ok() }
        let manager = try h.context.sessionManager(home: h.home)
        try manager.store.insert(SessionRecord(
            name: "alice_00007", container: "alice_00007", targetPort: 2201, localPort: 2201, created: h.now,
            image: "alice/ssh:latest", user: "alice", identityFile: "\(h.home)/.ssh/id_dbgbox",
            logFile: manager.logPath("alice_00007")))
        XCTAssertEqual(h.run(["down"]), 0, h.stderr.text)
        XCTAssertEqual(h.stdout.text, "down alice_00007: tunnel was none (foreground), container removed, Host block dbgbox-alice_00007 removed (0.0 s)\n")
        XCTAssertTrue(h.runner.calls.contains { $0.starts(with: ["docker", "rm", "-f"]) && $0.last == "alice_00007" }, "\(h.runner.calls)")
        XCTAssertTrue(h.requests.isEmpty, "a local session opens no chain")
        XCTAssertNil(try manager.store.load("alice_00007"))

        h.stdout.reset()
        XCTAssertEqual(h.run(["down"]), 1)
        XCTAssertTrue(h.errorLine().contains("no dbgbox sessions"), h.stderr.text)
    }

    /// The chain request of a parsed command (up's group lets --login stand alone: `Chain<NodeFoundLater>`).
    static func request(of command: Any) throws -> TunnelRequest? {
        switch command {
        case let c as ContainerList: return try c.chain.request()
        case let c as ContainerRm: return try c.chain.request()
        case let c as ContainerCreate: return try c.chain.request()
        case let c as Cleanup: return try c.chain.request()
        case let c as ImageCreate: return try c.chain.request()
        case let c as Up: return try c.chain.request()
        case let c as Down: return try c.chain.request()
        default: return nil
        }
    }
}
