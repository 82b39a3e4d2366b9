import Foundation
import SSH
import XCTest
@testable import DbgboxKit

/// `dbgbox status`'s container check with a fake handshake probe: each state, what the table and
/// `status --json` say about it, and that several sessions are probed at once within the timeout.
final class ContainerCheckTests: XCTestCase {
    static let pinnedLine = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPdEnfBREMo2QJpuuo8u1nPTjWmhz7JkePPbU8ppai4I root@c"
    static let otherLine = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGQ2t4DhzF0sHTl3dbz5NkOQYJQJ0Kg8D6vnvI3EE7Ub other"
    var dir = ""
    var pinnedPath: String { "\(dir)/known_hosts" }

    override func setUpWithError() throws {
        dir = try containerTempDir(self)
    }

    /// What the fake server at a port does in the handshake.
    enum Behaviour: Sendable {
        case presents(String)
        case closes
        case refuses
        case silent(seconds: Double)
    }

    /// Answers per port, and records which ports were probed.
    final class FakeProbe: ContainerHandshakeProbe, @unchecked Sendable {
        let behaviours: [UInt16: Behaviour]
        private let lock = NSLock()
        private var probed: [UInt16] = []

        init(_ behaviours: [UInt16: Behaviour]) { self.behaviours = behaviours }

        var ports: [UInt16] { lock.withLock { probed.sorted() } }

        func presentedKey(port: UInt16, timeout: Double) throws -> SSHPublicKey {
            lock.withLock { probed.append(port) }
            switch behaviours[port] ?? .refuses {
            case .presents(let line):
                return try SSHPublicKey(line: line)
            case .closes:
                throw SSHError(kind: .disconnected, code: -13, message: "Unable to exchange encryption keys", call: "libssh2_session_handshake")
            case .refuses:
                throw SSHError(kind: .connect, code: 0, message: "cannot connect to 127.0.0.1 port \(port): Connection refused", call: "connect")
            case .silent(let seconds):
                Thread.sleep(forTimeInterval: seconds)
                throw SSHError(kind: .timeout, code: -9, message: "Timed out waiting on socket", call: "libssh2_session_handshake")
            }
        }
    }

    struct FakeInspector: ProcessInspector {
        func startTime(of pid: Int32) -> UInt64? { pid == 4242 ? 777 : nil }
        func commandLine(of pid: Int32) -> Data? { Data("/usr/bin/dbgbox\0tunnel\0".utf8) }
    }

    func record(_ name: String, port: Int, tunnel: Int32? = 4242) -> SessionRecord {
        SessionRecord(name: name, container: name, login: "alice@login", node: "gpu07", targetPort: 22042, localPort: port,
                      tunnelPID: tunnel, tunnelStartTime: tunnel == nil ? nil : 777,
                      created: Date(timeIntervalSince1970: 1_800_000_000), expires: Date(timeIntervalSince1970: 1_800_003_600),
                      image: "alice/ssh:latest", user: "alice", identityFile: "/home/alice/.ssh/id_dbgbox",
                      logFile: "/state/\(name).log")
    }

    func check(_ probe: FakeProbe, timeout: Double = 2) -> ContainerCheck {
        ContainerCheck(probe: probe, liveness: TunnelLiveness(inspector: FakeInspector()), pinnedPath: pinnedPath, timeout: timeout)
    }

    func pin(_ names: [String]) throws {
        for name in names {
            try PinnedHostKeys(path: pinnedPath).pin(alias: "dbgbox-\(name)", key: try SSHPublicKey(line: Self.pinnedLine))
        }
    }

    var pinnedFingerprint: String { (try? SSHPublicKey(line: Self.pinnedLine).fingerprintSHA256) ?? "?" }
    var otherFingerprint: String { (try? SSHPublicKey(line: Self.otherLine).fingerprintSHA256) ?? "?" }

