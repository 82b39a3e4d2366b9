import Foundation
import XCTest
@testable import DbgboxCommands
@testable import DbgboxKit

/// `up`'s scheduler options (issue 14): the `SchedulerOptions` group, `--login` alone with a
/// scheduler, one-line refusals before anything connects, and where each job value comes from
/// (command line > config.yaml profile > config defaults > built-ins), read off the sbatch argv a
/// fake login host receives.
final class SchedulerOptionsTests: XCTestCase {
    func testTheGroupParses() throws {
        let up = try XCTUnwrap(try Dbgbox.parseAsRoot(["up", "--scheduler", "slurm", "--gpus", "2", "--time", "2h", "--partition", "p1",
                                                        "--job-arg=--account=a1", "--job-arg", "--qos=high", "--login", "gw"]) as? Up)
        XCTAssertEqual(up.scheduler.choices, SchedulerChoices(scheduler: "slurm", gpus: "2", time: "2h", partition: "p1",
                                                              jobArgs: ["--account=a1", "--qos=high"]))
        XCTAssertEqual(up.chain.login, "gw")
        XCTAssertNil(up.chain.node)
        let attach = try XCTUnwrap(try Dbgbox.parseAsRoot(["up", "--job", "4711", "--login", "gw"]) as? Up)
        XCTAssertEqual(attach.scheduler.choices.job, "4711")

        let h = try CommandHarness(self)
        XCTAssertEqual(h.run(["up", "--help"]), 0)
        XCTAssertTrue(h.stdout.text.contains("THE SCHEDULER JOB:"), h.stdout.text)
        XCTAssertTrue(h.stdout.text.contains("--job-arg <arg>"), h.stdout.text)
    }

    /// `--login` alone is up's with a scheduler (the node is the job's); every other command keeps
    /// "--login and --node go together" at parse time.
    func testLoginAloneGoesToTheLoginHostWithASchedulerOnly() throws {
        for args in [["up", "--scheduler", "slurm", "--login", "gw"], ["up", "--job", "12", "--login", "gw"]] {
            let h = try CommandHarness(self)
            try h.makeKey()
            XCTAssertEqual(h.run(args), 1, "\(args)")
            XCTAssertTrue(h.errorLine().contains("login host requested: gw"), "\(args): \(h.stderr.text)")
            XCTAssertEqual(h.loginRequests.first?.login.host, "gw")
            XCTAssertTrue(h.requests.isEmpty, "no chain to a node: \(args)")
        }
        let cases: [([String], String)] = [
            (["up", "--gpu", "none", "--login", "gw"], "up needs --login and --node"),
            (["up", "--scheduler", "slurm", "--node", "n"], "--node cannot go with --scheduler or --job"),
            (["container", "list", "--login", "gw"], "--login and --node go together"),
            (["cleanup", "--login", "gw"], "--login and --node go together"),
            (["down", "--login", "gw"], "--login and --node go together"),
            (["tunnel", "--login", "gw", "--port", "2201"], "--login and --node go together"),
        ]
        for (args, needle) in cases {
            let h = try CommandHarness(self)
            try h.makeKey()
            XCTAssertNotEqual(h.run(args), 0, "\(args)")
            XCTAssertTrue(h.errorLine().contains(needle), "\(args): \(h.stderr.text)")
        }
    }

    /// Refused in one line before any connection.
    func testBadInputIsOneLineBeforeAnyConnection() throws {
        let cases: [([String], String)] = [
            (["--node", "n"], "--node cannot go with --scheduler or --job: the node is the one the job gets; leave --node out"),
            (["--gpus", "0"], "--gpus 0: a scheduler session needs at least one GPU: use --gpus 1 or more"),
            (["--gpus", "two"], "--gpus \"two\" is not a number"),
            (["--time", "5x"], "--time \"5x\" is not a time limit: use MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS, or 90m, 2h, 1d"),
            (["--time", "0"], "--time \"0\" is not a time limit"),
            (["--partition", "a b"], "--partition"),
            (["--gpu", "0,1"], "with a scheduler the job's GPUs are the devices"),
            (["--foreground"], "--foreground does not go with --scheduler or --job"),
            (["--job", "12; rm"], "--job \"12; rm\" is not a job id"),
        ]
        for (extra, needle) in cases {
            let h = try CommandHarness(self)
            try h.makeKey()
            h.stdout.reset()
            let args = ["up", "--scheduler", "slurm", "--login", "gw"] + extra
            XCTAssertEqual(h.run(args), 1, "\(args)")
            XCTAssertTrue(h.errorLine().contains(needle), "\(args): \(h.stderr.text) lacks \(needle)")
            XCTAssertEqual(h.stdout.text, "")
            XCTAssertTrue(h.loginRequests.isEmpty && h.requests.isEmpty, "\(args) connected")
        }
        let h = try CommandHarness(self)
        XCTAssertEqual(h.run(["up", "--scheduler", "lsf", "--login", "gw"]), 1)
        XCTAssertTrue(h.errorLine().contains("--scheduler \"lsf\" is not known: use slurm or pbs"), h.stderr.text)
    }

