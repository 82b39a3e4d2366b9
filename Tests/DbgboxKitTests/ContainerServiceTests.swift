import Foundation
import XCTest
@testable import DbgboxKit

/// The create/rm flows against a scripted docker: retries, refusals, and nothing left half-made.
final class ContainerServiceTests: XCTestCase {
    let user = UserIdentity(name: "alice", uid: 1234, gid: 1300, home: "/home/alice")
    let keyLine = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHnB7m2wR0VQ1n9r5wJX3hWgL8b0cC4V5d6e7f8g9h0i alice@node"

    func request(port: PortRequest = .fixed(24000), image: String = "alice/ssh:latest") -> ContainerCreateRequest {
        ContainerCreateRequest(user: user, image: image, gpu: .none, port: port, mounts: [], authorizedKeyLine: keyLine, ttl: TTL(seconds: 60))
    }

    func service(_ runner: ContainerFakeRunner, busy: Set<UInt16> = [], randoms: [Int] = []) -> ContainerService {
        let queue = RandomQueue(randoms)
        return ContainerService(docker: DockerClient(runner: runner), clock: FixedWallClock(Date(timeIntervalSince1970: 0)),
                                portProbe: FakePortProbe(busy: busy), sleep: { _ in }, random: { queue.next(in: $0) })
    }

    static let imageLabels = #"{"dbgbox.format":"1","dbgbox.user":"alice","dbgbox.uid":"1234"}"#

