import Foundation
import XCTest
@testable import DbgboxKit

/// Shared plumbing for integration tests: the installed dbgbox binary, run as the ordinary
/// test user (as on a real node), and the real docker engine.
enum IT {
    static let env = ProcessInfo.processInfo.environment
    static var isCI: Bool { env["CI"] == "true" }
    static var testUser: String { env["DBGBOX_TEST_USER"] ?? "dbgtest" }
    static var binary: String? { env["DBGBOX_BIN"] }
    static var baseImage: String { env["DBGBOX_BASE_IMAGE"] ?? "dbgbox-base/debian:bookworm" }
    static let runner = LocalProcessRunner()

    /// Fails under CI=true and skips elsewhere when a prerequisite is missing.
    static func require(_ condition: Bool, _ what: String, file: StaticString = #filePath, line: UInt = #line) throws {
        guard !condition else { return }
        if isCI {
            XCTFail("prerequisite missing under CI=true: \(what)", file: file, line: line)
            throw XCTSkip("failed: \(what)")
        }
        throw XCTSkip("prerequisite missing: \(what) (run scripts/test.sh)")
    }

    static func requireBinary() throws -> String {
        try require(binary != nil && FileManager.default.isExecutableFile(atPath: binary!), "DBGBOX_BIN (installed dbgbox)")
        try require(UserIdentity.lookup(name: testUser) != nil, "test user \(testUser)")
        return binary!
    }

    static func requireDocker() throws {
        let ok = (try? runner.run(["docker", "info", "--format", "{{.ServerVersion}}"]).succeeded) ?? false
        try require(ok, "a running Docker engine")
        try require((try? runner.run(["docker", "image", "inspect", baseImage]).succeeded) ?? false, "base image \(baseImage)")
    }

    static var user: UserIdentity { UserIdentity.lookup(name: testUser)! }

    /// A fresh home-like scratch directory owned by the test user.
    static func scratchDir(_ label: String = "it") throws -> String {
        let dir = "/tmp/dbgbox-\(label)-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        _ = try runner.run(["chown", "\(user.uid):\(user.gid)", dir])
        return dir
    }

    /// Runs `argv` as the test user with a clean environment (HOME = the user's home unless given).
    static func asUser(_ argv: [String], home: String? = nil, extraEnv: [String: String] = [:], input: Data? = nil) throws -> ProcessResult {
        var envArgs = ["PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin", "USER=\(testUser)", "LOGNAME=\(testUser)",
                       "HOME=\(home ?? user.home)", "LANG=C.UTF-8"]
        for (k, v) in extraEnv.sorted(by: { $0.key < $1.key }) { envArgs.append("\(k)=\(v)") }
        return try runner.run(["runuser", "-u", testUser, "--", "env", "-i"] + envArgs + argv, input: input)
    }

    /// `dbgbox image create --base BASE --name NAME --append FILE` as the test user, FILE written
    /// into `home` (owned by the test user) with `append`.
    static func imageCreate(name: String, append: String, home: String) throws -> ProcessResult {
        let file = "\(home)/append-\(UUID().uuidString.prefix(8)).Dockerfile"
        try append.write(toFile: file, atomically: true, encoding: .utf8)
        _ = try runner.run(["chown", "\(user.uid):\(user.gid)", file])
        return try dbgbox(["image", "create", "--base", baseImage, "--name", name, "--append", file], home: home)
    }

    /// An image a test class builds once, when a test first asks for it, with `dbgbox image create
    /// --append`, and removes in its class tearDown.
    final class ClassImage: @unchecked Sendable {
        let label: String
        let append: String
        private let lock = NSLock()
        private var built: String?

        init(label: String, append: String) {
            self.label = label
            self.append = append
        }

        /// The image's name, built on the first call (skips the test when the build fails).
        func name(home: String, file: StaticString = #filePath, line: UInt = #line) throws -> String {
            try lock.withLock {
                if let built { return built }
                let name = "\(IT.testUser.lowercased())/\(label):\(UUID().uuidString.prefix(8).lowercased())"
                let r = try IT.imageCreate(name: name, append: append, home: home)
                XCTAssertEqual(r.exitCode, 0, "image create: \(r.stderrText.suffix(2000))", file: file, line: line)
                guard r.exitCode == 0 else { throw XCTSkip("image create failed") }
                built = name
                return name
            }
        }

        func remove() {
            lock.withLock {
                if let built { _ = try? IT.runner.run(["docker", "image", "rm", "-f", built]) }
                built = nil
            }
        }
    }

    /// A Dockerfile fragment whose ENV a plain ssh session does not see without dbgbox's entrypoint:
    /// a fake python3 (it prints a version) on a PATH entry of its own, and a value with a space.
    static let envFragment = """
        RUN mkdir -p /opt/fake/bin && printf '#!/bin/sh\\necho 3.99.1\\n' > /opt/fake/bin/python3 && chmod 0755 /opt/fake/bin/python3
        ENV PATH=/opt/fake/bin:$PATH
        ENV DBGBOX_PROBE="a b"

        """

    /// Asserts that `text` contains each of `needles` (the text is shown on failure).
    static func assertContains(_ text: String, _ needles: [String], file: StaticString = #filePath, line: UInt = #line) {
        for needle in needles {
            XCTAssertTrue(text.contains(needle), "missing \(needle.debugDescription) in:\n\(text)", file: file, line: line)
        }
    }

    /// Runs the installed dbgbox as the test user.
    static func dbgbox(_ args: [String], home: String? = nil, extraEnv: [String: String] = [:], input: Data? = nil) throws -> ProcessResult {
        let bin = try requireBinary()
        return try asUser([bin] + args, home: home, extraEnv: extraEnv, input: input)
    }
}