    let config = """
        defaults:
          login: cfg-gw
          scheduler: slurm
          partition: cfgpart
          time: 2h
          gpus: 2
        profiles:
          v100:
            partition: v100
            job_args: ["--gres=gpu:v100:1", "--account=p1"]
        """

    /// A login host that answers who the user is and refuses the job (so nothing is made): the
    /// sbatch argv it received is what the test reads.
    func submitted(_ args: [String], config: String? = nil) throws -> (argv: [String], harness: CommandHarness) {
        let h = try CommandHarness(self)
        try h.makeKey()
        let text = config ?? self.config
        if !text.isEmpty { try h.write(".config/dbgbox/config.yaml", text) }
        let login = FakeRunner { argv in
            switch argv {
            case ["id", "-u"], ["id", "-g"]: return ok("1000\n")
            case ["id", "-un"]: return ok("alice\n")
            case ["getent", "passwd", "alice"]: return ok("alice:x:1000:1000::/home/alice:/bin/bash\n")
            case _ where argv.first == "sbatch":
                return ProcessResult(exitCode: 1, stderr: Data("sbatch: error: stopped by the test\n".utf8))
            default: return ProcessResult(exitCode: 1, stderr: Data("unexpected\n".utf8))
            }
        }
        h.login = NodeEnvironment(runner: login, remoteName: "login gw:22")
        XCTAssertEqual(h.run(args), 1, "\(args)")
        XCTAssertTrue(h.stderr.text.hasSuffix("dbgbox: error: sbatch refused the job: stopped by the test\n"), "\(args): \(h.stderr.text)")
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(h.home)/.local/state/dbgbox/sessions/"), "\(args): a record was made")
        let sbatch = try XCTUnwrap(login.calls.first { $0.first == "sbatch" }, "\(args): \(login.calls)")
        return (sbatch, h)
    }

    /// The argv without the job name (a fresh container name each run).
    func shape(_ argv: [String]) -> [String] {
        XCTAssertTrue(argv.count > 2 && argv[2].hasPrefix("--job-name=alice_"), "\(argv)")
        return argv.enumerated().filter { $0.offset != 2 }.map(\.element)
    }

    func testJobValuesComeFromTheCommandLineThenTheProfileThenDefaults() throws {
        // config.yaml's defaults: scheduler, login, partition, time, gpus.
        let (defaults, h) = try submitted(["up"])
        XCTAssertEqual(shape(defaults), ["sbatch", "--parsable", "--gres=gpu:2", "--time=02:00:00", "--partition=cfgpart"])
        XCTAssertEqual(h.loginRequests.first?.login.host, "cfg-gw")
        // The profile: its partition and job_args (the GPU type, the count from gpus:).
        XCTAssertEqual(shape(try submitted(["up", "--profile", "v100"]).argv),
                       ["sbatch", "--parsable", "--gres=gpu:v100:2", "--account=p1", "--time=02:00:00", "--partition=v100"])
        // The command line over both; --job-arg after the profile's arguments.
        let (given, g) = try submitted(["up", "--profile", "v100", "--login", "cli-gw", "--gpus", "1", "--time", "30m",
                                        "--partition", "clipart", "--job-arg=--qos=high"])
        XCTAssertEqual(shape(given), ["sbatch", "--parsable", "--gres=gpu:v100:1", "--account=p1", "--time=00:30:00",
                                      "--partition=clipart", "--qos=high"])
        XCTAssertEqual(g.loginRequests.first?.login.host, "cli-gw")
        // Built-ins: one GPU, no time, no partition.
        XCTAssertEqual(shape(try submitted(["up", "--scheduler", "slurm", "--login", "gw"], config: "").argv),
                       ["sbatch", "--parsable", "--gres=gpu:1"])
    }

    /// config.yaml's scheduler: does not turn a plain `up --node` into a job.
    func testNodeOnTheCommandLineKeepsConfigsSchedulerOut() throws {
        let h = try CommandHarness(self)
        try h.makeKey()
        try h.write(".config/dbgbox/config.yaml", config)
        XCTAssertEqual(h.run(["up", "--node", "n1"]), 1)
        XCTAssertTrue(h.errorLine().contains("chain requested: cfg-gw → n1"), h.stderr.text)
        XCTAssertTrue(h.loginRequests.isEmpty)
    }

