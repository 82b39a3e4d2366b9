import Foundation
import XCTest
@testable import DbgboxKit

/// scripts/demo.sh, the documented flow, as CI runs it: its own demo user, the installed dbgbox
/// (DBGBOX_DEMO_BIN), the sandbox cluster. It must pass its own checks and leave nothing of the
/// session, and leave the sandbox's hosts as it found them (up for the other tests, or down).
final class DemoTests: XCTestCase {
    private var script: String {
        URL(fileURLWithPath: Testbed.script).deletingLastPathComponent().appendingPathComponent("demo.sh").path
    }

    func testTheDemoRunsAndLeavesNothing() throws {
        let bin = try IT.requireBinary()
        try Testbed.requirePrerequisites()
        try IT.requireDocker()
        try IT.require(FileManager.default.isReadableFile(atPath: script), "scripts/demo.sh at \(script)")
        let user = IT.env["DBGBOX_DEMO_USER"] ?? "dbgdemo"
        let hostsWereUp = Testbed.isUp

        var env = ProcessInfo.processInfo.environment
        env["DBGBOX_DEMO_USER"] = user
        env["DBGBOX_DEMO_BIN"] = bin
        let started = Date()
        let run = try LocalProcessRunner(environment: env).run(["timeout", "900", "bash", script])
        let seconds = Date().timeIntervalSince(started)
        print("demo: exit \(run.exitCode) in \(String(format: "%.1f", seconds)) s")
        XCTAssertEqual(run.exitCode, 0, run.stdoutText + run.stderrText)

        let home = try XCTUnwrap(UserIdentity.lookup(name: user)?.home, "the demo makes its user \(user)")
        let lines = run.stdoutText.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        // After key install, the login host takes the user's own key.
        XCTAssertTrue(lines.contains("logged in to the login host as \(user) with ~/.ssh/id_dbgbox"), run.stdoutText)
        // Step 4: ssh through the alias into the job's container: the job's GPU and id, then python3
        // in the user's home.
        let step4 = try XCTUnwrap(lines.firstIndex { $0.contains("==> 4. ssh dbgbox-") }, run.stdoutText)
        let variables = lines.dropFirst(step4 + 1).first ?? ""
        XCTAssertNotNil(variables.range(of: #"^NVIDIA_VISIBLE_DEVICES=[0-9] SLURM_JOB_ID=[0-9]+ SLURM_JOB_GPUS=[0-9]$"#, options: .regularExpression),
                        run.stdoutText)
        XCTAssertEqual(lines.dropFirst(step4 + 2).first, home, run.stdoutText)
        // The scheduler flow leaves nothing; then the flow without a scheduler, which leaves nothing either.
        XCTAssertTrue(lines.contains("nothing left: no job, no container, no tunnel, no Host block, no pinned key, no output file"), run.stdoutText)
        XCTAssertTrue(lines.contains { $0.hasPrefix("in ") && $0.hasSuffix(", no job: SLURM_JOB_ID=none") }, run.stdoutText)
        XCTAssertTrue(lines.contains("nothing left: no container, no tunnel, no Host block, no pinned key"), run.stdoutText)

        // Nothing of the session, checked here too.
        let containers = try IT.runner.run(["docker", "ps", "-a", "--filter", "label=\(ContainerSpec.labelOwner)=\(user)",
                                            "--format", "{{.Names}}"])
        XCTAssertTrue(containers.succeeded, containers.stderrText)
        XCTAssertEqual(containers.stdoutText, "", "containers of \(user) are left")
        let tunnels = try IT.runner.run(["pgrep", "-u", user, "-a", "-f", " tunnel"])
        XCTAssertEqual(tunnels.exitCode, 1, "a tunnel of \(user) still runs: \(tunnels.stdoutText)")
        let blocks = (try? String(contentsOfFile: "\(home)/.ssh/dbgbox/config", encoding: .utf8)) ?? ""
        XCTAssertFalse(blocks.contains("Host dbgbox-"), blocks)
        let pinned = (try? String(contentsOfFile: "\(home)/.ssh/dbgbox/known_hosts", encoding: .utf8)) ?? ""
        XCTAssertEqual(pinned.trimmingCharacters(in: .whitespacesAndNewlines), "", "pinned host keys are left")
        let sshConfig = (try? String(contentsOfFile: "\(home)/.ssh/config", encoding: .utf8)) ?? ""
        XCTAssertFalse(sshConfig.contains("dbgbox/config"), "the Include line is left: \(sshConfig)")
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(home)/.ssh/dbgbox-demo-hosts"))

        // The sandbox's hosts as the demo found them.
        XCTAssertEqual(Testbed.isUp, hostsWereUp)
    }
}
