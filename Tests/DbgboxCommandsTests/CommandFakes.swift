import Foundation
import XCTest
@testable import DbgboxCommands
@testable import DbgboxKit

/// Keeps what a command writes to stdout or stderr.
final class RecordingSink: OutputSink, @unchecked Sendable {
    private let lock = NSLock()
    private var data = Data()
    func write(_ chunk: Data) { lock.withLock { data.append(chunk) } }
    var text: String { lock.withLock { String(decoding: data, as: UTF8.self) } }
    func reset() { lock.withLock { data = Data() } }
}

/// Records every argv and answers from a script: docker and the node's programs.
final class FakeRunner: ProcessRunner, @unchecked Sendable {
    private let lock = NSLock()
    private var _calls: [[String]] = []
    let handler: @Sendable ([String]) throws -> ProcessResult

    init(_ handler: @escaping @Sendable ([String]) throws -> ProcessResult = { _ in ProcessResult(exitCode: 0) }) {
        self.handler = handler
    }

    var calls: [[String]] { lock.withLock { _calls } }

    func run(_ argv: [String], input: Data?) throws -> ProcessResult {
        lock.withLock { _calls.append(argv) }
        return try handler(argv)
    }

    func stream(_ argv: [String], input: Data?, to sink: OutputSink) throws -> ProcessResult {
        try run(argv, input: input)
    }
}

func ok(_ stdout: String = "") -> ProcessResult { ProcessResult(exitCode: 0, stdout: Data(stdout.utf8)) }

/// A passwd database of one user.
struct FakeUsers: UserDirectory {
    var user: UserIdentity
    func lookup(uid: UInt32) -> UserIdentity? { uid == user.uid ? user : nil }
    func lookup(name: String) -> UserIdentity? { name == user.name ? user : nil }
}

/// The chain was asked for: `connect` throws this to stop a command there.
struct ChainRequested: Error, UserFacingError {
    var request: TunnelRequest
    var description: String { "chain requested: \(request.login.host) → \(request.node.host)" }
}

/// The login host alone was asked for (a scheduler's commands): `connectLogin` throws this when
/// the harness has no fake login host.
struct LoginRequested: Error, UserFacingError {
    var request: TunnelRequest
    var description: String { "login host requested: \(request.login.host)" }
}

/// The background tunnels of `up`/`down`, never started.
struct NoTunnels: SessionTunnelControl {
    func localPort(preferring preferred: Int) throws -> Int { preferred }
    func start(_ launch: TunnelLaunch) throws -> LaunchedTunnel { throw DbgboxError("no tunnels in unit tests: start") }
    func stop(pid: Int32) {}
}

/// A home directory of its own, a user `alice` (uid 1000) living there, sinks that keep the
/// output, and a clock that stands still; `run` drives dbgbox as `main` does.
final class CommandHarness {
    let home: String
    let user: UserIdentity
    let stdout = RecordingSink()
    let stderr = RecordingSink()
    var runner = FakeRunner()
    var environment: [String: String]
    var realUID: UInt32 = 1000
    /// The node for --login/--node: nil makes `connect` throw `ChainRequested` (what the command asked).
    var node: NodeEnvironment?
    private(set) var requests: [TunnelRequest] = []
    /// The login host alone (`up --scheduler`): nil makes `connectLogin` throw `LoginRequested`.
    var login: NodeEnvironment?
    fileprivate(set) var loginRequests: [TunnelRequest] = []
    /// Plan the chain as the real `connect` does (ssh config, keys) before stopping; kept here.
    var planChain = false
    private(set) var plans: [TunnelPlan] = []
    let now = Date(timeIntervalSince1970: 1_800_000_000)

    init(_ test: XCTestCase) throws {
        let dir = NSTemporaryDirectory() + "dbgbox-cmdtest-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir + "/.ssh", withIntermediateDirectories: true)
        test.addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }
        home = dir
        user = UserIdentity(name: "alice", uid: 1000, gid: 1000, home: dir)
        environment = ["HOME": dir, "PATH": "/usr/bin:/bin"]
    }

    var context: CommandContext {
        let recorded = Recorder(harness: self)
        return CommandContext(
            environment: environment, realUID: realUID, users: FakeUsers(user: user), runner: runner,
            files: LocalFileSystem(), clock: FixedWallClock(now), stdout: stdout, stderr: stderr, prompter: NoPrompter(),
            workingDirectory: home, hostName: "laptop",
            connect: { request, context in try recorded.connect(request, context) },
            connectLogin: { request, _ in try recorded.connectLogin(request) },
            tunnels: { _, _, _ in NoTunnels() })
    }

    /// Runs `dbgbox ARGS`; returns the exit code.
    @discardableResult
    func run(_ args: [String]) -> Int32 {
        DbgboxMain.execute(args, context: context)
    }

    /// Writes `text` to `path` under the home, making its directory.
    func write(_ relative: String, _ text: String) throws {
        let path = "\(home)/\(relative)"
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent,
                                                withIntermediateDirectories: true)
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
    }

    /// ~/.ssh/id_dbgbox and its .pub, made as `dbgbox keygen` makes them.
    func makeKey() throws {
        XCTAssertEqual(run(["keygen"]), 0, stderr.text)
    }

    fileprivate func record(_ request: TunnelRequest, _ context: CommandContext) throws {
        requests.append(request)
        if planChain { plans.append(try ChainSetup.plan(request, context: context).0) }
    }

    /// The one line on stderr, checked to be one `dbgbox: error:` line.
    func errorLine(file: StaticString = #filePath, line: UInt = #line) -> String {
        let lines = stderr.text.split(separator: "\n", omittingEmptySubsequences: false)
        XCTAssertEqual(lines.count, 2, "expected one line: \(stderr.text)", file: file, line: line)
        XCTAssertTrue(stderr.text.hasPrefix("dbgbox: error: "), stderr.text, file: file, line: line)
        return stderr.text
    }
}

/// `connect` for the harness's context (a Sendable box around it).
private struct Recorder: @unchecked Sendable {
    let harness: CommandHarness
    func connect(_ request: TunnelRequest, _ context: CommandContext) throws -> NodeEnvironment {
        try harness.record(request, context)
        guard let node = harness.node else { throw ChainRequested(request: request) }
        return node
    }
    func connectLogin(_ request: TunnelRequest) throws -> NodeEnvironment {
        harness.loginRequests.append(request)
        guard let login = harness.login else { throw LoginRequested(request: request) }
        return login
    }
}

extension XCTestCase {
    /// Each argv is refused: a non-zero exit, nothing on stdout, and one error line containing its
    /// needle.
    func assertRefusedInOneLine(_ cases: [([String], String)]) throws {
        for (args, needle) in cases {
            let h = try CommandHarness(self)
            let code = h.run(args)
            XCTAssertNotEqual(code, 0, "\(args)")
            XCTAssertEqual(h.stdout.text, "", "\(args): stdout must stay empty")
            XCTAssertTrue(h.errorLine().contains(needle), "\(args): \(h.stderr.text) lacks \(needle)")
        }
    }
}
