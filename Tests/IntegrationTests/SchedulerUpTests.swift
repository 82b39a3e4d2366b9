import Foundation
import XCTest
@testable import DbgboxKit

/// `dbgbox up --scheduler slurm` / `up --job`, `status` and `down` end to end on the testbed's real
/// Slurm (slurmctld on login, slurmd for dbgbox-node where dockerd runs, 4 fake GPUs), real Docker
/// and real sshds: dbgbox runs as the test user in the laptop namespace with a scratch HOME, the
/// scheduler's commands run on the login host over libssh2, the container on the node the job gets.
/// Under CI=true a missing Slurm fails; elsewhere it skips.
final class SchedulerUpTests: XCTestCase {
    static let image = IT.ClassImage(label: "sched-it", append: "")
    nonisolated(unsafe) static var homes: [String] = []

    override class func tearDown() {
        for home in homes { try? FileManager.default.removeItem(atPath: home) }
        homes = []
        image.remove()
        Testbed.downIfStartedHere()
        super.tearDown()
    }

    var bed: Testbed!
    var home = ""
    var jobs: [String] = []

    override func setUpWithError() throws {
        _ = try IT.requireBinary()
        try IT.requireDocker()
        try IT.require(SlurmSandboxTests.hasNvidiaRuntime, "docker runtime `nvidia` (scripts/bootstrap.sh writes /etc/docker/daemon.json)")
        bed = try Testbed.up()
        try IT.require(Testbed.run(["status"]).stdoutText.contains("up    slurm"), "the testbed's Slurm (scripts/testbed.sh up starts it)")
        home = try IT.scratchDir("sched")
        Self.homes.append(home)
    }

    override func tearDownWithError() throws {
        // Whatever a failed test left: its sessions, its jobs, its containers.
        if bed != nil {
            _ = try? dbgbox(["down", "--all"])
            for id in jobs { _ = try? login(["scancel", id]) }
        }
        for name in ownJobContainers() { _ = try? IT.runner.run(["docker", "rm", "-f", name]) }
    }

    // MARK: helpers

    /// How dbgbox reaches the login host, and the node address (NodeAddr) through it.
    var remoteArgs: [String] {
        ["--login", Testbed.loginAlias, "-F", bed.sshConfig, "--known-hosts", bed.knownHosts, "-i", bed.key]
    }

    func upArgs(_ extra: [String]) throws -> [String] {
        // --gpu-runtime nvidia: the sandbox's stand-in runtime (runc); `--gpus device=…` needs the NVIDIA toolkit.
        ["up", "--scheduler", "slurm", "--image", try Self.image.name(home: IT.user.home), "--key", bed.key + ".pub", "--ttl", "1h",
         "--gpu-runtime", "nvidia"] + extra + remoteArgs
    }

    func dbgbox(_ args: [String]) throws -> ProcessResult {
        try bed.inLaptop([try IT.requireBinary()] + args, home: home, extraEnv: ["XDG_STATE_HOME": "\(home)/state"])
    }

    /// The scheduler's commands as the test user on the login host, from the home directory.
    func login(_ argv: [String]) throws -> ProcessResult {
        try bed.inLogin(["sh", "-c", "cd && exec \"$@\"", "sh"] + argv)
    }

    func rows() throws -> [[String: Any]] {
        let r = try dbgbox(["status", "--json"])
        XCTAssertEqual(r.exitCode, 0, r.stderrText)
        return (try JSONSerialization.jsonObject(with: r.stdout) as? [[String: Any]]) ?? []
    }

    /// The error line (after up's step lines).
    func lastLine(_ r: ProcessResult) -> String {
        r.stderrText.split(separator: "\n").last.map(String.init) ?? ""
    }

    func ownJobContainers() -> [String] {
        ((try? IT.runner.run(["docker", "ps", "-a", "--filter", "label=dbgbox.job", "--filter", "label=dbgbox.owner=\(IT.testUser)",
                               "--format", "{{.Names}}"]))?.stdoutText ?? "").split(separator: "\n").map(String.init)
    }