    func testMalformedConfigValuesNameTheFile() throws {
        for (yaml, needle) in [("defaults: {time: 5x}", "defaults.time must be a time limit"),
                               ("defaults: {gpus: 0}", "defaults.gpus must be a number of GPUs"),
                               ("defaults: {scheduler: lsf}", "defaults.scheduler must be slurm or pbs")] {
            let h = try CommandHarness(self)
            try h.makeKey()
            try h.write(".config/dbgbox/config.yaml", yaml)
            XCTAssertEqual(h.run(["up", "--scheduler", "slurm", "--login", "gw"]), 1, yaml)
            XCTAssertTrue(h.errorLine().contains(needle), "\(yaml): \(h.stderr.text)")
            XCTAssertTrue(h.errorLine().contains("config.yaml"), "\(yaml): \(h.stderr.text)")
        }
    }

    /// `down` of a session with a job: the job cancelled on the login host, its container awaited
    /// on the node (already gone here), its output file removed; the line says so.
    func testDownOfASchedulerSessionCancelsItsJob() throws {
        let h = try CommandHarness(self)
        let login = FakeRunner { _ in ok() }
        let node = FakeRunner { argv in
            argv.starts(with: ["docker", "container", "inspect"])
                ? ProcessResult(exitCode: 1, stderr: Data("Error: No such container: \(argv.last ?? "")\n".utf8)) : ok()
        }
        h.login = NodeEnvironment(runner: login, remoteName: "login gw:22")
        h.node = NodeEnvironment(runner: node, remoteName: "node 10.0.0.7:22")
        let manager = try h.context.sessionManager(home: h.home)
        try manager.store.insert(SessionRecord(
            name: "alice_00042", container: "alice_00042", login: "gw", node: "10.0.0.7", targetPort: 24001, localPort: 24001,
            created: h.now, image: "alice/ssh:latest", user: "alice", identityFile: "\(h.home)/.ssh/id_dbgbox",
            logFile: manager.logPath("alice_00042"),
            job: SessionJob(id: "4711", scheduler: "slurm", nodeName: "dbgbox-node", outputFile: "dbgbox-job-4711.out")))
        XCTAssertEqual(h.run(["down"]), 0, h.stderr.text)
        XCTAssertEqual(h.stdout.text, "down alice_00042: tunnel was none (foreground), job 4711 cancelled, container removed, Host block dbgbox-alice_00042 removed (0.0 s)\n")
        XCTAssertEqual(login.calls.first, ["scancel", "4711"])
        XCTAssertTrue(login.calls.contains(["rm", "-f", "--", "dbgbox-job-4711.out"]), "\(login.calls)")
        XCTAssertEqual(h.loginRequests.first?.login.host, "gw")
        XCTAssertEqual(h.requests.first?.node.host, "10.0.0.7")
        XCTAssertNil(try manager.store.load("alice_00042"))
    }

    /// `cleanup --scheduler`: the reaper on the node, the live jobs asked on the login host.
    func testCleanupWithASchedulerReapsContainersOfEndedJobs() throws {
        let h = try CommandHarness(self)
        let login = FakeRunner { argv in argv.first == "squeue" ? ok("12\n") : ok() }
        let node = FakeRunner { argv in
            switch argv {
            case ["id", "-u"], ["id", "-g"]: return ok("1000\n")
            case ["id", "-un"]: return ok("alice\n")
            case ["getent", "passwd", "alice"]: return ok("alice:x:1000:1000::/home/alice:/bin/bash\n")
            case _ where argv.starts(with: ["docker", "ps", "-a", "--filter", "label=dbgbox.job"]):
                return ok("alice_1|12|alice\nalice_2|11|alice\nbob_1|10|bob\n")
            default: return ok()
            }
        }
        h.login = NodeEnvironment(runner: login, remoteName: "login gw:22")
        h.node = NodeEnvironment(runner: node, remoteName: "node n:22")
        XCTAssertEqual(h.run(["cleanup", "--scheduler", "slurm", "--login", "gw", "--node", "n", "--container", "none_such"]), 0, h.stderr.text)
        XCTAssertTrue(h.stdout.text.hasPrefix("removed container alice_2 (its job no longer exists)\n"), h.stdout.text)
        XCTAssertTrue(node.calls.contains { $0.starts(with: ["docker", "rm"]) && $0.last == "alice_2" }, "\(node.calls)")
        XCTAssertFalse(node.calls.contains { $0.starts(with: ["docker", "rm"]) && ($0.last == "alice_1" || $0.last == "bob_1") })
    }
}