    func testImageChecks() throws {
        let runner = ContainerFakeRunner { argv in
            switch argv.last! {
            case "missing": return fail("Error: No such image: missing")
            case "plain": return ok("null\n")
            case "bobs": return ok(#"{"dbgbox.user":"bob"}"#)
            default: return ok(Self.imageLabels)
            }
        }
        let s = service(runner)
        assertOneLineError(try s.checkImage("missing", user: user), contains: "dbgbox image create")
        assertOneLineError(try s.checkImage("plain", user: user), contains: "not built by dbgbox")
        assertOneLineError(try s.checkImage("bobs", user: user), contains: "built for bob")
        XCTAssertNoThrow(try s.checkImage("alice/ssh:latest", user: user))
    }

    /// Name collision → new name; port taken (auto) → new port; then the container exits at start and is removed.
    func testRetriesThenExitAtStartRemovesTheContainer() throws {
        var runs = 0
        let runner = ContainerFakeRunner { argv in
            switch argv[1] {
            case "image": return ok(Self.imageLabels)
            case "ps": return ok("")
            case "run":
                runs += 1
                if runs == 1 { return fail("docker: Error response from daemon: Conflict. The container name \"/alice_00001\" is already in use by container \"x\".") }
                if runs == 2 { return fail("docker: Error response from daemon: driver failed programming external connectivity on endpoint alice_00002: Bind for 127.0.0.1:20001 failed: port is already allocated.") }
                return ok("id\n")
            case "container": return ok(#"[{"Id":"id","Name":"/alice_00003","State":{"Status":"exited","ExitCode":1},"Config":{"Labels":{}}}]"#)
            case "logs": return ok("sshd: no hostkeys available -- exiting.\n")
            case "rm": return ok()
            default: return fail("unexpected \(argv)")
            }
        }
        // randoms: port 20000, name 1, port 20001, name 2, port 20002, name 3
        let s = service(runner, randoms: [20000, 1, 20001, 2, 20002, 3])
        let text = assertOneLineError(try s.create(request(port: .auto), pinnedPath: "/nonexistent/known_hosts"), contains: "exited at start")
        XCTAssertTrue(text.contains("no hostkeys available"), text)
        let runCalls = runner.calls.filter { $0[1] == "run" }
        XCTAssertEqual(runCalls.map { $0[$0.firstIndex(of: "--name")! + 1] }, ["alice_00001", "alice_00002", "alice_00003"])
        XCTAssertEqual(runCalls.map { $0[$0.firstIndex(of: "-p")! + 1] }, ["127.0.0.1:20000:22", "127.0.0.1:20001:22", "127.0.0.1:20002:22"])
        XCTAssertTrue(runner.calls.contains(["docker", "rm", "-f", "alice_00003"]), "the exited container must be removed")
    }

    func testFixedPortTakenAtRunIsAClearErrorAndNothingStays() throws {
        let runner = ContainerFakeRunner { argv in
            switch argv[1] {
            case "image": return ok(Self.imageLabels)
            case "ps": return ok("")
            case "run": return fail("docker: Error response from daemon: driver failed programming external connectivity on endpoint alice_00007 (…): Error starting userland proxy: listen tcp4 127.0.0.1:24000: bind: address already in use.\nERRO[0000] error waiting for container")
            case "rm": return ok()
            default: return fail("unexpected")
            }
        }
        assertOneLineError(try service(runner, randoms: [7]).create(request(), pinnedPath: "/x"), contains: "port 24000 is in use")
        XCTAssertTrue(runner.calls.contains(["docker", "rm", "-f", "alice_00007"]))
    }

    func testFixedPortBusyBeforeRunNeverRunsDocker() throws {
        let runner = ContainerFakeRunner { argv in argv[1] == "image" ? ok(Self.imageLabels) : ok("") }
        assertOneLineError(try service(runner, busy: [24000]).create(request(), pinnedPath: "/x"), contains: "in use")
        XCTAssertFalse(runner.calls.contains { $0.count > 1 && $0[1] == "run" })
    }

    func testNotReadyInTimeRemovesTheContainer() throws {
        let runner = ContainerFakeRunner { argv in
            switch argv[1] {
            case "image": return ok(Self.imageLabels)
            case "ps": return ok("")
            case "run": return ok("id\n")
            case "container": return ok(#"[{"Id":"id","Name":"/alice_00005","State":{"Status":"running","ExitCode":0},"Config":{"Labels":{}}}]"#)
            case "exec": return fail("")
            case "rm": return ok()
            default: return fail("unexpected")
            }
        }
        var s = service(runner, randoms: [5])
        s.readyTimeout = 0
        assertOneLineError(try s.create(request(), pinnedPath: "/x"), contains: "did not start sshd")
        XCTAssertEqual(runner.calls.last, ["docker", "rm", "-f", "alice_00005"])
    }

    /// The whole happy path against a scripted docker: ready poll, host key read back and pinned, ssh argv.
    func testCreatePinsTheHostKeyAndGivesTheSSHCommand() throws {
        let dir = try containerTempDir(self)
        let hostKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPdEnfBREMo2QJpuuo8u1nPTjWmhz7JkePPbU8ppai4I root@c"
        var polls = 0
        let runner = ContainerFakeRunner { argv in
            switch argv[1] {
            case "image": return ok(Self.imageLabels)
            case "ps": return ok("")
            case "run": return ok("id\n")
            case "container": return ok(#"[{"Id":"id","Name":"/alice_00042","State":{"Status":"running","ExitCode":0},"Config":{"Labels":{}}}]"#)
            case "exec" where argv.contains("test"):
                polls += 1
                return polls < 3 ? fail("") : ok()
            case "exec": return ok(hostKey + "\n")
            default: return fail("unexpected \(argv)")
            }
        }
        let pinnedPath = "\(dir)/.ssh/dbgbox/known_hosts"
        let made = try service(runner, randoms: [42]).create(request(), pinnedPath: pinnedPath)
        XCTAssertEqual(made.spec.name, "alice_00042")
        XCTAssertEqual(made.hostKeyFingerprint, "SHA256:6Q+uL7DesvExAVAJx7TDTpyFC4+A6IICXixcAPjCilE") // ssh-keygen -l
        XCTAssertEqual(try PinnedHostKeys(path: pinnedPath).key(for: "dbgbox-alice_00042")?.fingerprintSHA256, made.hostKeyFingerprint)
        XCTAssertEqual(made.sshCommand(identityFile: "/home/alice/.ssh/id_dbgbox"), [
            "ssh", "-p", "24000", "-i", "/home/alice/.ssh/id_dbgbox", "-o", "HostKeyAlias=dbgbox-alice_00042",
            "-o", "UserKnownHostsFile=\(pinnedPath)", "-o", "StrictHostKeyChecking=yes", "alice@127.0.0.1",
        ])
        XCTAssertEqual(polls, 3)
        XCTAssertFalse(runner.calls.contains { $0[1] == "rm" }, "a good container stays")
    }

    func testRmRefusesOthersAndStrangers() throws {
        let runner = ContainerFakeRunner { argv in
            guard argv[1] == "container" else { return fail("unexpected") }
            switch argv[3] {
            case "bob_12345": return ok(#"[{"Id":"b","Name":"/bob_12345","State":{"Status":"running"},"Config":{"Labels":{"dbgbox.owner":"bob","dbgbox.owner-uid":"1500"}}}]"#)
            case "postgres": return ok(#"[{"Id":"p","Name":"/postgres","State":{"Status":"running"},"Config":{"Labels":{}}}]"#)
            default: return ProcessResult(exitCode: 1, stdout: Data("[]\n".utf8), stderr: Data("Error: No such container: \(argv[3])".utf8))
            }
        }
        let s = service(runner)
        assertOneLineError(try s.remove(names: ["bob_12345"], user: user, pinnedPath: "/x"),
                           contains: "container bob_12345 belongs to bob: dbgbox works only with your own containers")
        assertOneLineError(try s.remove(names: ["postgres"], user: user, pinnedPath: "/x"), contains: "not made by dbgbox")
        assertOneLineError(try s.remove(names: ["ghost"], user: user, pinnedPath: "/x"), contains: "no container named ghost")
        XCTAssertFalse(runner.calls.contains { $0[1] == "rm" })
    }

    /// The bad inputs a user can type, each a one-line error that says what to do.
    func testAtLeastTwentyBadInputsGiveOneLineEach() throws {
        let dir = try containerTempDir(self)
        let fs = LocalFileSystem()
        let profiles = DbgboxConfig.builtinGPUProfiles
        let checks: [() throws -> Any] = [
            { try GPURequest.parse("X", profiles: profiles) },
            { try GPURequest.parse("V100", profiles: profiles) },
            { try GPURequest.parse("0,,1", profiles: profiles) },
            { try GPURequest.parse("", profiles: profiles) },
            { try PortRequest.parse("22a") },
            { try PortRequest.parse("80") },
            { try PortRequest.parse("70000") },
            { try PortRequest.parse("0x50") },
            { try TTL.parse("12y") },
            { try TTL.parse("") },
            { try TTL.parse("-5m") },
            { try BindMount.parseList("relative:/data", fs: fs) },
            { try BindMount.parseList("\(dir):/etc", fs: fs) },
            { try BindMount.parseList("\(dir)/missing:/data", fs: fs) },
            { try BindMount.parseList("\(dir):/a:/b", fs: fs) },
            { try BindMount.parseVolume(":/data", fs: fs) },
            { try AuthorizedKey.load(path: "\(dir)/nokey.pub", fs: fs) },
            { try DbgboxConfig.parse("gpu_profiles: {V: {cpus: x}}", path: "/c.yaml") },
            { try GPUAllocation.fromEnvironment(["CUDA_VISIBLE_DEVICES": "abc"], fs: fs) },
            { try GPUAllocation.fromEnvironment(["PBS_GPUFILE": "\(dir)/nofile"], fs: fs) },
            { throw DockerError.daemonNotRunning },
            { throw DockerError.permissionDenied },
            { throw DockerError.notInstalled },
            { throw ContainerError.imageMissing("alice/ssh:latest") },
        ]
        XCTAssertGreaterThanOrEqual(checks.count, 20)
        var texts = Set<String>()
        for check in checks { texts.insert(assertOneLineError(try check())) }
        XCTAssertEqual(texts.count, checks.count, "each bad input has its own message")
    }
}

final class RandomQueue: @unchecked Sendable {
    private let lock = NSLock()
    private var values: [Int]
    init(_ values: [Int]) { self.values = values }
    func next(in range: ClosedRange<Int>) -> Int {
        lock.lock(); defer { lock.unlock() }
        return values.isEmpty ? Int.random(in: range) : values.removeFirst()
    }
}
