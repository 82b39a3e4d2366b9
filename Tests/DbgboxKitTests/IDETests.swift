import Foundation
import XCTest
@testable import DbgboxKit

enum IDEFixtures {
    static func text(_ name: String) -> String {
        let url = Bundle.module.resourceURL!.appendingPathComponent("Fixtures/ide/\(name)")
        return (try? String(contentsOf: url, encoding: .utf8)) ?? ""
    }

    static let alice = IDETarget(
        name: "alice_01234", alias: "dbgbox-alice_01234", port: 34567, user: "alice",
        identityFile: "/home/alice/.ssh/id_dbgbox", home: "/home/alice",
        mounts: [PathMapping(source: "/home/alice", target: "/home/alice"),
                 PathMapping(source: "/scratch/alice", target: "/data")],
        interpreters: [PythonInterpreter(path: "/opt/conda/bin/python3", version: "3.11.5", kind: .conda),
                       PythonInterpreter(path: "/opt/conda/envs/torch/bin/python", version: "3.10.14", kind: .conda),
                       PythonInterpreter(path: "/usr/bin/python3", version: "3.11.2", kind: .system)],
        hostKeyFingerprint: "SHA256:Yc0pT1mW0sP3dJtWb4cKf2fUu6r0o5Z9xqJm3pQnA8E")

    /// A session of `dbgbox up`: the container on a node, reached through the tunnel's port.
    static var session: IDETarget {
        var t = alice
        t.port = 41234
        t.node = "gpu07"
        return t
    }

    static var noAlias: IDETarget {
        var t = alice
        t.alias = nil
        t.hostKeyFingerprint = nil
        t.mounts = [PathMapping(source: "/home/alice", target: "/home/alice")]
        t.interpreters = [PythonInterpreter(path: "/usr/bin/python3", version: "3.11.2", kind: .system)]
        return t
    }
}

/// The rendered IDE instructions, byte for byte against Fixtures/ide/*.txt.
/// Re-record with DBGBOX_RECORD_GOLDENS=1.
final class IDEGoldenTests: XCTestCase {
    func check(_ golden: String, _ rendered: String, file: StaticString = #filePath, line: UInt = #line) throws {
        try assertGolden(rendered, "ide/\(golden)", file: file, line: line)
    }

    func testPyCharmWithAlias() throws {
        let text = IDEInstructions.pycharm(IDEFixtures.alice)
        try check("pycharm-alias.txt", text)
        XCTAssertTrue(text.contains("Tick \"Parse config file ~/.ssh/config\""))
        XCTAssertTrue(text.contains("Host                dbgbox-alice_01234"))
    }

    func testPyCharmWithoutAlias() throws {
        let text = IDEInstructions.pycharm(IDEFixtures.noAlias)
        try check("pycharm-no-alias.txt", text)
        XCTAssertFalse(text.contains("Tick \"Parse config file"), "no alias: nothing to parse")
        XCTAssertTrue(text.contains("Host                127.0.0.1"))
    }

    func testPyCharmForASessionOnANodeSaysItsFilesAreTheNodes() throws {
        let text = IDEInstructions.pycharm(IDEFixtures.session)
        try check("pycharm-session.txt", text)
        XCTAssertTrue(text.contains("Port                41234\n"))
        XCTAssertTrue(text.contains("runs on gpu07 and sees that node's files"))
        XCTAssertFalse(text.contains("untick"), "the laptop's files are not in the container: upload them")
    }

    func testVSCodeWithAlias() throws {
        try check("vscode-alias.txt", IDEInstructions.vscode(IDEFixtures.alice, path: "/home/alice/my project"))
    }

    func testVSCodeWithoutAliasShowsTheHostBlock() throws {
        let text = IDEInstructions.vscode(IDEFixtures.noAlias, path: "/home/alice")
        try check("vscode-no-alias.txt", text)
        XCTAssertTrue(text.contains("  Host dbgbox-alice_01234\n    HostName 127.0.0.1\n    Port 34567\n"))
    }

    func testRenderingIsStable() {
        XCTAssertEqual(IDEInstructions.pycharm(IDEFixtures.alice), IDEInstructions.pycharm(IDEFixtures.alice))
    }
}