    func testEachSessionGetsItsState() throws {
        try pin(["same", "changed", "gone", "refused", "dead", "foreground"])
        let probe = FakeProbe([40001: .presents(Self.pinnedLine), 40002: .presents(Self.otherLine), 40003: .closes,
                               40004: .refuses, 40006: .presents(Self.pinnedLine), 40007: .presents(Self.pinnedLine)])
        let records = [record("same", port: 40001), record("changed", port: 40002), record("gone", port: 40003),
                       record("refused", port: 40004), record("dead", port: 40005, tunnel: 999),
                       record("foreground", port: 40006, tunnel: nil), record("unpinned", port: 40007)]
        let states = check(probe).states(of: records)
        XCTAssertEqual(states, [
            .answering,
            .hostKeyChanged(pinned: pinnedFingerprint, presented: otherFingerprint),
            .notAnswering(why: "the connection was closed before the SSH handshake"),
            .notAnswering(why: "cannot connect to 127.0.0.1 port 40004: Connection refused"),
            .unknown(why: "the tunnel is not running"),
            .answering,
            .unknown(why: "no host key is pinned for dbgbox-unpinned in \(pinnedPath)"),
        ])
        // A dead tunnel's port may be someone else's now, and an unpinned key cannot be compared: not probed.
        XCTAssertEqual(probe.ports, [40001, 40002, 40003, 40004, 40006])
    }

    func testAPinnedKeyWithAnotherCommentIsTheSameKey() throws {
        try PinnedHostKeys(path: pinnedPath).pin(alias: "dbgbox-a", key: try SSHPublicKey(line: Self.pinnedLine))
        let presented = Self.pinnedLine.replacingOccurrences(of: "root@c", with: "")
        XCTAssertEqual(check(FakeProbe([40001: .presents(presented)])).states(of: [record("a", port: 40001)]), [.answering])
    }

    func testUnreadablePinnedFileIsUnknownNotACrash() throws {
        try Data("dbgbox-a ssh-ed25519 not-base64\n".utf8).write(to: URL(fileURLWithPath: pinnedPath))
        let states = check(FakeProbe([:])).states(of: [record("a", port: 40001)])
        guard case .unknown(let why)? = states.first else { return XCTFail("\(states)") }
        XCTAssertTrue(why.hasPrefix("the pinned key of dbgbox-a in \(pinnedPath) is unreadable: "), why)
        XCTAssertEqual(check(FakeProbe([:])).states(of: [record("b", port: 0), record("c", port: 70000)]).map(\.field),
                       ["unknown", "unknown"])
    }

    /// Three silent sessions cost one timeout, not three; a probe that outlives it is "not answering".
    func testSessionsAreProbedAtOnceWithinTheTimeout() throws {
        let names = ["s1", "s2", "s3"]
        try pin(names)
        let probe = FakeProbe([40001: .silent(seconds: 0.6), 40002: .silent(seconds: 0.6), 40003: .silent(seconds: 0.6)])
        var start = Date()
        let states = check(probe, timeout: 1).states(of: names.enumerated().map { record($1, port: 40001 + $0) })
        XCTAssertLessThan(Date().timeIntervalSince(start), 1.2, "probed one after the other")
        XCTAssertEqual(states, Array(repeating: .notAnswering(why: "no SSH handshake within 1 s"), count: 3))

        let hanging = FakeProbe([40001: .silent(seconds: 3), 40002: .presents(Self.pinnedLine)])
        start = Date()
        let mixed = check(hanging, timeout: 0.3).states(of: [record("s1", port: 40001), record("s2", port: 40002)])
        XCTAssertLessThan(Date().timeIntervalSince(start), 1, "waited for a probe past the timeout")
        XCTAssertEqual(mixed, [.notAnswering(why: "no SSH handshake within 0.3 s"), .answering])
    }

