import Foundation
import XCTest
@testable import DbgboxKit
import SSH

/// `image create`, `container create|list|rm` and `cleanup` with `--login/--node` on the netns
/// testbed: dbgbox runs in the laptop namespace as the test user, docker runs on the node (the
/// root namespace) through login → node as exec channels. Checks are made with docker in the root
/// namespace, i.e. on the node itself.
final class RemoteOperationTests: XCTestCase {
    nonisolated(unsafe) static var shared: (bed: Testbed, home: String, image: String)?
    nonisolated(unsafe) static var containers: [String] = []

    override class func tearDown() {
        for name in containers { _ = try? IT.runner.run(["docker", "rm", "-f", name]) }
        containers = []
        if let shared {
            _ = try? IT.runner.run(["docker", "image", "rm", "-f", shared.image])
            try? FileManager.default.removeItem(atPath: shared.home)
        }
        shared = nil
        Testbed.downIfStartedHere()
        super.tearDown()
    }

    /// The testbed, a scratch laptop home and the image, built remotely once for the class.
    func setUpBed() throws -> (bed: Testbed, home: String, image: String) {
        if let shared = Self.shared { return shared }
        _ = try IT.requireBinary()
        try IT.requireDocker()
        let bed = try Testbed.up()
        let home = try IT.scratchDir("remote-op")
        let image = "\(bed.user)/remote-it-\(UUID().uuidString.prefix(8).lowercased()):latest"
        let started = Date()
        let build = try dbgbox(bed, home: home, ["image", "create", "--base", IT.baseImage, "--name", image])
        let seconds = Date().timeIntervalSince(started)
        XCTAssertEqual(build.exitCode, 0, build.stderrText)
        XCTAssertEqual(build.stdoutText, "\(image)\n")
        // The build's own output came back over the channel (stderr of the command).
        XCTAssertTrue(build.stderrText.contains("on node \(bed.nodeAddr):\(bed.nodePort)"), build.stderrText)
        XCTAssertTrue(build.stderrText.contains("Successfully tagged \(image)") || build.stderrText.contains("naming to"),
                      build.stderrText)
        print("remote image create: \(String(format: "%.2f", seconds)) s")
        Self.shared = (bed, home, image)
        return Self.shared!
    }

    func remoteArgs(_ bed: Testbed) -> [String] {
        ["-F", bed.sshConfig, "--login", Testbed.loginAlias, "--node", Testbed.nodeAlias, "--known-hosts", bed.knownHosts]
    }

    /// dbgbox in the laptop namespace, as the test user, with the remote options appended.
    func dbgbox(_ bed: Testbed, home: String, _ args: [String], remote: Bool = true) throws -> ProcessResult {
        try bed.inLaptop([try IT.requireBinary()] + args + (remote ? remoteArgs(bed) : []), home: home)
    }

    func createContainer(_ bed: Testbed, home: String, image: String, port: String = "auto") throws -> (ProcessResult, [String: Any]?) {
        let result = try dbgbox(bed, home: home, ["container", "create", "--gpu", "none", "--port", port, "--ttl", "1h",
                                                  "--image", image, "--key", bed.key + ".pub", "--json"])
        let json = try? JSONSerialization.jsonObject(with: result.stdout) as? [String: Any]
        if let name = json?["name"] as? String { Self.containers.append(name) }
        return (result, json)
    }

    func nodeDocker(_ argv: [String]) throws -> ProcessResult { try IT.runner.run(["docker"] + argv) }

    /// The image exists on the node, labelled for the node user (not the laptop's identity).
    func testImageCreateRunsOnTheNode() throws {
        let (bed, _, image) = try setUpBed()
        let inspect = try nodeDocker(["image", "inspect", "--format", "{{index .Config.Labels \"dbgbox.user\"}} {{index .Config.Labels \"dbgbox.uid\"}}", image])
        XCTAssertEqual(inspect.exitCode, 0, inspect.stderrText)
        XCTAssertEqual(inspect.stdoutText, "\(bed.user) \(IT.user.uid)\n")
    }

