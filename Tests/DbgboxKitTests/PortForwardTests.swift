import Foundation
import XCTest
@testable import DbgboxKit

/// Forward specs, the record and status rows, the control protocol, and `SessionForwards`.
final class PortForwardTests: XCTestCase {
    func testSpecs() throws {
        XCTAssertEqual(try PortForward.parseForward("6006"), PortForward(.forward, port: 6006, local: 6006))
        XCTAssertEqual(try PortForward.parseForward("8888:18888"), PortForward(.forward, port: 8888, local: 18888))
        XCTAssertEqual(try PortForward.parseForward("8888:auto"), PortForward(.forward, port: 8888, local: 0))
        XCTAssertEqual(try PortForward.parseReverse("5678"), PortForward(.reverse, port: 5678, local: 5678))
        XCTAssertEqual(try PortForward.parseReverse("5678:15678"), PortForward(.reverse, port: 15678, local: 5678))
        for bad in ["", "0", "65536", "-1", "1:2:3", "a", "80:", ":80", "80: 81", "0080000", "+80"] {
            XCTAssertThrowsError(try PortForward.parseForward(bad), bad) { error in
                XCTAssertTrue("\(error)".hasPrefix("--forward \(bad): "), "\(error)")
            }
        }
        XCTAssertThrowsError(try PortForward.parseReverse("5678:auto"))
        XCTAssertEqual(PortForward(.forward, port: 8888, local: 0).spec, "8888:auto")
        XCTAssertEqual(PortForward(.reverse, port: 9, local: 8).spec, "8:9")
        XCTAssertEqual(try PortForward.parseReverse(PortForward(.reverse, port: 9, local: 8).spec), PortForward(.reverse, port: 9, local: 8))
    }

    func testClashes() {
        let existing = [PortForward(.forward, port: 8000, local: 18000), PortForward(.reverse, port: 5678, local: 5678)]
        XCTAssertNotNil(PortForward.firstClash([PortForward(.forward, port: 8000, local: 1)], existing: existing))
        XCTAssertNotNil(PortForward.firstClash([PortForward(.forward, port: 8001, local: 18000)], existing: existing))
        XCTAssertNotNil(PortForward.firstClash([PortForward(.reverse, port: 5678, local: 1)], existing: existing))
        XCTAssertNil(PortForward.firstClash([PortForward(.reverse, port: 8000, local: 8000)], existing: existing))
        XCTAssertNil(PortForward.firstClash([PortForward(.forward, port: 8001, local: 0), PortForward(.forward, port: 8002, local: 0)],
                                            existing: existing))
        XCTAssertNotNil(PortForward.firstClash([PortForward(.forward, port: 1, local: 2), PortForward(.forward, port: 1, local: 3)], existing: []))
    }

    struct Probe: PortProbe {
        var taken: Set<UInt16>
        func isFree(_ port: UInt16) -> Bool { !taken.contains(port) }
    }

    func testResolveLocals() throws {
        let resolved = try PortForward.resolveLocals([PortForward(.forward, port: 1, local: 0), PortForward(.forward, port: 2, local: 2),
                                                      PortForward(.reverse, port: 3, local: 3)],
                                                     probe: Probe(taken: [3]), freePort: { 4242 })
        XCTAssertEqual(resolved.map(\.local), [4242, 2, 3])
        XCTAssertThrowsError(try PortForward.resolveLocals([PortForward(.forward, port: 1, local: 3)], probe: Probe(taken: [3]))) { error in
            XCTAssertEqual(error as? ForwardError, .localTaken(port: 3, why: "in use"))
            XCTAssertTrue("\(error)".contains("cannot listen on 127.0.0.1:3"), "\(error)")
        }
    }

    func testDuplicateNamesTheSession() {
        let old = PortForward(.forward, port: 8000, local: 18000)
        let new = PortForward(.forward, port: 8000, local: 18001)
        XCTAssertThrowsError(try PortForward.resolveLocals([new], existing: [old], session: "s1", probe: Probe(taken: []))) { error in
            XCTAssertEqual(error as? ForwardError, .duplicate(new: new, existing: old, session: "s1"))
            XCTAssertTrue("\(error)".contains("(dbgbox forward s1 --remove 8000)"), "\(error)")
            XCTAssertFalse("\(error)".contains("NAME"), "\(error)")
        }
        XCTAssertThrowsError(try PortForward.resolveLocals([old, new], probe: Probe(taken: []))) { error in
            XCTAssertEqual("\(error)", "--forward \(new.spec) clashes with \(old.summary) given too: choose other ports")
        }
    }