final class IDEVSCodeLinkTests: XCTestCase {
    func testFolderURIPercentEncodesAsVSCode() {
        XCTAssertEqual(VSCodeLink.folderURI(alias: "dbgbox-a_1", path: "/home/alice"),
                       "vscode-remote://ssh-remote+dbgbox-a_1/home/alice")
        XCTAssertEqual(VSCodeLink.folderURI(alias: "dbgbox-a_1", path: "/home/a/my project/ü#1?x"),
                       "vscode-remote://ssh-remote+dbgbox-a_1/home/a/my%20project/%C3%BC%231%3Fx")
        XCTAssertEqual(VSCodeLink.folderURI(alias: "dbgbox-a_1", path: "/p/a+b:c~d"),
                       "vscode-remote://ssh-remote+dbgbox-a_1/p/a%2Bb%3Ac~d")
        XCTAssertEqual(VSCodeLink.argv(alias: "dbgbox-x", path: "/"),
                       ["code", "--folder-uri", "vscode-remote://ssh-remote+dbgbox-x/"])
    }
}

final class IDEDiscoveryTests: XCTestCase {
    func testCondaImageOrdersImagePathFirstAndDeduplicates() {
        let found = InterpreterDiscovery.parse(IDEFixtures.text("discovery-conda.txt"))
        XCTAssertEqual(found, [
            PythonInterpreter(path: "/opt/conda/bin/python3", version: "3.11.5", kind: .conda),
            PythonInterpreter(path: "/opt/conda/envs/torch/bin/python", version: "3.10.14", kind: .conda),
            PythonInterpreter(path: "/home/alice/.conda/envs/jax/bin/python", version: "3.12.3", kind: .conda),
            PythonInterpreter(path: "/usr/bin/python3", version: "3.11.2", kind: .system),
        ])
    }

    func testVenvsComeAfterTheImagePythonAndBeforeTheSystemOne() {
        let found = InterpreterDiscovery.parse(IDEFixtures.text("discovery-venv.txt"))
        XCTAssertEqual(found.map(\.path), ["/usr/local/bin/python3", "/home/alice/proj/.venv/bin/python",
                                           "/home/alice/.virtualenvs/old/bin/python", "/usr/bin/python3"])
        XCTAssertEqual(found.map(\.kind), [.path, .venv, .venv, .system])
    }

    func testSystemOnlyIsOneInterpreterAndGarbageIsSkipped() {
        XCTAssertEqual(InterpreterDiscovery.parse(IDEFixtures.text("discovery-system.txt")),
                       [PythonInterpreter(path: "/usr/bin/python3", version: "3.11.2", kind: .system)])
    }

    func testNothingFoundIsAClearError() {
        XCTAssertEqual(InterpreterDiscovery.parse(IDEFixtures.text("discovery-none.txt")), [])
        let runner = ContainerFakeRunner { _ in ok("") }
        let text = assertOneLineError(try InterpreterDiscovery.discover(
            runner: runner, transport: .dockerExec(container: "alice_1", user: "alice"), target: "alice_1"),
            contains: "no Python interpreter found in alice_1")
        XCTAssertTrue(text.contains("install python3 in the image"), text)
    }

    func testDockerTransportPassesTheScriptAsOneArgument() throws {
        let runner = ContainerFakeRunner { _ in ok(IDEFixtures.text("discovery-system.txt")) }
        let found = try InterpreterDiscovery.discover(
            runner: runner, transport: .dockerExec(container: "alice_1", user: "alice"), target: "alice_1")
        XCTAssertEqual(found.first?.path, "/usr/bin/python3")
        XCTAssertEqual(runner.calls, [["docker", "exec", "-u", "alice", "alice_1", "sh", "-c", InterpreterDiscovery.script]])
    }

    func testSSHTransportQuotesTheCommandForTheRemoteShell() throws {
        let runner = ContainerFakeRunner { _ in ok(IDEFixtures.text("discovery-venv.txt")) }
        _ = try InterpreterDiscovery.discover(runner: runner, transport: .ssh(host: "dbgbox-alice_1"), target: "dbgbox-alice_1")
        let argv = try XCTUnwrap(runner.calls.first)
        XCTAssertEqual(Array(argv.prefix(4)), ["ssh", "-o", "BatchMode=yes", "dbgbox-alice_1"])
        XCTAssertEqual(argv.count, 5)
        // The remote shell must see exactly sh, -c, SCRIPT: split it as sh would.
        let split = try LocalProcessRunner().run(["sh", "-c", "for a in \(argv[4]); do printf '%s\\0' \"$a\"; done"])
        let words = split.stdoutText.split(separator: "\0", omittingEmptySubsequences: false).dropLast().map(String.init)
        XCTAssertEqual(words, ["sh", "-c", InterpreterDiscovery.script])
    }