    /// create → list → rm, all remote: the container runs on the node with its port published on
    /// the node's 127.0.0.1, the host key is pinned on the laptop, rm removes both.
    func testContainerCreateListRmRemotely() throws {
        let (bed, home, image) = try setUpBed()
        let started = Date()
        let (create, json) = try createContainer(bed, home: home, image: image)
        print("remote container create: \(String(format: "%.2f", Date().timeIntervalSince(started))) s")
        XCTAssertEqual(create.exitCode, 0, create.stderrText)
        let name = try XCTUnwrap(json?["name"] as? String, create.stdoutText)
        let port = try XCTUnwrap(json?["port"] as? Int)
        let running = try nodeDocker(["inspect", "--format", "{{.State.Status}} {{(index (index .HostConfig.PortBindings \"22/tcp\") 0).HostPort}}", name])
        XCTAssertEqual(running.stdoutText, "running \(port)\n", running.stderrText)
        let pinned = try String(contentsOfFile: "\(home)/.ssh/dbgbox/known_hosts", encoding: .utf8)
        XCTAssertTrue(pinned.contains("dbgbox-\(name) ssh-ed25519 "), pinned)

        let list = try dbgbox(bed, home: home, ["container", "list", "--json"])
        XCTAssertEqual(list.exitCode, 0, list.stderrText)
        let rows = try XCTUnwrap(try JSONSerialization.jsonObject(with: list.stdout) as? [[String: Any]])
        XCTAssertTrue(rows.contains { $0["name"] as? String == name && $0["port"] as? Int == port }, list.stdoutText)
        let table = try dbgbox(bed, home: home, ["container", "list"])
        XCTAssertTrue(table.stdoutText.contains(name), table.stdoutText)

        let rm = try dbgbox(bed, home: home, ["container", "rm", name])
        XCTAssertEqual(rm.exitCode, 0, rm.stderrText)
        XCTAssertEqual(rm.stdoutText, "removed \(name)\n")
        XCTAssertNotEqual(try nodeDocker(["inspect", name]).exitCode, 0, "container still on the node")
        let after = try String(contentsOfFile: "\(home)/.ssh/dbgbox/known_hosts", encoding: .utf8)
        XCTAssertFalse(after.contains("dbgbox-\(name) "), after)
    }

    /// cleanup --container, remote: the node's container goes; a second run has nothing left.
    func testCleanupRemovesRemotely() throws {
        let (bed, home, image) = try setUpBed()
        let (create, json) = try createContainer(bed, home: home, image: image)
        XCTAssertEqual(create.exitCode, 0, create.stderrText)
        let name = try XCTUnwrap(json?["name"] as? String)
        let cleanup = try dbgbox(bed, home: home, ["cleanup", "--container", name])
        XCTAssertEqual(cleanup.exitCode, 0, cleanup.stderrText)
        XCTAssertTrue(cleanup.stdoutText.contains("removed container \(name)"), cleanup.stdoutText)
        XCTAssertTrue(cleanup.stdoutText.contains("removed pinned host key dbgbox-\(name)"), cleanup.stdoutText)
        XCTAssertNotEqual(try nodeDocker(["inspect", name]).exitCode, 0, "container still on the node")
        let again = try dbgbox(bed, home: home, ["cleanup", "--container", name])
        XCTAssertEqual(again.exitCode, 0, again.stderrText)
        XCTAssertEqual(again.stdoutText, "nothing removed\n")
    }

    /// A port something listens on, on the NODE (not on the laptop, where it is free): one clear
    /// line, non-zero, and no container of the user appears.
    func testPortUsedOnTheNodeIsRefusedAndLeavesNothing() throws {
        let (bed, home, image) = try setUpBed()
        let listener = try TCPListener()
        defer { listener.close() }
        let before = try nodeDocker(["ps", "-aq", "--filter", "label=dbgbox.owner-uid=\(IT.user.uid)"]).stdoutText
        let (create, _) = try createContainer(bed, home: home, image: image, port: String(listener.port))
        XCTAssertNotEqual(create.exitCode, 0)
        let lines = create.stderrText.split(separator: "\n")
        XCTAssertEqual(lines.count, 1, create.stderrText)
        XCTAssertTrue(create.stderrText.contains("port \(listener.port) is in use"), create.stderrText)
        let after = try nodeDocker(["ps", "-aq", "--filter", "label=dbgbox.owner-uid=\(IT.user.uid)"]).stdoutText
        XCTAssertEqual(after, before)
        // The laptop namespace has nothing on that port: a local probe would have said "free".
        XCTAssertFalse(try bed.tcpConnect(from: bed.laptopNS, host: "127.0.0.1", port: listener.port).connected)
    }

