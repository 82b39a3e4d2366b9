import Foundation
import XCTest
@testable import DbgboxKit

/// `dbgbox ide` for a session of `dbgbox up`: the record gives alias, port, user, key, home and
/// mounts; Python is looked for through a runner in the container (a fake here), never docker.
final class IDESessionTests: XCTestCase {
    let hostKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPdEnfBREMo2QJpuuo8u1nPTjWmhz7JkePPbU8ppai4I root@c"
    var dir = ""
    var store: SessionStore { SessionStore(directory: "\(dir)/sessions") }
    var pinnedPath: String { "\(dir)/known_hosts" }

    override func setUpWithError() throws {
        dir = try containerTempDir(self)
    }

    struct FakeInspector: ProcessInspector {
        var alive: Bool
        func startTime(of pid: Int32) -> UInt64? { alive && pid == 4242 ? 777 : nil }
        func commandLine(of pid: Int32) -> Data? { Data("/usr/bin/dbgbox\0tunnel\0".utf8) }
    }

    func record(_ name: String, home: String? = "/home/alice", mounts: [PathMapping]? = nil) -> SessionRecord {
        SessionRecord(name: name, container: name, login: "alice@login", node: "gpu07", targetPort: 22042, localPort: 41234,
                      tunnelPID: 4242, tunnelStartTime: 777, created: Date(timeIntervalSince1970: 1_800_000_000),
                      image: "alice/ssh:latest", user: "alice", identityFile: "/home/alice/.ssh/id_dbgbox",
                      logFile: "\(dir)/\(name).log", home: home, mounts: mounts)
    }

    /// The finder with a fake container runner; `connected` collects what it was opened with.
    func finder(alive: Bool = true, runner: ContainerFakeRunner,
                connected: @escaping (SessionRecord, SSHPublicKey, String) -> Void = { _, _, _ in }) -> SessionIDETargetFinder {
        SessionIDETargetFinder(store: store, liveness: TunnelLiveness(inspector: FakeInspector(alive: alive)),
                               pinnedPath: pinnedPath) { record, pinned, key in
            connected(record, pinned, key)
            return runner
        }
    }

    func pin(_ name: String) throws {
        try PinnedHostKeys(path: pinnedPath).pin(alias: "dbgbox-\(name)", key: try SSHPublicKey(line: hostKey))
    }

    func testNameOrTheOnlySessionIsChosenAndSeveralAreAClearError() throws {
        let runner = ContainerFakeRunner { _ in ok("") }
        XCTAssertNil(try finder(runner: runner).record(named: nil), "no session: the caller looks for a local container")
        try store.insert(record("alice_1"))
        XCTAssertEqual(try finder(runner: runner).record(named: nil)?.name, "alice_1")
        XCTAssertEqual(try finder(runner: runner).record(named: "alice_1")?.name, "alice_1")
        XCTAssertNil(try finder(runner: runner).record(named: "alice_2"), "not a session: maybe a local container")
        XCTAssertNil(try finder(runner: runner).record(named: "../x"))
        try store.insert(record("alice_2"))
        assertOneLineError(try finder(runner: runner).record(named: nil), contains: "2 sessions are up (alice_1, alice_2): name one")
        XCTAssertEqual(try finder(runner: runner).record(named: "alice_2")?.name, "alice_2")
    }

    func testTargetComesFromTheRecordAndPythonFromTheContainer() throws {
        try pin("alice_1")
        let mounts = [PathMapping(source: "/home/alice", target: "/home/alice"), PathMapping(source: "/scratch/alice", target: "/data")]
        let runner = ContainerFakeRunner { _ in ok(IDEFixtures.text("discovery-conda.txt")) }
        var opened: (String, String, String)?
        let t = try finder(runner: runner) { record, pinned, key in opened = (record.name, pinned.fingerprintSHA256, key) }
            .target(for: record("alice_1", mounts: mounts), alias: "dbgbox-alice_1")
        let fingerprint = try SSHPublicKey(line: hostKey).fingerprintSHA256
        XCTAssertEqual(opened?.0, "alice_1")
        XCTAssertEqual(opened?.1, fingerprint, "the runner checks the pinned key")
        XCTAssertEqual(opened?.2, "/home/alice/.ssh/id_dbgbox")
        XCTAssertEqual(t, IDETarget(name: "alice_1", alias: "dbgbox-alice_1", port: 41234, user: "alice",
                                    identityFile: "/home/alice/.ssh/id_dbgbox", home: "/home/alice", mounts: mounts,
                                    interpreters: InterpreterDiscovery.parse(IDEFixtures.text("discovery-conda.txt")),
                                    hostKeyFingerprint: fingerprint, node: "gpu07"))
        // The runner is in the container already: the script is one argv, not wrapped in docker or ssh.
        XCTAssertEqual(runner.calls, [["sh", "-c", InterpreterDiscovery.script]])

        let other = try finder(runner: runner).target(for: record("alice_1"), identityFile: "/keys/other", alias: nil)
        XCTAssertEqual(other.identityFile, "/keys/other")
        XCTAssertNil(other.alias)
        XCTAssertEqual(other.mounts, [PathMapping(source: "/home/alice", target: "/home/alice")])
    }

    func testRecordWithoutHomeAsksTheContainer() throws {
        try pin("alice_1")
        let runner = ContainerFakeRunner { argv in
            argv.last == InterpreterDiscovery.script ? ok(IDEFixtures.text("discovery-system.txt")) : ok("/home/alice2")
        }
        let t = try finder(runner: runner).target(for: record("alice_1", home: nil), alias: nil)
        XCTAssertEqual(t.home, "/home/alice2")
        XCTAssertEqual(t.mounts, [PathMapping(source: "/home/alice2", target: "/home/alice2")])
    }

    func testDeadTunnelAndMissingPinAreClearErrorsBeforeConnecting() throws {
        let runner = ContainerFakeRunner { _ in ok("") }
        var connects = 0
        assertOneLineError(try finder(alive: false, runner: runner) { _, _, _ in connects += 1 }
            .target(for: record("alice_1"), alias: nil), contains: "the tunnel of session alice_1 is not running")
        assertOneLineError(try finder(runner: runner) { _, _, _ in connects += 1 }
            .target(for: record("alice_1"), alias: nil), contains: "no host key is pinned for dbgbox-alice_1")
        XCTAssertEqual(connects, 0)
    }

    func testNoPythonInTheSessionIsAClearError() throws {
        try pin("alice_1")
        assertOneLineError(try finder(runner: ContainerFakeRunner { _ in ok("") }).target(for: record("alice_1"), alias: nil),
                           contains: "no Python interpreter found in session alice_1")
    }
}
