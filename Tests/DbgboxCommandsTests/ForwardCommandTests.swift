import Foundation
import XCTest
@testable import DbgboxCommands
@testable import DbgboxKit

/// `--forward`/`--reverse` on up and tunnel, and `dbgbox forward`'s options and one-line errors.
final class ForwardCommandTests: XCTestCase {
    func testUpTakesForwardsAndReverses() throws {
        let up = try XCTUnwrap(try Dbgbox.parseAsRoot(["up", "--forward", "6006", "--forward", "8888:18888", "--forward", "9000:auto",
                                                       "--reverse", "5678", "--reverse", "7000:7001"]) as? Up)
        XCTAssertEqual(try up.ports.forwards(), [
            PortForward(.forward, port: 6006, local: 6006), PortForward(.forward, port: 8888, local: 18888),
            PortForward(.forward, port: 9000, local: 0), PortForward(.reverse, port: 5678, local: 5678),
            PortForward(.reverse, port: 7001, local: 7000),
        ])
    }

    func testForwardCommandParses() throws {
        let add = try XCTUnwrap(try Dbgbox.parseAsRoot(["forward", "s1", "6006", "8888:auto", "--reverse", "5678:15678"]) as? Forward)
        XCTAssertEqual(add.name, "s1")
        XCTAssertEqual(add.ports, ["6006", "8888:auto"])
        XCTAssertEqual(add.reverseSpecs, ["5678:15678"])
        let remove = try XCTUnwrap(try Dbgbox.parseAsRoot(["forward", "s1", "--remove", "6006", "--remove", "8888"]) as? Forward)
        XCTAssertEqual(remove.remove, [6006, 8888])
    }

    func testTunnelCarriesTheSessionsForwards() throws {
        let setup = ForwardSetup(session: "s1", controlPath: "/st/s1.sock", user: "alice", identityFile: "/k",
                                 forwards: [PortForward(.forward, port: 6006, local: 16006), PortForward(.reverse, port: 5678, local: 5679)])
        let tunnel = try XCTUnwrap(try Dbgbox.parseAsRoot(["tunnel", "--login", "gw", "--node", "n", "--port", "2201", "--session", "s1"]
                                                           + setup.tunnelFlags) as? TunnelCommand)
        XCTAssertEqual(tunnel.control, "/st/s1.sock")
        XCTAssertEqual(tunnel.containerUser, "alice")
        XCTAssertEqual(tunnel.containerKey, "/k")
        XCTAssertEqual(try tunnel.forwards.forwards(), setup.forwards)
    }

    func testBadForwardsAreOneLine() throws {
        let cases: [([String], String)] = [
            (["up", "--gpu", "none", "--forward", "70000"], "--forward 70000: PORT 70000 is out of range (1-65535)"),
            (["up", "--gpu", "none", "--forward", "80:0"], "--forward 80:0: LOCAL 0 is out of range"),
            (["up", "--gpu", "none", "--reverse", "auto"], "--reverse auto: LOCAL must be a port number"),
            (["forward", "s1", "x"], "--forward x: PORT must be a port number"),
            (["forward", "s1", "1:2:3"], "expected PORT or PORT:LOCAL"),
            (["forward", "s1"], "name a port to forward"),
            (["forward", "s1", "6006", "--remove", "6006"], "--remove goes alone"),
            (["forward", "nosuch", "6006"], "no session named nosuch"),
            (["forward", "nosuch", "--remove", "6006"], "no session named nosuch"),
        ]
        try assertRefusedInOneLine(cases)
    }

    func testForwardHelpHasItsUsage() throws {
        let h = try CommandHarness(self)
        XCTAssertEqual(h.run(["forward", "--help"]), 0)
        XCTAssertTrue(h.stdout.text.contains("USAGE: dbgbox forward"), h.stdout.text)
        XCTAssertTrue(h.stdout.text.contains("--reverse"), h.stdout.text)
    }
}
