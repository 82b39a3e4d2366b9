import Foundation
import XCTest
@testable import DbgboxKit

/// OpenSSH connection sharing in the Host block: the Control lines, the socket path, the private
/// directory, and closing a master (live or stale) with `ssh -O exit`.
final class ConnectionSharingTests: XCTestCase {
    var dir = ""

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "dbgbox-cm-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: dir)
    }

    let foo = SessionHostBlock(name: "foo", port: 2201, user: "alice", identityFile: "/home/alice/.ssh/id_dbgbox",
                               knownHostsFile: "/home/alice/.ssh/dbgbox/known_hosts",
                               controlPath: "/home/alice/.ssh/dbgbox/cm/2c26b46b68ffc68f")

    func testBlockCarriesTheControlLinesAndReadsBack() throws {
        let text = try foo.rendered()
        XCTAssertEqual(text, """
            # dbgbox session foo
            Host dbgbox-foo
                HostName 127.0.0.1
                ProxyCommand none
                Port 2201
                User alice
                IdentityFile /home/alice/.ssh/id_dbgbox
                IdentitiesOnly yes
                HostKeyAlias dbgbox-foo
                UserKnownHostsFile /home/alice/.ssh/dbgbox/known_hosts
                StrictHostKeyChecking yes
                ControlMaster auto
                ControlPath /home/alice/.ssh/dbgbox/cm/2c26b46b68ffc68f
                ControlPersist 10m
            # end dbgbox session foo

            """)
        let lines = text.split(separator: "\n").dropFirst().dropLast().map(String.init)
        XCTAssertEqual(SessionHostBlock.parse(name: "foo", lines: lines), foo)
        // Without a control path: no Control lines (the block of before).
        var plain = foo
        plain.controlPath = nil
        XCTAssertFalse(try plain.rendered().contains("Control"))
        // A path with % and blanks is written as ssh reads it back; one ssh cannot carry is refused.
        var odd = foo
        odd.controlPath = "/home/a 100%/cm/x"
        XCTAssertTrue(try odd.rendered().contains("    ControlPath \"/home/a 100%%/cm/x\"\n"))
        let oddLines = try odd.rendered().split(separator: "\n").dropFirst().dropLast().map(String.init)
        XCTAssertEqual(SessionHostBlock.parse(name: "foo", lines: oddLines), odd)
        odd.controlPath = "cm/relative"
        XCTAssertThrowsError(try odd.rendered()) {
            XCTAssertEqual($0 as? SessionError, .invalidPath(field: "ControlPath", path: "cm/relative"))
        }
        // The config file round trip keeps it.
        let config = SSHClientConfigFile(path: "\(dir)/config")
        try config.upsert(foo)
        XCTAssertEqual(try config.blocks(), [foo])
    }

    func testSocketPathIsShortFixedAndFitsSunPath() {
        let sharing = ConnectionSharing(directory: "/home/alice/.ssh/dbgbox/cm")
        let path = sharing.socketPath(for: "alice_01234")
        XCTAssertEqual(path, sharing.socketPath(for: "alice_01234"))
        XCTAssertNotEqual(path, sharing.socketPath(for: "alice_01235"))
        XCTAssertEqual(path?.count, "/home/alice/.ssh/dbgbox/cm/".count + 16)
        XCTAssertEqual(sharing.socketPath(for: "foo"), "/home/alice/.ssh/dbgbox/cm/2c26b46b68ffc68f")  // sha256("foo")
        // A 64-character name still gives 16 characters.
        XCTAssertNotNil(sharing.socketPath(for: String(repeating: "a", count: 64)))
        // Too deep for sun_path (with ssh's 17-character temporary suffix): no sharing.
        let deep = ConnectionSharing(directory: "/" + String(repeating: "d", count: 70))
        XCTAssertNil(deep.socketPath(for: "foo"))
        XCTAssertNil(try deep.prepare(name: "foo"))
        XCTAssertEqual(ConnectionSharing.defaultDirectory(config: SSHClientConfigFile(path: "/h/.ssh/dbgbox/config")),
                       "/h/.ssh/dbgbox/cm")
    }

    func testDirectoryIsMadePrivateAndOddOnesAreRefused() throws {
        let runner = ContainerFakeRunner()
        let cm = "\(dir)/dbgbox/cm"
        let sharing = ConnectionSharing(directory: cm, runner: runner)
        let path = try XCTUnwrap(try sharing.prepare(name: "foo"))
        XCTAssertEqual(path, "\(cm)/2c26b46b68ffc68f")
        XCTAssertEqual(try LocalFileSystem().mode(of: cm), 0o700)
        XCTAssertEqual(runner.calls, [], "nothing at the path: no ssh")

        XCTAssertEqual(chmod(cm, 0o755), 0)
        XCTAssertThrowsError(try sharing.prepare(name: "foo")) {
            XCTAssertEqual($0 as? SharingError, .notPrivate(path: cm, mode: 0o755))
            XCTAssertTrue("\($0)".contains("chmod 700 \(cm)"), "\($0)")
        }
        XCTAssertEqual(chmod(cm, 0o700), 0)

        // Another owner (lstat as the code sees it, without root here).
        let foreign = ConnectionSharing(directory: cm, runner: runner, uid: getuid() &+ 1)
        XCTAssertThrowsError(try foreign.ensureDirectory()) {
            XCTAssertEqual($0 as? SharingError, .notOwned(path: cm, owner: getuid()))
        }

        // A symbolic link to a private directory is not the directory.
        let link = "\(dir)/link-cm"
        XCTAssertEqual(symlink(cm, link), 0)
        XCTAssertThrowsError(try ConnectionSharing(directory: link, runner: runner).ensureDirectory()) {
            XCTAssertEqual($0 as? SharingError, .notADirectory(path: link, what: "a symbolic link"))
        }
        // A file.
        let file = "\(dir)/file-cm"
        _ = FileManager.default.createFile(atPath: file, contents: Data())
        XCTAssertThrowsError(try ConnectionSharing(directory: file, runner: runner).ensureDirectory()) {
            XCTAssertTrue("\($0)".contains("not a directory"), "\($0)")
            XCTAssertFalse("\($0)".contains("\n"))
        }
    }

    /// A socket nobody listens on (a master that died): ssh is asked to exit it, then it is removed.
    func testCloseExitsTheMasterAndRemovesAStaleSocket() throws {
        let runner = ContainerFakeRunner { _ in fail("Control socket connect: Connection refused", code: 255) }
        let cm = "\(dir)/cm"
        let sharing = ConnectionSharing(directory: cm, runner: runner)
        XCTAssertFalse(sharing.close(name: "foo"), "nothing there")
        try sharing.ensureDirectory()
        let path = try XCTUnwrap(sharing.socketPath(for: "foo"))
        try bindStaleSocket(path)
        XCTAssertEqual(ConnectionSharing.lstatEntry(path)?.type, S_IFSOCK)
        XCTAssertFalse(sharing.isRunning(name: "foo"))
        XCTAssertTrue(sharing.close(name: "foo"))
        XCTAssertNil(ConnectionSharing.lstatEntry(path), "stale socket left")
        XCTAssertEqual(runner.calls.last, ["timeout", "10", "ssh", "-F", "/dev/null", "-o", "BatchMode=yes", "-o", "LogLevel=ERROR",
                                           "-S", path, "-O", "exit", "dbgbox-foo"])
        // A plain file at the path (not ssh's): removed without asking ssh.
        let before = runner.calls.count
        _ = FileManager.default.createFile(atPath: path, contents: Data("x".utf8))
        XCTAssertTrue(sharing.close(name: "foo"))
        XCTAssertNil(ConnectionSharing.lstatEntry(path))
        XCTAssertEqual(runner.calls.count, before)
        // A directory open to others: close touches nothing in it.
        try bindStaleSocket(path)
        XCTAssertEqual(chmod(cm, 0o755), 0)
        XCTAssertFalse(sharing.close(name: "foo"))
        XCTAssertNotNil(ConnectionSharing.lstatEntry(path))
        XCTAssertEqual(chmod(cm, 0o700), 0)
        XCTAssertTrue(sharing.close(name: "foo"))
        // prepare clears the path too.
        try bindStaleSocket(path)
        XCTAssertEqual(try sharing.prepare(name: "foo"), path)
        XCTAssertNil(ConnectionSharing.lstatEntry(path))
        // A % in the directory is escaped for -S.
        XCTAssertEqual(ConnectionSharing.exitArgv(socket: "/h/100%/cm/x", alias: "dbgbox-a")[10], "/h/100%%/cm/x")
    }

    /// `up` writes the Control lines with the socket in `cm` beside the config, and `down` closes
    /// the master before it stops the tunnel and removes the directory with the last block.
    func testUpWritesSharingAndDownClosesIt() throws {
        let home = "\(dir)/home"
        try FileManager.default.createDirectory(atPath: "\(home)/.ssh", withIntermediateDirectories: true)
        let config = SSHClientConfigFile(path: "\(home)/.ssh/dbgbox/config")
        let include = SSHConfigInclude(home: home, dbgboxConfig: config, includeTarget: config.path)
        let store = SessionStore(directory: "\(dir)/state/dbgbox/sessions")
        var m = SessionManager(store: store, hostConfig: config, include: include, pinnedPath: "\(home)/.ssh/dbgbox/known_hosts",
                               knownHostsPath: "\(home)/.ssh/known_hosts",
                               stateDirectory: SessionManager.defaultStateDirectory(sessionsDirectory: store.directory),
                               liveness: TunnelLiveness(inspector: SessionManagerTests.FakeInspector(alive: true)))
        XCTAssertEqual(m.sharing?.directory, "\(home)/.ssh/dbgbox/cm")
        let runner = ContainerFakeRunner()
        m.sharing = ConnectionSharing(directory: "\(home)/.ssh/dbgbox/cm", runner: runner)
        let journal = SessionManagerTests.Journal()
        let node = SessionManagerTests.FakeNode(journal: journal, pinnedPath: m.pinnedPath,
                                                key: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPdEnfBREMo2QJpuuo8u1nPTjWmhz7JkePPbU8ppai4I root@c")
        let tunnels = SessionManagerTests.FakeTunnels(journal: journal)
        let result = try m.up(.init(login: "a@l", node: "n", identityFile: "\(home)/.ssh/id_dbgbox"), node: node, tunnels: tunnels)
        let socket = try XCTUnwrap(m.sharing?.socketPath(for: "alice_00042"))
        XCTAssertEqual(try config.block(named: "alice_00042")?.controlPath, socket)
        XCTAssertEqual(try LocalFileSystem().mode(of: "\(home)/.ssh/dbgbox/cm"), 0o700)

        // A master left its socket (stale here): down asks ssh to exit it, then removes it.
        try bindStaleSocket(socket)
        journal.steps = []
        let report = try m.down(result.record, node: { node }, tunnels: tunnels)
        XCTAssertTrue(report.closedMaster)
        XCTAssertEqual(runner.calls.map { $0.suffix(3) }, [["-O", "exit", "dbgbox-alice_00042"]])
        XCTAssertEqual(journal.steps, ["stop 4242", "rm alice_00042"])
        XCTAssertNil(ConnectionSharing.lstatEntry(socket))
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(home)/.ssh/dbgbox/cm"), "empty cm directory left")

        // A cm directory open to others: up refuses before it makes anything.
        try FileManager.default.createDirectory(atPath: "\(home)/.ssh/dbgbox/cm", withIntermediateDirectories: true)
        XCTAssertEqual(chmod("\(home)/.ssh/dbgbox/cm", 0o777), 0)
        journal.steps = []
        XCTAssertThrowsError(try m.up(.init(login: "a@l", node: "n", identityFile: "\(home)/.ssh/id_dbgbox"), node: node, tunnels: tunnels)) {
            XCTAssertEqual($0 as? SharingError, .notPrivate(path: "\(home)/.ssh/dbgbox/cm", mode: 0o777))
        }
        XCTAssertEqual(journal.steps, [])
    }

    /// A unix socket at `path` whose listener is gone, as a killed master leaves it.
    func bindStaleSocket(_ path: String) throws {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        XCTAssertGreaterThanOrEqual(fd, 0)
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        XCTAssertLessThan(bytes.count, MemoryLayout.size(ofValue: addr.sun_path))
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            for (i, b) in bytes.enumerated() { raw[i] = b }
            raw[bytes.count] = 0
        }
        let bound = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        XCTAssertEqual(bound, 0, String(cString: strerror(errno)))
        close(fd)
    }
}
