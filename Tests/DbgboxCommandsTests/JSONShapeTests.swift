import Foundation
import XCTest
@testable import DbgboxCommands
@testable import DbgboxKit

/// The JSON scripts read: keys and types stay as they are.
final class JSONShapeTests: XCTestCase {
    func testContainerListJSON() throws {
        let h = try CommandHarness(self)
        let expires = ContainerSpec.iso8601(h.now.addingTimeInterval(3600))
        h.runner = FakeRunner { argv in
            switch argv.dropFirst().first {
            case "ps": return ok("id1\nid2\n")
            case "container": return ok("""
                [{"Id":"id1","Name":"/alice_00001","State":{"Status":"running"},"Config":{"Labels":{"dbgbox.owner":"alice","dbgbox.owner-uid":"1000","dbgbox.port":"2201","dbgbox.expires":"\(expires)","dbgbox.gpus":"0,1"}}},
                 {"Id":"id2","Name":"/alice_00002","State":{"Status":"exited"},"Config":{"Labels":{"dbgbox.owner":"alice","dbgbox.owner-uid":"1000"}}}]
                """)
            default: return ok()
            }
        }
        XCTAssertEqual(h.run(["container", "list", "--json"]), 0, h.stderr.text)
        XCTAssertEqual(h.runner.calls.first, ["docker", "ps", "-aq", "--no-trunc", "--filter", "label=dbgbox.owner-uid=1000"])
        let rows = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(h.stdout.text.utf8)) as? [[String: Any]])
        XCTAssertEqual(rows.count, 2)
        XCTAssertEqual(Set(rows[0].keys), ["name", "port", "status", "ttl_left_seconds", "gpus"])
        XCTAssertEqual(rows[0]["name"] as? String, "alice_00001")
        XCTAssertEqual(rows[0]["port"] as? Int, 2201)
        XCTAssertEqual(rows[0]["ttl_left_seconds"] as? Int, 3600)
        XCTAssertEqual(rows[0]["gpus"] as? [String], ["0", "1"])
        XCTAssertEqual(rows[1]["gpus"] as? [String], [])
        XCTAssertNil(rows[1]["port"], "no port: the key is left out")
        XCTAssertEqual(h.stdout.text.split(separator: "\n").count, 1, "one line")
    }

    func testContainerListTable() throws {
        let h = try CommandHarness(self)
        h.runner = FakeRunner { _ in ok() }
        XCTAssertEqual(h.run(["container", "list"]), 0, h.stderr.text)
        XCTAssertEqual(h.stdout.text, "no dbgbox containers of alice\n")
    }

    func testStatusJSON() throws {
        let h = try CommandHarness(self)
        XCTAssertEqual(h.run(["status", "--json"]), 0, h.stderr.text)
        XCTAssertEqual(h.stdout.text, "[]\n")

        let manager = try h.context.sessionManager(home: h.home)
        try manager.store.insert(SessionRecord(
            name: "alice_00001", container: "alice_00001", login: "gw", node: "n1", gpus: ["0"], targetPort: 2201,
            localPort: 3301, created: h.now, expires: h.now.addingTimeInterval(600), image: "alice/ssh:latest",
            user: "alice", identityFile: "\(h.home)/.ssh/id_dbgbox", logFile: manager.logPath("alice_00001")))
        h.stdout.reset()
        XCTAssertEqual(h.run(["status", "--json"]), 0, h.stderr.text)
        let rows = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(h.stdout.text.utf8)) as? [[String: Any]])
        let row = try XCTUnwrap(rows.first)
        for key in ["name", "container", "login", "node", "local_port", "node_port", "tunnel", "alive", "ttl_left_seconds",
                    "expires", "log", "container_state", "fast_path"] {
            XCTAssertNotNil(row[key], "status --json lacks \(key): \(row)")
        }
        XCTAssertEqual(row["name"] as? String, "alice_00001")
        XCTAssertEqual(row["local_port"] as? Int, 3301)
        XCTAssertEqual(row["node_port"] as? Int, 2201)
        XCTAssertEqual(row["alive"] as? Bool, false)
        XCTAssertEqual(row["ttl_left_seconds"] as? Int, 600)
    }
}
