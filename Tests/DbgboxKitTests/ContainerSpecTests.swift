import Foundation
import XCTest
@testable import DbgboxKit

final class ContainerSpecTests: XCTestCase {
    let user = UserIdentity(name: "alice", uid: 1234, gid: 1300, home: "/home/alice")
    let keyLine = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHnB7m2wR0VQ1n9r5wJX3hWgL8b0cC4V5d6e7f8g9h0i alice@node"

    func spec(gpu: GPUSelection = .none, mounts: [BindMount] = [], ttl: TTL = TTL(seconds: 43200)) -> ContainerSpec {
        let start = Date(timeIntervalSince1970: 1_700_000_000)
        return ContainerSpec(name: "alice_04211", image: "alice/ssh:latest", user: user, port: 24211, authorizedKeyLine: keyLine,
                             ttl: ttl, expires: ttl.expiry(from: start), gpu: gpu, mounts: mounts)
    }

    func testDockerRunArgvExact() {
        let gpu = GPUSelection(deviceIDs: ["0", "3"], profile: DbgboxConfig.builtinGPUProfiles["P"], letter: "P", runtime: .gpus)
        let argv = spec(gpu: gpu, mounts: [BindMount(source: "/data sets", target: "/data", readOnly: true)]).dockerRunArguments
        XCTAssertEqual(argv, [
            "run", "-d", "--rm", "--init", "--name", "alice_04211",
            "--label", "dbgbox.owner=alice", "--label", "dbgbox.owner-uid=1234", "--label", "dbgbox.port=24211",
            "--label", "dbgbox.ttl=43200", "--label", "dbgbox.expires=2023-11-15T10:13:20Z", "--label", "dbgbox.gpus=0,3",
            "--security-opt", "no-new-privileges",
            "-e", "DBGBOX_AUTHORIZED_KEY=\(keyLine)", "-e", "DBGBOX_TTL=43200", "-e", "HOME=/home/alice",
            "-p", "127.0.0.1:24211:22",
            "--gpus", "\"device=0,3\"", "--cpus", "8", "--memory", "28G", "--memory-swap", "28G",
            "--mount", "type=bind,source=/home/alice,target=/home/alice",
            "--mount", "type=bind,source=/data sets,target=/data,readonly",
            "alice/ssh:latest",
        ])
        let noTTL = spec(ttl: TTL(seconds: 0)).dockerRunArguments
        XCTAssertTrue(noTTL.contains("dbgbox.expires="))
        XCTAssertTrue(noTTL.contains("DBGBOX_TTL=0"))
        XCTAssertFalse(noTTL.contains("--gpus"))
    }

    func testTTL() throws {
        XCTAssertEqual(try TTL.parse("12h").seconds, 43200)
        XCTAssertEqual(try TTL.parse("90m").seconds, 5400)
        XCTAssertEqual(try TTL.parse("30s").seconds, 30)
        XCTAssertEqual(try TTL.parse("1d").seconds, 86400)
        XCTAssertEqual(try TTL.parse("0").seconds, 0)
        XCTAssertEqual(try TTL.parse("600").seconds, 600)
        for bad in ["", "h", "12x", "-1h", "1.5h", "12 h h", "forever", "999999999999d", "400d"] {
            assertOneLineError(try TTL.parse(bad), contains: "--ttl")
        }
        XCTAssertEqual(TTL.format(seconds: 3900), "1h05m")
        XCTAssertEqual(TTL.format(seconds: 45), "45s")
    }

    func testKeyChecks() throws {
        let dir = try containerTempDir(self)
        let fs = LocalFileSystem()
        assertOneLineError(try AuthorizedKey.load(path: "\(dir)/id_dbgbox.pub", fs: fs), contains: "run dbgbox keygen")
        // A private key passed by mistake: a throwaway one made for this run.
        try FileManager.default.copyItem(atPath: try ThrowawayKeys.path("ed25519_c"), toPath: "\(dir)/id")
        assertOneLineError(try AuthorizedKey.load(path: "\(dir)/id", fs: fs), contains: "pass the .pub")
        try "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7 u@h\n".write(toFile: "\(dir)/rsa.pub", atomically: true, encoding: .utf8)
        assertOneLineError(try AuthorizedKey.load(path: "\(dir)/rsa.pub", fs: fs), contains: "rsa-sha2")
        try "".write(toFile: "\(dir)/empty.pub", atomically: true, encoding: .utf8)
        assertOneLineError(try AuthorizedKey.load(path: "\(dir)/empty.pub", fs: fs), contains: "empty")
        assertOneLineError(try AuthorizedKey.load(path: dir, fs: fs), contains: "directory")
    }

    func testDockerEngineProblemsAreOneLiners() throws {
        let noDocker = DockerClient(runner: ContainerFakeRunner { argv in throw ProcessError.notFound(argv[0]) })
        assertOneLineError(try noDocker.containerIDs(), contains: "docker is not installed")
        let denied = DockerClient(runner: ContainerFakeRunner { _ in
            fail("permission denied while trying to connect to the Docker daemon socket at unix:///var/run/docker.sock: Get \"http://%2Fvar%2Frun%2Fdocker.sock/v1.24/containers/json\": dial unix /var/run/docker.sock: connect: permission denied\n")
        })
        assertOneLineError(try denied.containerIDs(), contains: "add yourself to the docker group")
        let down = DockerClient(runner: ContainerFakeRunner { _ in
            fail("Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?\n")
        })
        assertOneLineError(try down.imageLabels("x"), contains: "not running")
    }
}

/// Mount targets where root runs or reads files are refused, at any depth; sources are resolved
/// as the user (issue 12, item 4).
final class MountBoundaryTests: XCTestCase {
    func testTargetsUnderSystemDirectoriesAreRefused() {
        for target in ["/", "/tmp", "/usr/local/sbin", "/usr/local/sbin/dbgbox-entrypoint", "/etc/dbgbox", "/etc/ssh/sshd_config",
                       "/root/.ssh", "/usr/lib/x86_64-linux-gnu", "/var/run/docker.sock", "/lib64", "/bin"] {
            XCTAssertTrue(BindMount.isSystemTarget(target), target)
        }
        for target in ["/data", "/opt/conda", "/opt/fake/bin", "/home/alice", "/tmp/scratch", "/workspace", "/usrdata", "/etcetera"] {
            XCTAssertFalse(BindMount.isSystemTarget(target), target)
        }
    }

    func testSourceSymlinksAreResolvedAsTheUser() throws {
        let dir = NSTemporaryDirectory() + "dbgbox-mount-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: "\(dir)/real", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createSymbolicLink(atPath: "\(dir)/link", withDestinationPath: "\(dir)/real")
        try FileManager.default.createSymbolicLink(atPath: "\(dir)/dangling", withDestinationPath: "\(dir)/nowhere")
        let mount = try BindMount.parseVolume("\(dir)/link:/data", fs: LocalFileSystem())
        XCTAssertEqual(mount.source, try LocalFileSystem().realPath("\(dir)/real"))
        XCTAssertThrowsError(try BindMount.parseVolume("\(dir)/dangling:/data", fs: LocalFileSystem())) { error in
            XCTAssertEqual(error as? MountError, .unresolvableSource("\(dir)/dangling"))
        }
    }
}