    func testRecordAndStatusRows() throws {
        var record = SessionRecord(name: "s1", container: "s1", targetPort: 2201, localPort: 2201, created: Date(timeIntervalSince1970: 0),
                                   image: "i", user: "u", identityFile: "/k", logFile: "/l")
        let old = try SessionStore.encoder.encode(record)
        XCTAssertFalse(String(decoding: old, as: UTF8.self).contains("forwards"), "records without forwards stay as they were")
        record.forwards = [PortForward(.forward, port: 6006, local: 16006), PortForward(.reverse, port: 5678, local: 5678)]
        let again = try SessionStore.decoder.decode(SessionRecord.self, from: try SessionStore.encoder.encode(record))
        XCTAssertEqual(again, record)
        let row = SessionStatusRow(record: record, tunnel: .alive, container: .answering, now: Date(timeIntervalSince1970: 0), fastPath: "on")
        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: try JSONEncoder().encode(row)) as? [String: Any])
        let forwards = try XCTUnwrap(json["forwards"] as? [[String: Any]])
        XCTAssertEqual(forwards.count, 2)
        XCTAssertEqual(forwards[0]["direction"] as? String, "forward")
        XCTAssertEqual(forwards[0]["port"] as? Int, 6006)
        XCTAssertEqual(forwards[0]["local"] as? Int, 16006)
        XCTAssertTrue(SessionStatusRow.table([row]).contains("s1 forwards: 127.0.0.1:16006 → container 6006, container 5678 → 127.0.0.1:5678"))
        let bare = SessionStatusRow(record: SessionRecord(name: "s2", container: "s2", targetPort: 1, localPort: 1, created: Date(),
                                                          image: "i", user: "u", identityFile: "/k", logFile: "/l"),
                                    tunnel: .alive, container: .answering, now: Date(), fastPath: "on")
        XCTAssertFalse(SessionStatusRow.table([bare]).contains { $0.contains("forwards") })
    }

    func testControlProtocolRoundTrips() throws {
        let request = ForwardControlRequest(op: .add, forwards: [PortForward(.forward, port: 1, local: 0)])
        let line = try ForwardControl.encode(request)
        XCTAssertEqual(line.last, 10)
        XCTAssertEqual(line.filter { $0 == 10 }.count, 1, "one line")
        XCTAssertEqual(try ForwardControl.decode(ForwardControlRequest.self, line.dropLast()), request)
        let reply = ForwardControlReply(error: "x", forwards: [])
        XCTAssertEqual(try ForwardControl.decode(ForwardControlReply.self, try ForwardControl.encode(reply).dropLast()), reply)
    }

    /// The control socket end to end in process: a server answering with a handler, the client's
    /// request and reply, the socket 0600, gone after stop; nobody listening is one error.
    func testControlSocket() throws {
        let dir = NSTemporaryDirectory() + "fwd-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/s1.sock"
        let server = try ForwardControlServer(path: path) { request in
            ForwardControlReply(forwards: request.ports.map { PortForward(.forward, port: $0, local: $0 + 1) })
        }
        let mode = try XCTUnwrap(try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int)
        XCTAssertEqual(mode & 0o777, 0o600)
        let reply = try ForwardControl.send(ForwardControlRequest(op: .remove, ports: [7, 8]), to: path, session: "s1")
        XCTAssertEqual(reply.forwards.map(\.local), [8, 9])
        server.stop()
        XCTAssertFalse(FileManager.default.fileExists(atPath: path))
        XCTAssertThrowsError(try ForwardControl.send(ForwardControlRequest(op: .list), to: path, session: "s1")) { error in
            XCTAssertTrue("\(error)".hasPrefix("cannot reach the tunnel of session s1"), "\(error)")
        }
    }
}
