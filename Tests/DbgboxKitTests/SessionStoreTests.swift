import Foundation
import XCTest
@testable import DbgboxKit

/// Session records in the XDG state directory, and telling a live tunnel from a reused pid.
final class SessionStoreTests: XCTestCase {
    var dir = ""
    let fs = LocalFileSystem()

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "dbgbox-store-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: dir)
    }

    func record(_ name: String, created: TimeInterval = 1_800_000_000, pid: Int32? = 4242,
                start: UInt64? = 777) -> SessionRecord {
        SessionRecord(name: name, container: "alice_\(name)", login: "alice@login", node: "node7", gpus: ["0", "3"],
                      targetPort: 22001, localPort: 2201, tunnelPID: pid, tunnelStartTime: start,
                      created: Date(timeIntervalSince1970: created), expires: Date(timeIntervalSince1970: created + 3600),
                      image: "alice/ssh:latest", user: "alice", identityFile: "/home/alice/.ssh/id_dbgbox",
                      logFile: "/home/alice/.local/state/dbgbox/sessions/\(name).log")
    }

    func testDefaultDirectoryFollowsXDG() {
        XCTAssertEqual(SessionStore.defaultDirectory(environment: ["XDG_STATE_HOME": "/x/state"], home: "/h"),
                       "/x/state/dbgbox/sessions")
        XCTAssertEqual(SessionStore.defaultDirectory(environment: ["XDG_STATE_HOME": "/x/state/"], home: "/h"),
                       "/x/state/dbgbox/sessions")
        // Relative or empty values are ignored, as the XDG spec says.
        for env in [[:], ["XDG_STATE_HOME": ""], ["XDG_STATE_HOME": "rel/state"]] {
            XCTAssertEqual(SessionStore.defaultDirectory(environment: env, home: "/h"), "/h/.local/state/dbgbox/sessions")
        }
    }

    func testSaveLoadListRemoveRoundTrip() throws {
        let store = SessionStore(directory: "\(dir)/state/dbgbox/sessions")
        XCTAssertEqual(try store.list(), SessionListing())
        XCTAssertNil(try store.load("a"))
        XCTAssertFalse(try store.remove("a"))

        let b = record("b", created: 2_000_000_000)
        var a = record("a")
        a.login = nil
        a.node = nil
        a.tunnelPID = nil
        a.tunnelStartTime = nil
        a.expires = nil
        try store.save(b)
        try store.insert(a)
        XCTAssertEqual(try fs.mode(of: store.directory), 0o700)
        XCTAssertEqual(try fs.mode(of: store.path(for: "a")), 0o600)
        XCTAssertEqual(try store.load("a"), a)
        XCTAssertEqual(try store.load("b"), b)
        XCTAssertEqual(try store.list().records, [a, b], "oldest first")

        XCTAssertThrowsError(try store.insert(a)) { XCTAssertEqual($0 as? SessionError, .sessionExists("a")) }
        var moved = b
        moved.localPort = 2299
        try store.save(moved)
        XCTAssertEqual(try store.load("b"), moved)

        XCTAssertTrue(try store.remove("a"))
        XCTAssertEqual(try store.list().records, [moved])
        XCTAssertEqual(b.alias, "dbgbox-b")
        XCTAssertEqual(b.timeLeft(at: Date(timeIntervalSince1970: 2_000_000_000 + 600)), 3000)
    }

    func testRecordIsPlainJSON() throws {
        let store = SessionStore(directory: dir)
        try store.save(record("a"))
        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: fs.read(store.path(for: "a"))) as? [String: Any])
        XCTAssertEqual(json["created"] as? String, "2027-01-15T08:00:00Z")
        XCTAssertEqual(json["tunnelStartTime"] as? Int, 777)
        XCTAssertEqual(json["gpus"] as? [String], ["0", "3"])
        XCTAssertEqual(Set(json.keys), ["name", "container", "login", "node", "gpus", "targetPort", "localPort", "tunnelPID",
                                        "tunnelStartTime", "created", "expires", "image", "user", "identityFile", "logFile"])
    }

    func testUnreadableFilesAreListedApartAndNamesAreChecked() throws {
        let store = SessionStore(directory: dir)
        try store.save(record("good"))
        try fs.writeAtomically(Data("{not json".utf8), to: "\(dir)/bad.json", mode: 0o600)
        try fs.writeAtomically(Data("x".utf8), to: "\(dir)/notes.txt", mode: 0o600)
        let listing = try store.list()
        XCTAssertEqual(listing.records.map(\.name), ["good"])
        XCTAssertEqual(listing.unreadable, ["\(dir)/bad.json"])
        XCTAssertThrowsError(try store.load("bad")) {
            XCTAssertEqual($0 as? SessionError, .unreadableRecord(path: "\(dir)/bad.json"))
        }
        for name in ["../x", "", ".lock", "a b"] {
            XCTAssertThrowsError(try store.load(name)) { XCTAssertEqual($0 as? SessionError, .invalidName(name)) }
            XCTAssertThrowsError(try store.save(record(name)), name)
        }
    }

    struct FakeInspector: ProcessInspector {
        var processes: [Int32: (UInt64, String)]
        func startTime(of pid: Int32) -> UInt64? { processes[pid]?.0 }
        func commandLine(of pid: Int32) -> Data? { processes[pid].map { Data($0.1.utf8) } }
    }

    func testLivenessNeedsPidStartTimeAndDbgboxCommandLine() {
        let liveness = TunnelLiveness(inspector: FakeInspector(processes: [
            4242: (777, "/usr/local/bin/dbgbox\0tunnel\0--session\0a\0"),
            5000: (777, "/usr/bin/vim\0notes\0"),
            6000: (900, "/usr/local/bin/dbgbox\0tunnel\0"),
        ]))
        XCTAssertEqual(liveness.state(of: record("a")), .alive)
        XCTAssertTrue(liveness.isTunnelAlive(record("a")))
        XCTAssertEqual(liveness.state(of: record("a", pid: 5000)), .notDbgbox)
        XCTAssertEqual(liveness.state(of: record("a", pid: 6000)), .pidReused)
        XCTAssertEqual(liveness.state(of: record("a", pid: 1234)), .gone)
        XCTAssertEqual(liveness.state(of: record("a", pid: nil)), .notRecorded)
        XCTAssertEqual(liveness.state(of: record("a", start: nil)), .notRecorded)
        for pid: Int32 in [5000, 6000, 1234] { XCTAssertFalse(liveness.isTunnelAlive(record("a", pid: pid))) }
    }

    /// /proc/PID/stat is read from the last ')', since the command name may hold both.
    func testProcStatParsing() throws {
        func stat(_ pid: Int32, comm: String, state: String, start: UInt64) throws {
            try fs.createDirectory("\(dir)/\(pid)", mode: 0o755)
            let rest = (4...21).map { String($0) }.joined(separator: " ")
            try fs.writeAtomically(Data("\(pid) (\(comm)) \(state) \(rest) \(start) 23 24\n".utf8), to: "\(dir)/\(pid)/stat", mode: 0o644)
        }
        try stat(10, comm: "dbgbox) (x y", state: "S", start: 123456)
        try stat(11, comm: "dbgbox", state: "Z", start: 5)
        let proc = ProcFSInspector(procRoot: dir)
        XCTAssertEqual(proc.startTime(of: 10), 123456)
        XCTAssertNil(proc.startTime(of: 11), "a zombie is not a running tunnel")
        XCTAssertNil(proc.startTime(of: 12))
        XCTAssertNil(proc.startTime(of: 0))
    }

    func testLivenessAgainstRealProcesses() throws {
        let proc = ProcFSInspector()
        // sh keeps its $0 in its command line, and `; true` stops it from exec'ing sleep.
        let tunnel = try ChildProcess(["sh", "-c", "sleep 30; true", "dbgbox-tunnel"], stdout: .null, stderr: .null)
        let other = try ChildProcess(["sleep", "30"], stdout: .null, stderr: .null)
        defer {
            tunnel.signal(SIGKILL); tunnel.wait()
            other.signal(SIGKILL); other.wait()
        }
        let start = try XCTUnwrap(proc.startTime(of: tunnel.pid))
        let liveness = TunnelLiveness()
        XCTAssertEqual(liveness.state(of: record("a", pid: tunnel.pid, start: start)), .alive)
        XCTAssertEqual(liveness.state(of: record("a", pid: tunnel.pid, start: start + 1)), .pidReused)
        let otherStart = try XCTUnwrap(proc.startTime(of: other.pid))
        XCTAssertEqual(liveness.state(of: record("a", pid: other.pid, start: otherStart)), .notDbgbox)
        tunnel.signal(SIGKILL)
        tunnel.wait()
        XCTAssertEqual(liveness.state(of: record("a", pid: tunnel.pid, start: start)), .gone)
    }
}