    /// A failing docker command on the node: its exit code comes back, with one clear line.
    func testFailingRemoteCommandPropagates() throws {
        let (bed, home, _) = try setUpBed()
        let result = try dbgbox(bed, home: home, ["image", "create", "--base", "no/such:base"])
        XCTAssertNotEqual(result.exitCode, 0)
        XCTAssertEqual(result.stderrText.split(separator: "\n").count, 1, result.stderrText)
        XCTAssertTrue(result.stderrText.contains("no/such:base"), result.stderrText)
        // --login without --node is refused before any connection.
        let half = try bed.inLaptop([try IT.requireBinary(), "container", "list", "--login", Testbed.loginAlias], home: home)
        XCTAssertNotEqual(half.exitCode, 0)
        XCTAssertTrue(half.stderrText.contains("--login and --node go together"), half.stderrText)
    }

    /// The streaming exec of the SSH layer, straight against the node's sshd: output arrives while
    /// the command runs, stdin (several windows' worth) goes in and EOF ends it, exit codes and
    /// signals come back.
    func testStreamingExecOnTheNodeSSHD() throws {
        let (bed, _, _) = try setUpBed()
        let session = try SSHSession(host: bed.nodeAddr, port: bed.nodePort)
        defer { session.close() }
        try session.authenticate(user: bed.user, privateKeyPath: bed.key)

        var firstAt: Date?
        var out = Data(), err = Data()
        let start = Date()
        let status = try session.execStreaming("echo one; sleep 1; echo two >&2; sleep 1; echo three", input: nil,
                                               onStdout: { firstAt = firstAt ?? Date(); out.append($0) },
                                               onStderr: { err.append($0) })
        let total = Date().timeIntervalSince(start)
        XCTAssertEqual(status, SSHExecStatus(code: 0, signal: nil))
        XCTAssertEqual(String(decoding: out, as: UTF8.self), "one\nthree\n")
        XCTAssertEqual(String(decoding: err, as: UTF8.self), "two\n")
        XCTAssertLessThan(try XCTUnwrap(firstAt).timeIntervalSince(start), total - 1.5, "first chunk not streamed")

        var big = Data(count: 6 * 1024 * 1024)
        big.withUnsafeMutableBytes { for i in 0..<$0.count { $0[i] = UInt8(truncatingIfNeeded: i &* 31 &+ i >> 9) } }
        var echoed = Data()
        let cat = try session.execStreaming("cat", input: big, onStdout: { echoed.append($0) }, onStderr: { _ in })
        XCTAssertEqual(cat.code, 0)
        XCTAssertEqual(echoed, big)

        XCTAssertEqual(try session.execStreaming("exit 7", input: nil, onStdout: { _ in }, onStderr: { _ in }).code, 7)
        let killed = try session.execStreaming("kill -TERM $$", input: nil, onStdout: { _ in }, onStderr: { _ in })
        XCTAssertEqual(killed, SSHExecStatus(code: 143, signal: "TERM"))
        // A program that exits without reading its input is not an error of ours.
        XCTAssertEqual(try session.execStreaming("true", input: big, onStdout: { _ in }, onStderr: { _ in }).code, 0)
        // The session is blocking again and usable.
        XCTAssertEqual(try session.exec("echo ok").stdout, Data("ok\n".utf8))
    }
}

/// A listening TCP socket on the node's (root namespace's) 127.0.0.1, on a free high port.
final class TCPListener {
    let fd: Int32
    let port: UInt16

    init() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var chosen: UInt16 = 0
        for _ in 0..<50 {
            let candidate = UInt16.random(in: 40000...48999)
            addr.sin_port = candidate.bigEndian
            let ok = withUnsafePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            if ok == 0 { chosen = candidate; break }
        }
        guard chosen != 0, listen(fd, 4) == 0 else { Glibc.close(fd); throw DbgboxError("no free port for the listener") }
        self.fd = fd
        port = chosen
    }

    func close() { Glibc.close(fd) }
}