    func exists(_ container: String) -> Bool { (try? IT.runner.run(["docker", "inspect", container]).succeeded) ?? false }

    func waitGone(_ container: String, seconds: Double) -> Double? {
        let start = Date()
        while Date().timeIntervalSince(start) < seconds {
            if !exists(container) { return Date().timeIntervalSince(start) }
            usleep(200_000)
        }
        return nil
    }

    func ssh(_ name: String, _ command: String) throws -> ProcessResult {
        try bed.inLaptop(["ssh", "-F", "\(home)/.ssh/config", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10", "dbgbox-\(name)", command], home: home)
    }

    /// `up`, then the session's row.
    func up(_ extra: [String]) throws -> (ProcessResult, [String: Any]) {
        let before = Set(try rows().compactMap { $0["name"] as? String })
        let r = try dbgbox(try upArgs(extra))
        XCTAssertEqual(r.exitCode, 0, r.stderrText)
        let row = try rows().first { !before.contains($0["name"] as? String ?? "") } ?? [:]
        if let id = row["job_id"] as? String { jobs.append(id) }
        return (r, row)
    }

    func jobGPUs(_ id: String) throws -> String {
        let text = try login(["scontrol", "show", "job", "-d", id]).stdoutText
        let gpus = try SlurmOutput.parseJobGPUs(text)["dbgbox-node"] ?? []
        return gpus.map(String.init).joined(separator: ",")
    }

    func assertNothingLeft(_ name: String, job: String, file: StaticString = #filePath, line: UInt = #line) throws {
        XCTAssertFalse(exists(name), "container \(name) left", file: file, line: line)
        // A cancelled job is COMPLETING for a moment, then leaves the queue.
        var queue = try login(["squeue", "-h", "--me", "-o", "%i"]).stdoutText
        for _ in 0..<60 where queue.split(separator: "\n").contains(Substring(job)) {
            usleep(500_000)
            queue = try login(["squeue", "-h", "--me", "-o", "%i"]).stdoutText
        }
        XCTAssertFalse(queue.split(separator: "\n").contains(Substring(job)), "job \(job) left: \(queue)", file: file, line: line)
        let files = try login(["ls", "-a"]).stdoutText
        XCTAssertFalse(files.contains("dbgbox-job-\(job)"), "output file left: \(files)", file: file, line: line)
        XCTAssertEqual(try rows().count, 0, file: file, line: line)
        let hostConfig = (try? String(contentsOfFile: "\(home)/.ssh/dbgbox/config", encoding: .utf8)) ?? ""
        XCTAssertFalse(hostConfig.contains("dbgbox-\(name)"), file: file, line: line)
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(home)/.ssh/config"), "the Include stays only while a block does", file: file, line: line)
    }

    // MARK: tests

    /// Two GPUs through `--gpu-runtime nvidia`: the container's NVIDIA_VISIBLE_DEVICES is the job's
    /// IDX, ssh sees SLURM_JOB_ID; scancel from outside removes the container within 60 s, status
    /// says ended, down cleans up. Also the timings the issue asks for.
    func testUpTwoGPUsSSHScancelStatusDown() throws {
        _ = try up(["--gpus", "1"])   // warm: image built, node seen
        XCTAssertEqual(try dbgbox(["down"]).exitCode, 0)
        let start = Date()
        let (r, row) = try up(["--gpus", "2"])
        let name = try XCTUnwrap(row["name"] as? String, r.stdoutText + r.stderrText)
        let id = try XCTUnwrap(row["job_id"] as? String)
        let ssh = try self.ssh(name, "echo NV=$NVIDIA_VISIBLE_DEVICES JOB=$SLURM_JOB_ID")
        let upToSSH = Date().timeIntervalSince(start)
        print("up --scheduler slurm to ssh-able (free node, cached image): \(String(format: "%.2f", upToSSH)) s\n\(r.stdoutText)\(r.stderrText)")
        XCTAssertEqual(ssh.exitCode, 0, ssh.stderrText)
        let gpus = try jobGPUs(id)
        XCTAssertEqual(gpus.split(separator: ",").count, 2)
        XCTAssertEqual(ssh.stdoutText.trimmingCharacters(in: .whitespacesAndNewlines), "NV=\(gpus) JOB=\(id)")
        XCTAssertEqual(row["job_state"] as? String, "running")
        XCTAssertEqual(row["job_node"] as? String, "dbgbox-node")
        XCTAssertEqual(row["node"] as? String, bed.nodeAddr)
        XCTAssertNotNil(row["job_time_left"] as? String)
        XCTAssertTrue(r.stderrText.contains("job \(id) "), r.stderrText)

        let cancelled = Date()
        XCTAssertTrue(try login(["scancel", id]).succeeded)
        let gone = waitGone(name, seconds: 60)
        XCTAssertNotNil(gone, "container \(name) still there 60 s after scancel")
        print("scancel to container gone: \(String(format: "%.2f", Date().timeIntervalSince(cancelled))) s")
        let after = try XCTUnwrap(try rows().first)
        XCTAssertEqual(after["job_state"] as? String, "ended")
        let table = try dbgbox(["status"]).stdoutText
        XCTAssertTrue(table.contains("\(id) ended (") && table.contains("dbgbox down \(name)"), table)
        let down = try dbgbox(["down", name])
        XCTAssertEqual(down.exitCode, 0, down.stderrText)
        try assertNothingLeft(name, job: id)
    }

    /// A 1-minute time limit: the container goes before or with the job.
    func testTimeLimitRemovesTheContainer() throws {
        let (_, row) = try up(["--time", "1"])
        let name = try XCTUnwrap(row["name"] as? String)
        XCTAssertLessThanOrEqual(row["ttl_left_seconds"] as? Int ?? 9999, 60, "the TTL never exceeds --time")
        XCTAssertNotNil(waitGone(name, seconds: 150), "container \(name) outlived its 1-minute job")
        XCTAssertEqual(try dbgbox(["down"]).exitCode, 0)
    }

    /// Ctrl-C while the job pends: the job is cancelled and nothing is left.
    func testInterruptWhilePendingCancelsTheJob() throws {
        let log = "\(home)/up.err"
        let child = try bed.startInLaptop([try IT.requireBinary()] + (try upArgs(["--partition", "pending"])), home: home,
                                          extraEnv: ["XDG_STATE_HOME": "\(home)/state"], stdout: .null, stderr: .file(log))
        func text() -> String { (try? String(contentsOfFile: log, encoding: .utf8)) ?? "" }
        let deadline = Date().addingTimeInterval(60)
        while !text().contains("PENDING") && child.exitStatusIfDone() == nil && Date() < deadline { usleep(100_000) }
        let line = try XCTUnwrap(text().split(separator: "\n").first { $0.contains("PENDING") }, text())
        XCTAssertTrue(line.hasPrefix("job ") && line.contains(" PENDING (PartitionDown), 0:0"), String(line))
        let id = String(line.split(separator: " ")[1])
        XCTAssertEqual(kill(child.pid, SIGINT), 0)
        XCTAssertEqual(child.wait(), 130, text())
        XCTAssertTrue(text().contains("up interrupted by SIGINT: undid the job \(id) (cancelled); nothing of the session is left"), text())
        XCTAssertFalse(text().contains("nothing had been made"), text())
        let state = try login(["squeue", "-h", "-t", "all", "-j", id, "-o", "%T"]).stdoutText
        XCTAssertFalse(state.contains("PENDING"), state)
        try assertNothingLeft("dbgbox-no-container", job: id)
        XCTAssertTrue(ownJobContainers().isEmpty)
    }

    /// `--job ID` runs the container in a job the user holds, with its GPUs; down leaves the job.
    func testAttachToAHeldJob() throws {
        // A 10-minute job: the container's TTL (12 h by default) is capped by its time left.
        let made = try login(["sbatch", "--parsable", "--gres=gpu:1", "--time=10", "-o", "/dev/null", "--wrap", "sleep 600"])
        XCTAssertTrue(made.succeeded, made.stderrText)
        let id = made.stdoutText.trimmingCharacters(in: .whitespacesAndNewlines)
        jobs.append(id)
        var state = ""
        for _ in 0..<50 where state != "RUNNING" {
            state = try login(["squeue", "-h", "-j", id, "-o", "%T"]).stdoutText.trimmingCharacters(in: .whitespacesAndNewlines)
            usleep(200_000)
        }
        let r = try dbgbox(["up", "--job", id, "--gpu-runtime", "nvidia",
                            "--image", try Self.image.name(home: IT.user.home), "--key", bed.key + ".pub"] + remoteArgs)
        XCTAssertEqual(r.exitCode, 0, r.stderrText)
        let row = try XCTUnwrap(try rows().first)
        let name = try XCTUnwrap(row["name"] as? String)
        XCTAssertEqual(row["job_id"] as? String, id)
        let ttl = try XCTUnwrap(row["ttl_left_seconds"] as? Int, "\(row)")
        XCTAssertLessThanOrEqual(ttl, 600, "the TTL is capped by the job's time left")
        let ssh = try self.ssh(name, "echo NV=$NVIDIA_VISIBLE_DEVICES JOB=$SLURM_JOB_ID")
        let gpus = try jobGPUs(id)
        XCTAssertEqual(gpus.split(separator: ",").count, 1)
        XCTAssertEqual(ssh.stdoutText.trimmingCharacters(in: .whitespacesAndNewlines), "NV=\(gpus) JOB=\(id)")
        let down = try dbgbox(["down"])
        XCTAssertEqual(down.exitCode, 0, down.stderrText)
        XCTAssertFalse(exists(name))
        XCTAssertEqual(try login(["squeue", "-h", "-j", id, "-o", "%T"]).stdoutText.trimmingCharacters(in: .whitespacesAndNewlines), "RUNNING")
        XCTAssertFalse(try login(["ls", "-a"]).stdoutText.contains("dbgbox-job-\(id)"))
    }

    /// Two sessions as two jobs: disjoint GPUs, different ports.
    func testTwoSessionsGetDisjointGPUsAndPorts() throws {
        let (_, a) = try up(["--gpus", "2"])
        let (_, b) = try up(["--gpus", "2"])
        let ga = Set(a["job_id"].flatMap { try? jobGPUs($0 as! String) }?.split(separator: ",") ?? [])
        let gb = Set(b["job_id"].flatMap { try? jobGPUs($0 as! String) }?.split(separator: ",") ?? [])
        XCTAssertEqual(ga.count, 2)
        XCTAssertEqual(gb.count, 2)
        XCTAssertTrue(ga.isDisjoint(with: gb), "\(ga) \(gb)")
        XCTAssertNotEqual(a["node_port"] as? Int, b["node_port"] as? Int)
        XCTAssertNotEqual(a["local_port"] as? Int, b["local_port"] as? Int)
        for row in [a, b] {
            let ssh = try self.ssh(row["name"] as? String ?? "?", "echo $SLURM_JOB_GPUS")
            XCTAssertEqual(ssh.stdoutText.trimmingCharacters(in: .whitespacesAndNewlines), try jobGPUs(row["job_id"] as? String ?? ""))
        }
        XCTAssertEqual(try dbgbox(["down", "--all"]).exitCode, 0)
        XCTAssertTrue(ownJobContainers().isEmpty)
    }

    /// The batch shell killed (KILL: its trap cannot run); the next `status` reaps the container.
    /// (`scancel --signal=KILL --full` was seen to let the container go with the job in this flow,
    /// so the shell is killed directly, as an OOM kill would.)
    func testStatusReapsTheContainerOfAKilledJob() throws {
        let (_, row) = try up([])
        let name = try XCTUnwrap(row["name"] as? String)
        let id = try XCTUnwrap(row["job_id"] as? String)
        let shell = try IT.runner.run(["pgrep", "-f", "job0*\(id)/slurm_script"]).stdoutText.split(separator: "\n").first.map(String.init)
        let pid = try XCTUnwrap(shell.flatMap { Int32($0) }, "the batch shell of job \(id)")
        XCTAssertEqual(kill(pid, SIGKILL), 0)
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline, try login(["squeue", "-h", "-j", id, "-o", "%T"]).stdoutText.contains("RUNNING") { usleep(500_000) }
        XCTAssertTrue(exists(name), "the trap was expected not to run on KILL")
        let status = try dbgbox(["status"])
        XCTAssertTrue(status.stdoutText.contains("removed \(name)"), status.stdoutText + status.stderrText)
        XCTAssertFalse(exists(name))
        XCTAssertEqual(try dbgbox(["down"]).exitCode, 0)
        try assertNothingLeft(name, job: id)
    }

    /// Bad input: one line each, non-zero, nothing made.
    func testBadInputIsOneLine() throws {
        let cases: [([String], String)] = [
            (["--node", "x"], "dbgbox: error: --node cannot go with --scheduler or --job: the node is the one the job gets; leave --node out"),
            (["--partition", "nope"], "dbgbox: error: sbatch refused the job: invalid partition specified: nope; Invalid partition name specified"),
            (["--gpus", "0"], "dbgbox: error: --gpus 0: a scheduler session needs at least one GPU: use --gpus 1 or more"),
            (["--gpus", "99"], "dbgbox: error: sbatch refused the job: Requested node configuration is not available"),
            (["--time", "5x"], "dbgbox: error: --time \"5x\" is not a time limit: use MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS, or 90m, 2h, 1d"),
        ]
        for (extra, message) in cases {
            let r = try dbgbox(try upArgs(extra))
            XCTAssertEqual(r.exitCode, 1, "\(extra)")
            XCTAssertEqual(lastLine(r), message, "\(extra)")
        }
        XCTAssertEqual(try rows().count, 0)
        XCTAssertTrue(ownJobContainers().isEmpty)
    }

    /// A login host whose sessions have no Slurm on their PATH (an sshd of the test's own with
    /// `SetEnv PATH=` a directory of the few tools dbgbox needs besides the scheduler's).
    func testSbatchMissingOnTheLoginHost() throws {
        let tools = "/tmp/dbgbox-noslurm-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: tools, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: tools) }
        for tool in ["id", "getent", "test", "cat", "head", "rm"] {
            try FileManager.default.createSymbolicLink(atPath: "\(tools)/\(tool)", withDestinationPath: "/usr/bin/\(tool)")
        }
        let pub = try String(contentsOfFile: bed.key + ".pub", encoding: .utf8)
        let sshd = try TestSSHD(user: IT.testUser, authorizedKeys: pub, settings: ["SetEnv": "PATH=\(tools)"])
        defer { sshd.stop() }
        try (sshd.knownHostsLine + "\n").write(toFile: "\(home)/known_hosts", atomically: true, encoding: .utf8)
        _ = try IT.runner.run(["chown", "\(IT.user.uid):\(IT.user.gid)", "\(home)/known_hosts"])
        // From the root namespace (where the sshd listens on 127.0.0.1).
        let r = try IT.asUser([try IT.requireBinary(), "up", "--scheduler", "slurm", "--key", bed.key + ".pub",
                               "--login", "\(IT.testUser)@127.0.0.1:\(sshd.port)", "-F", "/dev/null",
                               "--known-hosts", "\(home)/known_hosts", "-i", bed.key],
                              home: home, extraEnv: ["XDG_STATE_HOME": "\(home)/state"])
        XCTAssertEqual(r.exitCode, 1, r.stdoutText)
        XCTAssertEqual(lastLine(r),
                       "dbgbox: error: sbatch not found on the login host: run dbgbox on a cluster whose login host has the scheduler's commands, or check the PATH of non-interactive ssh sessions there")
    }
}