    func testTransportFailureIsOneLine() {
        let runner = ContainerFakeRunner { _ in fail("Error response from daemon: container abc is not running", code: 1) }
        assertOneLineError(try InterpreterDiscovery.discover(
            runner: runner, transport: .dockerExec(container: "abc", user: "alice"), target: "abc"),
            contains: "could not look for Python in abc")
    }

    /// The script itself, run by the local sh against a fake home and PATH: finds a venv, a conda
    /// env and a python on PATH, with versions, and interpolates nothing.
    func testScriptFindsInterpretersInAFakeTree() throws {
        let dir = try containerTempDir(self)
        let fm = FileManager.default
        func fakePython(_ path: String, version: String) throws {
            try fm.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try "#!/bin/sh\necho \(version)\n".write(toFile: path, atomically: true, encoding: .utf8)
            try fm.setAttributes([.posixPermissions: 0o755], ofItemAtPath: path)
        }
        try fakePython("\(dir)/img/bin/python3", version: "3.12.1")
        try fakePython("\(dir)/home/proj/.venv/bin/python", version: "3.12.1")
        try "home = /usr/bin\n".write(toFile: "\(dir)/home/proj/.venv/pyvenv.cfg", atomically: true, encoding: .utf8)
        try fakePython("\(dir)/home/miniconda3/envs/ml/bin/python", version: "3.10.2")
        try fm.createDirectory(atPath: "\(dir)/home/miniconda3/envs/ml/conda-meta", withIntermediateDirectories: true)
        try fakePython("\(dir)/home/deep/a/b/c/d/.venv/bin/python", version: "3.9.0")
        try "".write(toFile: "\(dir)/home/deep/a/b/c/d/.venv/pyvenv.cfg", atomically: true, encoding: .utf8)

        let runner = LocalProcessRunner(environment: ["HOME": "\(dir)/home", "PATH": "\(dir)/img/bin:/usr/bin:/bin"])
        let result = try runner.run(["sh", "-c", InterpreterDiscovery.script])
        XCTAssertEqual(result.exitCode, 0, result.stderrText)
        // Only what lives in the fake tree: this machine's own pythons (its PATH, its pid 1's PATH) vary.
        let found = InterpreterDiscovery.parse(result.stdoutText).filter { $0.path.hasPrefix(dir) }
        let paths = found.map(\.path)
        XCTAssertEqual(Array(paths.prefix(3)), ["\(dir)/img/bin/python3", "\(dir)/home/miniconda3/envs/ml/bin/python",
                                                "\(dir)/home/proj/.venv/bin/python"])
        XCTAssertEqual(Array(found.prefix(3).map(\.kind)), [.path, .conda, .venv])
        XCTAssertEqual(found.first?.version, "3.12.1")
        XCTAssertFalse(paths.contains { $0.contains("/deep/") }, "venvs deeper than the bound are not searched")
    }
}

final class IDETargetTests: XCTestCase {
    static let alice = UserIdentity(name: "alice", uid: 1000, gid: 1000, home: "/home/alice")

    func inspectJSON(_ names: [String], uid: Int = 1000, port: Int = 34567, status: String = "running") -> String {
        "[" + names.map { name in
            """
            {"Id":"\(name)id","Name":"/\(name)","State":{"Status":"\(status)","ExitCode":0},
              "Config":{"Labels":{"dbgbox.owner":"alice","dbgbox.owner-uid":"\(uid)","dbgbox.port":"\(port)"}},
              "HostConfig":{"PortBindings":{"22/tcp":[{"HostIp":"127.0.0.1","HostPort":"\(port)"}]}}}
            """
        }.joined(separator: ",") + "]"
    }

