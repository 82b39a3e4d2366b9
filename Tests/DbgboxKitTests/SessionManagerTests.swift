import Foundation
import XCTest
@testable import DbgboxKit

/// `up` and `down` as steps, with a fake node and fake tunnels over a scratch directory.
final class SessionManagerTests: XCTestCase {
    var dir = ""
    let hostKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPdEnfBREMo2QJpuuo8u1nPTjWmhz7JkePPbU8ppai4I root@c"

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "dbgbox-manager-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: "\(dir)/home/.ssh", withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: dir)
    }

    final class Journal: @unchecked Sendable {
        var steps: [String] = []
    }

    final class FakeNode: SessionNodeOperations {
        let journal: Journal
        let pinnedPath: String
        let key: String
        var failCreate = false
        var failRemove = false
        var containers: Set<String> = []
        init(journal: Journal, pinnedPath: String, key: String) {
            self.journal = journal
            self.pinnedPath = pinnedPath
            self.key = key
        }
        func ensureImage() throws -> String { journal.steps.append("image"); return "alice/ssh:latest" }
        func createContainer(image: String) throws -> SessionContainer {
            journal.steps.append("create")
            if failCreate { throw DbgboxError("docker run failed") }
            try PinnedHostKeys(path: pinnedPath).pin(alias: "dbgbox-alice_00042", key: try SSHPublicKey(line: key))
            containers.insert("alice_00042")
            return SessionContainer(name: "alice_00042", port: 22042, user: "alice", image: image, gpus: [],
                                    expires: Date(timeIntervalSince1970: 1_900_000_000))
        }
        func removeContainer(_ name: String) throws {
            journal.steps.append("rm \(name)")
            if failRemove { throw DbgboxError("node unreachable") }
            containers.remove(name)   // already gone: fine
        }
    }

    final class FakeTunnels: SessionTunnelControl {
        let journal: Journal
        var failStart = false
        var stopped: [Int32] = []
        init(journal: Journal) { self.journal = journal }
        func localPort(preferring preferred: Int) throws -> Int { journal.steps.append("port"); return 2242 }
        func start(_ launch: TunnelLaunch) throws -> LaunchedTunnel {
            journal.steps.append("tunnel \(launch.localPort)->\(launch.targetPort)")
            try Data("ready: 127.0.0.1:2242\n".utf8).write(to: URL(fileURLWithPath: launch.logFile))
            if failStart { throw DbgboxError("the tunnel did not come up") }
            return LaunchedTunnel(pid: 4242, startTime: 777)
        }
        func stop(pid: Int32) { journal.steps.append("stop \(pid)"); stopped.append(pid) }
    }

    struct FakeInspector: ProcessInspector {
        var alive: Bool
        func startTime(of pid: Int32) -> UInt64? { alive && pid == 4242 ? 777 : nil }
        func commandLine(of pid: Int32) -> Data? { Data("/usr/bin/dbgbox\0tunnel\0".utf8) }
    }

    var home: String { "\(dir)/home" }
    var pinned: String { "\(home)/.ssh/dbgbox/known_hosts" }

    func manager(alive: Bool = true) -> SessionManager {
        Self.manager(dir: dir, inspector: FakeInspector(alive: alive))
    }

    /// A manager over `dir` (home in `dir`/home, state in `dir`/state); tunnel 4242 alive per `inspector`.
    static func manager(dir: String, inspector: ProcessInspector) -> SessionManager {
        let home = "\(dir)/home"
        let config = SSHClientConfigFile(path: "\(home)/.ssh/dbgbox/config")
        let include = SSHConfigInclude(home: home, dbgboxConfig: config, includeTarget: config.path)
        let store = SessionStore(directory: "\(dir)/state/dbgbox/sessions")
        return SessionManager(store: store, hostConfig: config, include: include, pinnedPath: "\(home)/.ssh/dbgbox/known_hosts",
                              knownHostsPath: "\(home)/.ssh/known_hosts",
                              stateDirectory: SessionManager.defaultStateDirectory(sessionsDirectory: store.directory),
                              liveness: TunnelLiveness(inspector: inspector))
    }

    func read(_ path: String) -> String? { try? String(contentsOfFile: path, encoding: .utf8) }

    let userConfig = "# my config\nHost *\n    ServerAliveInterval 30\n"
    let userKnownHosts = "github.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHnB7m2wR0VQ1n9r5wJX3hWgL8b0cC4V5d6e7f8g9h0i\n"

    func writeUserFiles() throws {
        try userConfig.write(toFile: "\(home)/.ssh/config", atomically: true, encoding: .utf8)
        try userKnownHosts.write(toFile: "\(home)/.ssh/known_hosts", atomically: true, encoding: .utf8)
    }

    func testUpWritesEverythingAndDownRemovesEverything() throws {
        try writeUserFiles()
        let journal = Journal()
        let node = FakeNode(journal: journal, pinnedPath: pinned, key: hostKey)
        let tunnels = FakeTunnels(journal: journal)
        let m = manager()
        let result = try m.up(.init(login: "alice@login", node: "gpu07", identityFile: "\(home)/.ssh/id_dbgbox",
                                    options: Data("{}".utf8)), node: node, tunnels: tunnels)
        XCTAssertEqual(journal.steps, ["image", "create", "port", "tunnel 2242->22042"])
        XCTAssertEqual(result.includeOutcome, .added)
        XCTAssertNil(result.instruction)
        let record = try XCTUnwrap(try m.store.load("alice_00042"))
        XCTAssertEqual(record.tunnelPID, 4242)
        XCTAssertEqual(record.tunnelStartTime, 777)
        XCTAssertEqual(record.localPort, 2242)
        XCTAssertEqual(record.targetPort, 22042)
        XCTAssertEqual(record.login, "alice@login")
        XCTAssertEqual(try m.hostConfig.block(named: "alice_00042")?.port, 2242)
        XCTAssertEqual(read("\(home)/.ssh/config"), "Include \(m.hostConfig.path)\n" + userConfig)
        // An entry ssh wrote for the tunnel port, without the alias.
        try (userKnownHosts + "[127.0.0.1]:2242 \(hostKey)\n").write(toFile: "\(home)/.ssh/known_hosts", atomically: true, encoding: .utf8)

        journal.steps = []
        let report = try m.down(record, node: { node }, tunnels: tunnels)
        XCTAssertEqual(journal.steps, ["stop 4242", "rm alice_00042"])
        XCTAssertTrue(report.stoppedTunnel)
        XCTAssertTrue(report.removedHostBlock)
        XCTAssertTrue(report.removedPinnedKey)
        XCTAssertEqual(report.knownHostsEntries.map(\.host), ["[127.0.0.1]:2242"])
        XCTAssertEqual(read("\(home)/.ssh/config"), userConfig)
        XCTAssertEqual(read("\(home)/.ssh/known_hosts"), userKnownHosts)
        XCTAssertNil(try m.store.load("alice_00042"))
        XCTAssertFalse(FileManager.default.fileExists(atPath: record.logFile))
        XCTAssertFalse(FileManager.default.fileExists(atPath: m.optionsPath("alice_00042")))
        XCTAssertFalse(FileManager.default.fileExists(atPath: m.hostConfig.path))
        XCTAssertFalse(read(pinned)?.contains("dbgbox-alice_00042") ?? false)
    }

    /// The tunnel fails: the log, options, pinned key and container go, in reverse order.
    func testTunnelFailureUndoesInReverseOrder() throws {
        try writeUserFiles()
        let journal = Journal()
        let node = FakeNode(journal: journal, pinnedPath: pinned, key: hostKey)
        let tunnels = FakeTunnels(journal: journal)
        tunnels.failStart = true
        let m = manager()
        XCTAssertThrowsError(try m.up(.init(login: "l", node: "n", identityFile: "\(home)/.ssh/id_dbgbox",
                                            options: Data("{}".utf8)), node: node, tunnels: tunnels))
        XCTAssertEqual(journal.steps, ["image", "create", "port", "tunnel 2242->22042", "rm alice_00042"])
        XCTAssertTrue(node.containers.isEmpty)
        XCTAssertFalse(read(pinned)?.contains("dbgbox-alice_00042") ?? false)
        XCTAssertFalse(FileManager.default.fileExists(atPath: m.logPath("alice_00042")))
        XCTAssertFalse(FileManager.default.fileExists(atPath: m.optionsPath("alice_00042")))
        XCTAssertTrue(try m.store.list().records.isEmpty)
        XCTAssertEqual(read("\(home)/.ssh/config"), userConfig)
        XCTAssertFalse(FileManager.default.fileExists(atPath: m.hostConfig.path))
    }

    /// An unexpected error after each step of `up` in turn (issue 12, item 2): everything made is
    /// undone, in reverse, and the user's own files are as they were, byte for byte.
    func testAnUnexpectedErrorAfterEachStepUndoesEverything() throws {
        for step in ["image", "container", "tunnel", "record", "host block"] {
            try writeUserFiles()
            let journal = Journal()
            let node = FakeNode(journal: journal, pinnedPath: pinned, key: hostKey)
            var m = manager()
            m.afterStep = { if $0 == step { throw DbgboxError("unexpected failure after \(step)") } }
            XCTAssertThrowsError(try m.up(.init(login: "l", node: "n", identityFile: "\(home)/.ssh/id_dbgbox",
                                                options: Data("{}".utf8)), node: node, tunnels: FakeTunnels(journal: journal))) { error in
                XCTAssertEqual("\(error)", "unexpected failure after \(step)", step)
            }
            XCTAssertTrue(node.containers.isEmpty, step)
            XCTAssertEqual(journal.steps.last, step == "image" ? "image" : "rm alice_00042", "\(step): \(journal.steps)")
            XCTAssertFalse(read(pinned)?.contains("dbgbox-alice_00042") ?? false, step)
            XCTAssertFalse(FileManager.default.fileExists(atPath: m.logPath("alice_00042")), step)
            XCTAssertFalse(FileManager.default.fileExists(atPath: m.optionsPath("alice_00042")), step)
            XCTAssertTrue(try m.store.list().records.isEmpty, step)
            XCTAssertEqual(read("\(home)/.ssh/config"), userConfig, step)
            XCTAssertEqual(read("\(home)/.ssh/known_hosts"), userKnownHosts, step)
            XCTAssertFalse(read(m.hostConfig.path)?.contains("dbgbox-alice_00042") ?? false, step)
        }
    }

    /// A failed step whose undo also fails says what is left and how to remove it.
    func testAFailureWhoseUndoFailsSaysWhatIsLeft() throws {
        let journal = Journal()
        let node = FakeNode(journal: journal, pinnedPath: pinned, key: hostKey)
        node.failRemove = true
        let tunnels = FakeTunnels(journal: journal)
        tunnels.failStart = true
        XCTAssertThrowsError(try manager().up(.init(login: "l", node: "n", identityFile: "/k"), node: node, tunnels: tunnels)) { error in
            XCTAssertEqual("\(error)", "the tunnel did not come up; could not undo the container alice_00042 (node unreachable): "
                           + "remove what is left with `dbgbox cleanup` (with --login and --node for the container)")
        }
    }

    /// A failure after the tunnel started (the record's name is taken) stops the tunnel before
    /// removing the container.
    func testRecordFailureStopsTunnelThenRemovesContainer() throws {
        let journal = Journal()
        let node = FakeNode(journal: journal, pinnedPath: pinned, key: hostKey)
        let tunnels = FakeTunnels(journal: journal)
        let m = manager()
        let other = SessionRecord(name: "alice_00042", container: "x", targetPort: 1, localPort: 1, created: Date(),
                                  image: "i", user: "alice", identityFile: "/k", logFile: "/l")
        try m.store.insert(other)
        XCTAssertThrowsError(try m.up(.init(login: "l", node: "n", identityFile: "\(home)/.ssh/id_dbgbox"),
                                      node: node, tunnels: tunnels)) { error in
            XCTAssertEqual(error as? SessionError, .sessionExists("alice_00042"))
        }
        XCTAssertEqual(journal.steps, ["image", "create", "port", "tunnel 2242->22042", "stop 4242", "rm alice_00042"])
        XCTAssertEqual(try m.store.load("alice_00042")?.container, "x", "someone else's record must stay")
    }

    func testContainerFailureLeavesNothing() throws {
        let journal = Journal()
        let node = FakeNode(journal: journal, pinnedPath: pinned, key: hostKey)
        node.failCreate = true
        let m = manager()
        XCTAssertThrowsError(try m.up(.init(login: "l", node: "n", identityFile: "/k"), node: node,
                                      tunnels: FakeTunnels(journal: journal)))
        XCTAssertEqual(journal.steps, ["image", "create"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(home)/.ssh/config"))
    }

    /// A manager whose `up` gets `signal` right after `step` (as a signal watcher would deliver it).
    func interrupted(at step: String, by signal: Int32, nothingMade: @escaping @Sendable (Int32) -> Void = { _ in })
        -> SessionManager {
        var m = manager()
        let interruption = Interruption(nothingMade: nothingMade)
        m.interruption = interruption
        m.afterStep = { if $0 == step { interruption.receive(signal) } }
        return m
    }

    /// Ctrl-C once the container exists: it, its pinned key and the options file go; exit 130.
    func testInterruptAfterContainerUndoesIt() throws {
        try writeUserFiles()
        let journal = Journal()
        let node = FakeNode(journal: journal, pinnedPath: pinned, key: hostKey)
        let m = interrupted(at: "container", by: SIGINT)
        XCTAssertThrowsError(try m.up(.init(login: "l", node: "n", identityFile: "/k", options: Data("{}".utf8)),
                                      node: node, tunnels: FakeTunnels(journal: journal))) { error in
            XCTAssertEqual(error as? SessionManagerError,
                           .interrupted(signal: SIGINT, undone: ["options file", "pinned host key", "container alice_00042"], failed: []))
            XCTAssertEqual((error as? SessionManagerError)?.exitCode, 130)
            XCTAssertEqual("\(error)", "up interrupted by SIGINT: undid the options file, the pinned host key, the container alice_00042; nothing of the session is left")
        }
        XCTAssertEqual(journal.steps, ["image", "create", "rm alice_00042"], "no tunnel was started")
        XCTAssertTrue(node.containers.isEmpty)
        XCTAssertFalse(read(pinned)?.contains("dbgbox-alice_00042") ?? false)
        XCTAssertFalse(FileManager.default.fileExists(atPath: m.optionsPath("alice_00042")))
        XCTAssertEqual(read("\(home)/.ssh/config"), userConfig)
    }

    /// SIGTERM after the last step: the whole session goes again, in reverse order; exit 143.
    func testTerminateAfterHostBlockUndoesEverything() throws {
        try writeUserFiles()
        let journal = Journal()
        let node = FakeNode(journal: journal, pinnedPath: pinned, key: hostKey)
        let tunnels = FakeTunnels(journal: journal)
        let m = interrupted(at: "host block", by: SIGTERM)
        XCTAssertThrowsError(try m.up(.init(login: "l", node: "n", identityFile: "/k", options: Data("{}".utf8)),
                                      node: node, tunnels: tunnels)) { error in
            XCTAssertEqual(error as? SessionManagerError, .interrupted(
                signal: SIGTERM, undone: ["Host block dbgbox-alice_00042", "session record", "tunnel", "tunnel log", "options file",
                                          "pinned host key", "container alice_00042"], failed: []))
            XCTAssertEqual((error as? SessionManagerError)?.exitCode, 143)
        }
        XCTAssertEqual(journal.steps, ["image", "create", "port", "tunnel 2242->22042", "stop 4242", "rm alice_00042"])
        XCTAssertTrue(try m.store.list().records.isEmpty)
        XCTAssertFalse(FileManager.default.fileExists(atPath: m.hostConfig.path))
        XCTAssertFalse(FileManager.default.fileExists(atPath: m.logPath("alice_00042")))
        XCTAssertEqual(read("\(home)/.ssh/config"), userConfig, "the Include line goes with the block")
    }

    /// A signal before the container step has nothing to undo: the command ends at once
    /// (`nothingMade`); were it to return, `up` would still stop before making anything.
    func testInterruptDuringImageStepMakesNothing() throws {
        let journal = Journal()
        let node = FakeNode(journal: journal, pinnedPath: pinned, key: hostKey)
        final class Seen: @unchecked Sendable { var signals: [Int32] = [] }
        let seen = Seen()
        let m = interrupted(at: "image", by: SIGINT) { seen.signals.append($0) }
        XCTAssertThrowsError(try m.up(.init(login: "l", node: "n", identityFile: "/k"), node: node,
                                      tunnels: FakeTunnels(journal: journal))) { error in
            XCTAssertEqual(error as? SessionManagerError, .interrupted(signal: SIGINT, undone: [], failed: []))
        }
        XCTAssertEqual(seen.signals, [SIGINT])
        XCTAssertEqual(journal.steps, ["image"])
    }

    /// What cannot be undone (the node unreachable) is named, with where to go next.
    func testInterruptWhoseUndoFailsSaysWhatIsLeft() throws {
        let journal = Journal()
        let node = FakeNode(journal: journal, pinnedPath: pinned, key: hostKey)
        node.failRemove = true
        let m = interrupted(at: "container", by: SIGINT)
        let text = assertOneLineError(try m.up(.init(login: "l", node: "n", identityFile: "/k"), node: node,
                                               tunnels: FakeTunnels(journal: journal)),
                                      contains: "could not undo the container alice_00042 (node unreachable)")
        XCTAssertTrue(text.contains("dbgbox cleanup"), text)
        XCTAssertFalse(read(pinned)?.contains("dbgbox-alice_00042") ?? false, "the rest is still undone")
    }

    /// Tunnel dead, container gone, block deleted by hand: down still finishes and removes the record.
    func testDownWhenPiecesAreAlreadyGone() throws {
        let journal = Journal()
        let node = FakeNode(journal: journal, pinnedPath: pinned, key: hostKey)
        let tunnels = FakeTunnels(journal: journal)
        let result = try manager().up(.init(login: "l", node: "n", identityFile: "/k"), node: node, tunnels: tunnels)
        node.containers = []
        try manager().hostConfig.remove(name: "alice_00042")
        journal.steps = []
        let m = manager(alive: false)
        let report = try m.down(result.record, node: { node }, tunnels: tunnels)
        XCTAssertEqual(report.tunnel, .gone)
        XCTAssertFalse(report.stoppedTunnel)
        XCTAssertEqual(journal.steps, ["rm alice_00042"], "a dead tunnel's pid is never signalled")
        XCTAssertFalse(report.removedHostBlock)
        XCTAssertNil(try m.store.load("alice_00042"))
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(home)/.ssh/config"), "created by up, removed by down")
        // Twice is fine: nothing left to do, no record to find.
        XCTAssertThrowsError(try m.select(name: "alice_00042", all: false))
    }

    /// The node unreachable: the local pieces go, the record stays for a retry.
    func testDownKeepsRecordWhenNodeUnreachable() throws {
        let journal = Journal()
        let node = FakeNode(journal: journal, pinnedPath: pinned, key: hostKey)
        let tunnels = FakeTunnels(journal: journal)
        let m = manager()
        let result = try m.up(.init(login: "l", node: "n", identityFile: "/k"), node: node, tunnels: tunnels)
        XCTAssertThrowsError(try m.down(result.record, node: { throw DbgboxError("no route") }, tunnels: tunnels))
        XCTAssertNotNil(try m.store.load("alice_00042"))
        XCTAssertNil(try m.hostConfig.block(named: "alice_00042"))
        XCTAssertEqual(tunnels.stopped, [4242])
        // Retried once the node answers (the tunnel is dead by now).
        _ = try manager(alive: false).down(result.record, node: { node }, tunnels: tunnels)
        XCTAssertNil(try m.store.load("alice_00042"))
        XCTAssertEqual(tunnels.stopped, [4242])
    }

    func testSelect() throws {
        let m = manager()
        XCTAssertThrowsError(try m.select(name: nil, all: false)) { XCTAssertEqual($0 as? SessionManagerError, .noSessions) }
        XCTAssertEqual(try m.select(name: nil, all: true), [])
        for n in ["a", "b"] {
            try m.store.insert(SessionRecord(name: n, container: n, targetPort: 1, localPort: 1, created: Date(),
                                             image: "i", user: "u", identityFile: "/k", logFile: "/l"))
        }
        XCTAssertThrowsError(try m.select(name: nil, all: false)) { XCTAssertEqual($0 as? SessionManagerError, .ambiguous(["a", "b"])) }
        XCTAssertEqual(try m.select(name: "b", all: false).map(\.name), ["b"])
        XCTAssertEqual(try m.select(name: nil, all: true).count, 2)
    }
}