    func testEachStateGivesItsJSONFieldColumnAndAdvice() throws {
        let cases: [(ContainerState, field: String, column: String, advice: String?)] = [
            (.answering, "answering", "answering (pinned key)", nil),
            (.hostKeyChanged(pinned: "SHA256:pinned", presented: "SHA256:new"), "host key changed", "HOST KEY CHANGED",
             "s1: the container presents host key SHA256:new, not SHA256:pinned pinned for dbgbox-s1 (ssh warns REMOTE HOST IDENTIFICATION HAS CHANGED and refuses): it was replaced, or another program holds the port; run `dbgbox down s1`, then `dbgbox up …` again for a new container"),
            (.notAnswering(why: "the connection was closed before the SSH handshake"), "not answering", "not answering",
             "s1: the tunnel runs but the container does not answer (the connection was closed before the SSH handshake): it was stopped or removed (a dockerd restart removes it), or the node is unreachable (see /state/s1.log); run `dbgbox down s1`, then `dbgbox up …` again for a new container"),
            (.unknown(why: "the tunnel is not running"), "unknown", "unknown",
             "s1: container not checked (the tunnel is not running); run `dbgbox down s1`, then `dbgbox up …` again for a new container"),
        ]
        for (state, field, column, advice) in cases {
            XCTAssertEqual(state.field, field)
            XCTAssertEqual(state.column, column)
            XCTAssertEqual(state.advice(session: "s1", logFile: "/state/s1.log"), advice)
            XCTAssertFalse(advice?.contains("\n") ?? false)

            let row = SessionStatusRow(record: record("s1", port: 40001), tunnel: .alive, container: state,
                                       now: Date(timeIntervalSince1970: 1_800_000_000), fastPath: "on (test)")
            let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: JSONEncoder().encode(row)) as? [String: Any])
            XCTAssertEqual(json["container_state"] as? String, field)
            XCTAssertEqual(json["container_advice"] as? String, advice)
            // The fields of before are all still there, under the same names.
            for key in ["name", "container", "login", "node", "local_port", "node_port", "tunnel", "tunnel_pid", "alive",
                        "ttl_left_seconds", "expires", "log", "fast_path"] {
                XCTAssertNotNil(json[key], key)
            }
            XCTAssertNil(json["stateColumn"])
            XCTAssertEqual(json["container"] as? String, "s1", "container is still the container's name")
            XCTAssertEqual(json["alive"] as? Bool, true, "alive is still the tunnel's")

            let table = SessionStatusRow.table([row])
            XCTAssertEqual(table.first, "NAME\tCONTAINER\tNODE\tPORTS\tTUNNEL\tSTATE\tTTL LEFT")
            XCTAssertEqual(table[1], "s1\ts1\tgpu07\t127.0.0.1:40001 → 22042\talive\t\(column)\t1h")
            XCTAssertEqual(Array(table.dropFirst(2)), advice.map { [$0] } ?? [])
        }
        XCTAssertEqual(SessionStatusRow.table([]), ["no sessions"])
    }

    func testTunnelRefusalNamesTheTargetAndWhatToRun() {
        let reason = "\(TunnelEventLog.targetUnreachable): Channel open failure (connect failed)"
        XCTAssertEqual(TunnelEventLog.refusedLine(peer: "127.0.0.1:5000", reason: reason, target: "127.0.0.1:22042"),
                       "refused connection from 127.0.0.1:5000: the node could not open the connection: Channel open failure (connect failed); nothing answers at 127.0.0.1:22042 on the node: the container stopped or was removed (a dockerd restart removes it): `dbgbox status` checks it; `dbgbox down NAME`, then `dbgbox up …`, makes a new one")
        XCTAssertTrue(TunnelEventLog.refusedLine(peer: "127.0.0.1:5000", reason: reason, target: "127.0.0.1:22042", session: "alice_1")
            .hasSuffix("`dbgbox down alice_1`, then `dbgbox up …`, makes a new one"))
        XCTAssertEqual(TunnelEventLog.refusedLine(peer: "127.0.0.1:5000", reason: "the tunnel is reconnecting", target: "127.0.0.1:22042"),
                       "refused connection from 127.0.0.1:5000: the tunnel is reconnecting")
    }
}