    func fakeDocker(containers: [String], status: String = "running") -> ContainerFakeRunner {
        ContainerFakeRunner { argv in
            switch Array(argv.dropFirst()) {
            case let a where a.starts(with: ["ps"]):
                return ok(containers.map { $0 + "id" }.joined(separator: "\n"))
            case let a where a.starts(with: ["container", "inspect", "--format"]):
                return ok(#"[{"Type":"bind","Source":"/scratch/alice","Destination":"/data"},{"Type":"volume","Name":"v","Destination":"/v"},{"Type":"bind","Source":"/home/alice","Destination":"/home/alice"}]"#)
            case let a where a.starts(with: ["container", "inspect"]):
                let names = a.dropFirst(2).map { id in containers.first { id.hasPrefix($0) } ?? id }
                return ok(self.inspectJSON(names, status: status))
            case let a where a.starts(with: ["exec"]):
                return ok(IDEFixtures.text("discovery-conda.txt"))
            default:
                return fail("unexpected \(argv)")
            }
        }
    }

    func testOnlyContainerIsChosenAndTargetGathered() throws {
        let runner = fakeDocker(containers: ["alice_01234"])
        let finder = IDETargetFinder(docker: DockerClient(runner: runner))
        let c = try finder.container(named: nil, user: Self.alice)
        XCTAssertEqual(c.name, "alice_01234")
        let t = try finder.target(for: c, home: "/home/alice", identityFile: "/home/alice/.ssh/id_dbgbox", alias: nil)
        XCTAssertEqual(t.port, 34567)
        XCTAssertEqual(t.user, "alice")
        XCTAssertEqual(t.host, "127.0.0.1")
        XCTAssertEqual(t.mounts, [PathMapping(source: "/home/alice", target: "/home/alice"),
                                  PathMapping(source: "/scratch/alice", target: "/data")])
        XCTAssertEqual(t.interpreters.first?.path, "/opt/conda/bin/python3")
        XCTAssertTrue(runner.calls.contains(["docker", "exec", "-u", "alice", "alice_01234", "sh", "-c", InterpreterDiscovery.script]))
    }

    func testNoContainerAndSeveralContainersAreClearErrors() {
        let none = IDETargetFinder(docker: DockerClient(runner: fakeDocker(containers: [])))
        assertOneLineError(try none.container(named: nil, user: Self.alice), contains: "alice has no dbgbox container")
        let two = IDETargetFinder(docker: DockerClient(runner: fakeDocker(containers: ["alice_1", "alice_2"])))
        assertOneLineError(try two.container(named: nil, user: Self.alice), contains: "2 dbgbox containers (alice_1, alice_2)")
    }

    func testStoppedContainerIsRefused() throws {
        let finder = IDETargetFinder(docker: DockerClient(runner: fakeDocker(containers: ["alice_1"], status: "exited")))
        let c = try finder.container(named: "alice_1", user: Self.alice)
        assertOneLineError(try finder.target(for: c, home: "/home/alice", identityFile: "k", alias: nil),
                           contains: "alice_1 is exited, not running")
    }

    func testOtherUsersContainerIsRefused() {
        let bob = UserIdentity(name: "bob", uid: 1001, gid: 1001, home: "/home/bob")
        let finder = IDETargetFinder(docker: DockerClient(runner: fakeDocker(containers: ["alice_1"])))
        assertOneLineError(try finder.container(named: "alice_1", user: bob))
    }

    func testAliasReachesOnlyThisPort() throws {
        let dir = try containerTempDir(self)
        try FileManager.default.createDirectory(atPath: "\(dir)/.ssh", withIntermediateDirectories: true)
        try "Host dbgbox-alice_1\n  HostName 127.0.0.1\n  Port 34567\n".write(toFile: "\(dir)/.ssh/config", atomically: true, encoding: .utf8)
        let resolver = SSHConfigResolver(home: dir, userName: "alice", localHostName: "laptop", systemConfigPath: "/nonexistent")
        let resolved = try resolver.resolve(spec: HostSpec(host: "dbgbox-alice_1"))
        XCTAssertTrue(IDETargetFinder.aliasReaches(resolved, port: 34567))
        XCTAssertFalse(IDETargetFinder.aliasReaches(resolved, port: 34568))
        let missing = try resolver.resolve(spec: HostSpec(host: "dbgbox-alice_2"))
        XCTAssertFalse(IDETargetFinder.aliasReaches(missing, port: 22))
    }
}
