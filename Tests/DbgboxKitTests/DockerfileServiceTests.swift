import Foundation
import XCTest
@testable import DbgboxKit

/// ImageService against a scripted ProcessRunner: the exact docker argv, no build context, and the
/// one-line errors, without an engine.
final class DockerfileServiceTests: XCTestCase {
    final class ScriptedRunner: ProcessRunner, @unchecked Sendable {
        private let lock = NSLock()
        private var _calls: [(argv: [String], input: Data?)] = []
        let respond: @Sendable ([String]) throws -> ProcessResult
        init(_ respond: @escaping @Sendable ([String]) throws -> ProcessResult) { self.respond = respond }
        var calls: [(argv: [String], input: Data?)] { lock.withLock { _calls } }
        func run(_ argv: [String], input: Data?) throws -> ProcessResult {
            lock.withLock { _calls.append((argv, input)) }
            return try respond(argv)
        }
        func stream(_ argv: [String], input: Data?, to sink: OutputSink) throws -> ProcessResult {
            let result = try run(argv, input: input)
            sink.write(result.stdout)
            return result
        }
    }

    struct Collect: OutputSink {
        func write(_ data: Data) {}
    }

    let alice = DockerfileGoldenTests.alice

    func service(_ runner: ScriptedRunner) throws -> ImageService {
        let dir = try Templates.directory()
        return ImageService(docker: DockerClient(runner: runner), templatesDirectory: { dir })
    }

    static func healthy(_ argv: [String]) -> ProcessResult {
        switch Array(argv.dropFirst().prefix(2)) {
        case ["image", "inspect"]: return ProcessResult(exitCode: 0, stdout: Data("{}\n".utf8))
        case ["run", "--rm"]: return ProcessResult(exitCode: 0, stdout: Data("pm=apt-get\nbash=yes\n".utf8))
        default: return ProcessResult(exitCode: 0, stdout: Data("Successfully built\n".utf8))
        }
    }

    func testBuildSendsTheDockerfileOnStdinWithNoContext() throws {
        let runner = ScriptedRunner { Self.healthy($0) }
        let svc = try service(runner)
        let prepared = try svc.prepare(ImageCreateRequest(base: "debian:bookworm", identity: alice), requireBase: true)
        XCTAssertEqual(prepared.name, "alice/ssh:latest")
        XCTAssertEqual(prepared.spec.facts, BaseImageFacts(family: .apt, hasBash: true))
        try svc.build(prepared, output: Collect())
        let argvs = runner.calls.map(\.argv)
        XCTAssertEqual(argvs[0], ["docker", "image", "inspect", "--format", "{{json .Config.Labels}}", "debian:bookworm"])
        XCTAssertEqual(argvs[1], ["docker", "run", "--rm", "--network", "none", "--pull", "never", "--entrypoint", "/bin/sh",
                                  "debian:bookworm", "-c", BaseImageFacts.probeScript])
        XCTAssertEqual(argvs[2], ["docker", "build", "-t", "alice/ssh:latest", "-"])
        XCTAssertEqual(runner.calls[2].input, Data(prepared.dockerfile.utf8))
        XCTAssertEqual(argvs.count, 3)
    }

    func testPrintWithFamilyNeedsNoDocker() throws {
        let runner = ScriptedRunner { _ in throw ProcessError.notFound("docker") }
        let prepared = try service(runner).prepare(
            ImageCreateRequest(base: "alpine:3.20", name: "me/x:1", family: .apk, identity: alice), requireBase: false)
        XCTAssertTrue(prepared.dockerfile.contains("apk add --no-cache openssh-server openssh-keygen"))
        XCTAssertTrue(prepared.dockerfile.contains("shell='/bin/sh'"))
        XCTAssertTrue(runner.calls.isEmpty)
    }

    func testPrintWithoutDockerSuggestsFamily() throws {
        let runner = ScriptedRunner { _ in
            ProcessResult(exitCode: 1, stderr: Data("Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?\n".utf8))
        }
        XCTAssertThrowsError(try service(runner).prepare(ImageCreateRequest(base: "debian:12", identity: alice), requireBase: false)) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("not running") && text.contains("--family"), text)
            XCTAssertFalse(text.contains("\n"))
        }
        XCTAssertThrowsError(try service(runner).prepare(ImageCreateRequest(base: "debian:12", identity: alice), requireBase: true)) { error in
            XCTAssertEqual(error as? DockerError, .daemonNotRunning)
        }
    }

    func testMissingBase() throws {
        let runner = ScriptedRunner { _ in ProcessResult(exitCode: 1, stderr: Data("Error: No such image: nope:1\n".utf8)) }
        XCTAssertThrowsError(try service(runner).prepare(ImageCreateRequest(base: "nope:1", identity: alice), requireBase: true)) { error in
            XCTAssertEqual(error as? ImageError, .baseNotFound("nope:1"))
        }
    }

    func testBaseWithoutShellOrPackageManager() throws {
        let noShell = ScriptedRunner { argv in
            argv[1] == "run"
                ? ProcessResult(exitCode: 127, stderr: Data("docker: Error response from daemon: failed to create shim task: OCI runtime create failed: exec: \"/bin/sh\": stat /bin/sh: no such file or directory: unknown.\n".utf8))
                : Self.healthy(argv)
        }
        XCTAssertThrowsError(try service(noShell).prepare(ImageCreateRequest(base: "distroless:1", identity: alice), requireBase: true)) { error in
            XCTAssertEqual(error as? ImageError, .baseNotInspectable("distroless:1", why: "it has no /bin/sh"))
        }
        let noManager = ScriptedRunner { argv in
            argv[1] == "run" ? ProcessResult(exitCode: 0, stdout: Data("bash=no\n".utf8)) : Self.healthy(argv)
        }
        XCTAssertThrowsError(try service(noManager).prepare(ImageCreateRequest(base: "busybox:1", identity: alice), requireBase: true)) { error in
            XCTAssertEqual(error as? ImageError, .unknownFamily("busybox:1"))
        }
    }

    func testFailedBuildIsOneLine() throws {
        let runner = ScriptedRunner { argv in
            argv[1] == "build" ? ProcessResult(exitCode: 1, stderr: Data("E: Unable to locate package\n".utf8)) : Self.healthy(argv)
        }
        let svc = try service(runner)
        let prepared = try svc.prepare(ImageCreateRequest(base: "debian:12", name: "me/ssh:1", identity: alice), requireBase: true)
        XCTAssertThrowsError(try svc.build(prepared, output: Collect())) { error in
            XCTAssertEqual(error as? ImageError, .buildFailed(name: "me/ssh:1", exitCode: 1))
        }
    }

    func testNameAndDefaultNameChecksComeFirst() throws {
        let runner = ScriptedRunner { Self.healthy($0) }
        XCTAssertThrowsError(try service(runner).prepare(ImageCreateRequest(base: "debian:12", name: "Me/SSH", identity: alice), requireBase: true))
        let odd = UserIdentity(name: "_svc", uid: 1000, gid: 1000, home: "/home/svc")
        XCTAssertThrowsError(try service(runner).prepare(ImageCreateRequest(base: "debian:12", identity: odd), requireBase: true)) { error in
            XCTAssertEqual(error as? ImageError, .defaultNameInvalid(user: "_svc"))
        }
        XCTAssertTrue(runner.calls.isEmpty, "nothing runs before the inputs are valid")
    }
}
