import Foundation
import XCTest
@testable import DbgboxKit

/// `dbgbox ide pycharm|vscode` against a real container of an image with python3, run as the
/// ordinary test user through the installed binary.
final class IDEIntegrationTests: XCTestCase {
    /// One image for the class (python3 from apt).
    static let image = IT.ClassImage(
        label: "ide-python",
        append: "RUN apt-get update && apt-get install -y --no-install-recommends python3 && rm -rf /var/lib/apt/lists/*\n")

    override class func tearDown() {
        image.remove()
        super.tearDown()
    }

    var home = ""
    var imageName = ""
    var created: [String] = []

    override func setUpWithError() throws {
        try IT.requireDocker()
        _ = try IT.requireBinary()
        home = try IT.scratchDir("ide")
        let scratch = home
        addTeardownBlock { try? FileManager.default.removeItem(atPath: scratch) }
        addTeardownBlock { [unowned self] in
            for name in self.created { _ = try? IT.runner.run(["docker", "rm", "-f", name]) }
        }
        let key = try IT.dbgbox(["keygen"], home: home)
        XCTAssertEqual(key.exitCode, 0, "keygen: \(key.stderrText)")
        imageName = try Self.image.name(home: home)
    }

    func createContainer() throws -> String {
        let r = try IT.dbgbox(["container", "create", "--json", "--gpu", "none", "--port", "auto", "--ttl", "10m",
                               "--image", imageName], home: home)
        XCTAssertEqual(r.exitCode, 0, "container create: \(r.stderrText)")
        guard r.exitCode == 0, let json = try JSONSerialization.jsonObject(with: r.stdout) as? [String: Any],
              let name = json["name"] as? String else { throw XCTSkip("container create failed: \(r.stderrText)") }
        created.append(name)
        return name
    }

    func testPyCharmFindsSystemPythonAndVSCodePrintsTheURI() throws {
        let name = try createContainer()
        let port = try XCTUnwrap(IT.runner.run(["docker", "container", "inspect", "--format",
                                                "{{index .Config.Labels \"dbgbox.port\"}}", name])
            .stdoutText.trimmingCharacters(in: .whitespacesAndNewlines))

        let pycharm = try IT.dbgbox(["ide", "pycharm", name], home: home)
        XCTAssertEqual(pycharm.exitCode, 0, pycharm.stderrText)
        let text = pycharm.stdoutText
        // No Host block yet (`dbgbox up` writes it): PyCharm gets 127.0.0.1 and the port; the pinned
        // fingerprint is shown.
        IT.assertContains(text, [
            "Interpreter         /usr/bin/python3  (system, Python 3.", "Port                \(port)\n",
            "Username            \(IT.testUser)\n", "Authentication type Key pair\n",
            "Private key file    \(home)/.ssh/id_dbgbox\n", "\(IT.user.home) → \(IT.user.home)",
            "Host                127.0.0.1\n", "accept it only if it is SHA256:",
        ])

        // Without NAME: the user's only container; with several (another test's), an error naming them.
        let running = try IT.runner.run(["docker", "ps", "-q", "--filter", "label=dbgbox.owner=\(IT.testUser)"])
        let implicit = try IT.dbgbox(["ide", "pycharm"], home: home)
        if running.stdoutText.split(separator: "\n").count == 1 {
            XCTAssertEqual(implicit.exitCode, 0, implicit.stderrText)
            XCTAssertEqual(implicit.stdoutText, text)
        } else {
            XCTAssertNotEqual(implicit.exitCode, 0)
            XCTAssertTrue(implicit.stderrText.contains(name), implicit.stderrText)
        }

        // With a Host block for the alias, PyCharm is told to use it.
        let sshDir = "\(home)/.ssh"
        try "Host dbgbox-\(name)\n  HostName 127.0.0.1\n  Port \(port)\n".write(toFile: "\(sshDir)/config", atomically: true, encoding: .utf8)
        _ = try IT.runner.run(["chown", "\(IT.user.uid):\(IT.user.gid)", "\(sshDir)/config"])
        _ = try IT.runner.run(["chmod", "600", "\(sshDir)/config"])
        let aliased = try IT.dbgbox(["ide", "pycharm", name], home: home)
        XCTAssertEqual(aliased.exitCode, 0, aliased.stderrText)
        XCTAssertTrue(aliased.stdoutText.contains("Host                dbgbox-\(name)\n"), aliased.stdoutText)
        XCTAssertTrue(aliased.stdoutText.contains("Tick \"Parse config file ~/.ssh/config\""), aliased.stdoutText)

        let vscode = try IT.dbgbox(["ide", "vscode", name], home: home)
        XCTAssertEqual(vscode.exitCode, 0, vscode.stderrText)
        XCTAssertTrue(vscode.stdoutText.contains("code --folder-uri vscode-remote://ssh-remote+dbgbox-\(name)\(IT.user.home)\n"),
                      vscode.stdoutText)
        XCTAssertTrue(vscode.stdoutText.contains("\"python.defaultInterpreterPath\": \"/usr/bin/python3\""), vscode.stdoutText)

        // --open without `code` on PATH: one clear line, after the printed instructions.
        let open = try IT.dbgbox(["ide", "vscode", name, "/tmp/a b", "--open"], home: home)
        XCTAssertNotEqual(open.exitCode, 0)
        XCTAssertTrue(open.stdoutText.contains("ssh-remote+dbgbox-\(name)/tmp/a%20b"), open.stdoutText)
        let err = open.stderrText.trimmingCharacters(in: .newlines)
        XCTAssertFalse(err.contains("\n"), err)
        XCTAssertTrue(err.contains("`code` is not on PATH"), err)
    }

    func testNoContainerAndImageWithoutPythonAreClearErrors() throws {
        let none = try IT.dbgbox(["ide", "pycharm"], home: home)
        // Other tests of this user may run containers concurrently; accept only the two clear answers.
        let err = none.stderrText.trimmingCharacters(in: .newlines)
        XCTAssertNotEqual(none.exitCode, 0)
        XCTAssertFalse(err.contains("\n"), err)
        XCTAssertTrue(err.contains("has no dbgbox container") || err.contains("dbgbox containers ("), err)

        let missing = try IT.dbgbox(["ide", "pycharm", "no-such-container-\(UUID().uuidString.prefix(6))"], home: home)
        XCTAssertNotEqual(missing.exitCode, 0)
        XCTAssertFalse(missing.stderrText.trimmingCharacters(in: .newlines).contains("\n"), missing.stderrText)
    }
}
