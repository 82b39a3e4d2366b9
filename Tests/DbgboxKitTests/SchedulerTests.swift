import Foundation
import XCTest
@testable import DbgboxKit

enum SchedulerFixtures {
    static func text(_ name: String) -> String {
        let url = Bundle.module.resourceURL!.appendingPathComponent("Fixtures/scheduler/\(name)")
        return (try? String(contentsOf: url, encoding: .utf8)) ?? "<missing fixture \(name)>"
    }
}

/// Scheduler parsing, requests, job scripts, the client and the reaper, over recorded outputs
/// (Fixtures/scheduler: Slurm's recorded from the sandbox's Slurm 22.05 and from the notes' forms;
/// PBS's from PBS Pro / Torque documentation forms) and fake runners.
final class SchedulerTests: XCTestCase {
    let user = UserIdentity(name: "alice", uid: 1234, gid: 1300, home: "/home/alice")
    let keyLine = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHnB7m2wR0VQ1n9r5wJX3hWgL8b0cC4V5d6e7f8g9h0i alice@node"

    func spec(name: String = "alice_04211", runtime: GPURuntime = .nvidia, letter: String? = nil,
              mounts: [BindMount] = []) -> ContainerSpec {
        let profile = letter.flatMap { DbgboxConfig.builtinGPUProfiles[$0] }
        return ContainerSpec(name: name, image: "alice/ssh:latest", user: user, port: 1, authorizedKeyLine: keyLine,
                             ttl: TTL(seconds: 43200), expires: nil,
                             gpu: GPUSelection(deviceIDs: [], profile: profile, letter: letter, runtime: runtime), mounts: mounts)
    }

    func request(_ kind: SchedulerKind = .slurm, gpus: Int = 2, time: TimeLimit? = nil, partition: String? = nil,
                 profile: [String] = [], jobArgs: [String] = [], container: ContainerSpec? = nil) -> JobRequest {
        JobRequest(kind: kind, gpus: gpus, profileArguments: profile, time: time, partition: partition,
                   jobArguments: jobArgs, container: container ?? spec())
    }

    // MARK: time limits

    func testTimeLimitForms() throws {
        let cases: [(String, Int)] = [
            ("30", 1800), ("5:30", 330), ("01:02:03", 3723), ("2-3", 2 * 86400 + 3 * 3600),
            ("2-03:04", 2 * 86400 + 3 * 3600 + 240), ("1-00:00:30", 86430), ("90m", 5400), ("2h", 7200), ("1d", 86400), ("45s", 45),
        ]
        for (text, seconds) in cases {
            XCTAssertEqual(try TimeLimit.parse(text).seconds, seconds, text)
        }
        XCTAssertEqual(TimeLimit(seconds: 3723).slurmText, "01:02:03")
        XCTAssertEqual(TimeLimit(seconds: 86430).slurmText, "1-00:00:30")
        XCTAssertEqual(TimeLimit(seconds: 90000).pbsText, "25:00:00")
    }

    func testTimeLimitMalformedIsOneLine() {
        for text in ["", "abc", "1:2:3:4", "1-2-3", "1-25", "5:61", "0", "0m", "-5", "1-", "2h30", "10:", "99999999999"] {
            XCTAssertThrowsError(try TimeLimit.parse(text), text) { error in
                let line = "\(error)"
                XCTAssertFalse(line.contains("\n"))
                XCTAssertTrue(line.contains("--time") && line.contains("HH:MM:SS"), "\(text): \(line)")
            }
        }
        XCTAssertThrowsError(try TimeLimit.parse("400d")) { XCTAssertTrue("\($0)".contains("longer than a year")) }
    }

    // MARK: requests

    func testRequestValidation() throws {
        XCTAssertThrowsError(try request(gpus: 0).validated()) {
            XCTAssertEqual("\($0)", "--gpus 0: a scheduler session needs at least one GPU: use --gpus 1 or more")
        }
        XCTAssertThrowsError(try request(gpus: 5000).validated())
        XCTAssertThrowsError(try request(partition: "gpu;rm -rf").validated()) { XCTAssertTrue("\($0)".contains("not a partition name")) }
        XCTAssertThrowsError(try request(jobArgs: ["--mem=1G\n#SBATCH --x"]).validated())
        XCTAssertThrowsError(try SchedulerKind.parse("lsf")) { XCTAssertTrue("\($0)".contains("slurm or pbs")) }
        // The container never outlives the time limit.
        XCTAssertEqual(try request(time: TimeLimit(seconds: 600)).validated().container.ttl.seconds, 600)
        XCTAssertEqual(try request(time: TimeLimit(seconds: 86400)).validated().container.ttl.seconds, 43200)
    }

    func testSlurmSubmitArguments() {
        XCTAssertEqual(request(gpus: 2, time: TimeLimit(seconds: 60), partition: "gpu", jobArgs: ["--account=proj", "--mem=4G"]).submitArguments,
                       ["sbatch", "--parsable", "--job-name=alice_04211", "--gres=gpu:2", "--time=00:01:00", "--partition=gpu", "--account=proj", "--mem=4G"])
        // A profile's typed GRES keeps its type, with the asked count.
        XCTAssertEqual(request(gpus: 3, profile: ["--gres=gpu:v100:1", "--partition=v100"]).submitArguments,
                       ["sbatch", "--parsable", "--job-name=alice_04211", "--gres=gpu:v100:3", "--partition=v100"])
    }

    func testPBSSubmitArguments() {
        XCTAssertEqual(request(.pbs, gpus: 1, time: TimeLimit(seconds: 5400), partition: "gpuq").submitArguments,
                       ["qsub", "-N", "alice_04211", "-l", "select=1:ngpus=1", "-l", "walltime=01:30:00", "-q", "gpuq"])
        XCTAssertEqual(request(.pbs, gpus: 2, profile: ["-l", "select=1:ngpus=1:gpu_model=v100"]).submitArguments,
                       ["qsub", "-N", "alice_04211", "-l", "select=1:ngpus=2:gpu_model=v100"])
    }

    // MARK: Slurm outputs

    func testSbatchParsable() throws {
        XCTAssertEqual(try SlurmOutput.parseSubmit(SchedulerFixtures.text("sbatch-parsable.txt")), "6")
        XCTAssertEqual(try SlurmOutput.parseSubmit(SchedulerFixtures.text("sbatch-parsable-cluster.txt")), "4711")
        XCTAssertThrowsError(try SlurmOutput.parseSubmit("Submitted batch job 12\n"))
        XCTAssertThrowsError(try SlurmOutput.parseSubmit(""))
    }

    func testSqueue() {
        XCTAssertEqual(SlurmOutput.parseSqueue(SchedulerFixtures.text("squeue-running.txt")),
                       JobStatus(phase: .running, state: "RUNNING", node: "dbgbox-node", elapsed: "0:03", timeLeft: "23:59:57"))
        let pending = SlurmOutput.parseSqueue(SchedulerFixtures.text("squeue-pending.txt"))
        XCTAssertEqual(pending, JobStatus(phase: .pending, state: "PENDING", reason: "PartitionDown", elapsed: "0:00", timeLeft: "1-00:00:00"))
        XCTAssertEqual(pending?.progressLine(jobID: "4711", waited: 42), "job 4711 PENDING (PartitionDown), 0:42")
        XCTAssertEqual(SlurmOutput.parseSqueue(SchedulerFixtures.text("squeue-cancelled.txt"))?.phase, .ended)
        XCTAssertNil(SlurmOutput.parseSqueue(""))
    }

    func testScontrolGPUs() throws {
        XCTAssertEqual(try SlurmOutput.parseJobGPUs(SchedulerFixtures.text("scontrol-show-job-d-sandbox.txt")), ["dbgbox-node": [0, 1]])
        XCTAssertEqual(try SlurmOutput.parseJobGPUs(SchedulerFixtures.text("scontrol-show-job-d-multi.txt")),
                       ["b02r1n07": [0, 2], "b02r1n08": [0, 2], "TenseiNode1": [0], "n3": [1], "n4": []])
        XCTAssertEqual(try SlurmOutput.parseJobGPUs(SchedulerFixtures.text("scontrol-show-job-d-mps.txt")), ["n1": [0, 1, 3]])
        XCTAssertEqual(SlurmOutput.parseScontrolState(SchedulerFixtures.text("scontrol-show-job-d-sandbox.txt"))?.phase, .running)
        XCTAssertEqual(SlurmOutput.parseNodeAddress(SchedulerFixtures.text("scontrol-show-node.txt")), "198.18.2.1")
        XCTAssertThrowsError(try SlurmOutput.gresIndices("gpu:2(IDX:0-"))
    }

    func testHostLists() throws {
        XCTAssertEqual(try SlurmOutput.expandHostList("b02r1n[07-08]"), ["b02r1n07", "b02r1n08"])
        XCTAssertEqual(try SlurmOutput.expandHostList("a[1,3-4]b,c5"), ["a1b", "a3b", "a4b", "c5"])
        XCTAssertEqual(try SlurmOutput.expandHostList("n1"), ["n1"])
        XCTAssertThrowsError(try SlurmOutput.expandHostList("n[1-"))
    }

    func testSacct() {
        XCTAssertEqual(SlurmOutput.parseSacct(SchedulerFixtures.text("sacct-cancelled.txt")),
                       JobStatus(phase: .ended, state: "CANCELLED by 1000", node: "n1", elapsed: "00:01:02"))
        XCTAssertEqual(SlurmOutput.parseSacct(SchedulerFixtures.text("sacct-timeout.txt"))?.state, "TIMEOUT")
    }

    func testSlurmRefusalsAreOneLine() {
        XCTAssertEqual(SlurmOutput.refusal(SchedulerFixtures.text("sbatch-too-many-gpus.txt")), "Requested node configuration is not available")
        XCTAssertEqual(SlurmOutput.refusal(SchedulerFixtures.text("sbatch-unknown-partition.txt")),
                       "invalid partition specified: nope; Invalid partition name specified")
    }

    // MARK: PBS outputs

    func testPBSOutputs() throws {
        XCTAssertEqual(try PBSOutput.parseSubmit(SchedulerFixtures.text("qsub.txt")), "1234.pbsserver")
        XCTAssertEqual(try PBSOutput.parseSubmit("5678[].server\n"), "5678[].server")
        XCTAssertThrowsError(try PBSOutput.parseSubmit("qsub: Unknown queue"))
        let running = PBSOutput.parseStatus(SchedulerFixtures.text("qstat-f-running.txt"))
        XCTAssertEqual(running?.phase, .running)
        XCTAssertEqual(running?.node, "node01")
        XCTAssertEqual(running?.elapsed, "00:10:00")
        XCTAssertEqual(running?.timeLeft, "00:50:00")
        let attributes = PBSOutput.attributes(SchedulerFixtures.text("qstat-f-running.txt"))
        XCTAssertEqual(attributes["Resource_List.select"], "1:ncpus=8:ngpus=1:mem=8gb:gpu_model=v100")
        XCTAssertEqual(attributes["exec_vnode"], "(node01:ncpus=8:ngpus=1:mem=8192mb)")
        let queued = PBSOutput.parseStatus(SchedulerFixtures.text("qstat-f-queued.txt"))
        XCTAssertEqual(queued?.phase, .pending)
        XCTAssertEqual(queued?.reason, "Not Running: Insufficient amount of resource: ngpus")
        XCTAssertEqual(PBSOutput.parseStatus(SchedulerFixtures.text("qstat-xf-finished.txt"))?.phase, .ended)
        XCTAssertEqual(PBSOutput.parseJobList(SchedulerFixtures.text("qstat-table.txt")), ["1234.pbsserver", "1235.pbsserver"])
        XCTAssertTrue(PBSOutput.isUnknownJob(SchedulerFixtures.text("qstat-unknown.txt")))
        XCTAssertEqual(PBSOutput.refusal(SchedulerFixtures.text("qsub-unknown-queue.txt")), "Unknown queue")
        XCTAssertEqual(try GPUAllocation.parsePBSGPUFile(SchedulerFixtures.text("torque-pbs_gpufile.txt"), path: "f"), ["0", "2"])
    }

    // MARK: job scripts

    func render(_ r: JobRequest) throws -> String {
        try JobScript.render(r, templates: JobTemplates.load(directory: Templates.directory(), kind: r.kind))
    }

    func testSlurmScript() throws {
        let mounts = [BindMount(source: "/data it's", target: "/data", readOnly: true)]
        let script = try render(request(container: spec(letter: "P", mounts: mounts)))
        XCTAssertTrue(script.hasPrefix("#!/bin/bash\n#SBATCH --job-name=alice_04211\n#SBATCH --output=dbgbox-job-%j.out\n#SBATCH --signal=B:TERM@120\n"), script)
        XCTAssertTrue(script.contains("job_gpus=\"${SLURM_JOB_GPUS:-}\""))
        XCTAssertEqual(JobScript.warningSeconds(TimeLimit(seconds: 60)), 15)
        XCTAssertEqual(JobScript.warningSeconds(TimeLimit(seconds: 7200)), 120)
        XCTAssertTrue(script.contains("trap 'cleanup; exit 143' TERM"))
        XCTAssertTrue(script.contains("docker wait \"$name\" >/dev/null 2>&1 &\nwait $!"))
        // Every value quoted; the job's own values as expansions.
        XCTAssertTrue(script.contains("'--label' 'dbgbox.job='\"${job_id}\" "), script)
        XCTAssertTrue(script.contains("'-p' '127.0.0.1:'\"${port}\"':22'"))
        XCTAssertTrue(script.contains("'--label' 'dbgbox.port='\"${port}\" "))
        XCTAssertTrue(script.contains("'--label' 'dbgbox.gpus='\"${gpus}\" "))
        XCTAssertTrue(script.contains("\"${gpu_args[@]}\" '--cpus' '8'"))
        XCTAssertTrue(script.contains("gpu_args=('--runtime' 'nvidia' '-e' 'NVIDIA_VISIBLE_DEVICES='\"${gpus}\")"))
        XCTAssertTrue(script.contains("'type=bind,source=/data it'\\''s,target=/data,readonly'"))
        XCTAssertTrue(script.contains("'-e' 'SLURM_JOB_ID'"))
        XCTAssertTrue(script.contains("'DBGBOX_AUTHORIZED_KEY=\(keyLine)'"))
        XCTAssertEqual(script.components(separatedBy: "{{").count, 2, "an unrendered tag (only docker's format has braces)")
        try assertBashSyntax(script)
    }

    func testPBSScript() throws {
        let script = try render(request(.pbs, container: spec(runtime: .gpus)))
        XCTAssertTrue(script.hasPrefix("#!/bin/bash\n#PBS -N alice_04211\n#PBS -j oe\n"), script)
        XCTAssertTrue(script.contains("exec >>\"$HOME/dbgbox-job-$job_id.out\" 2>&1"))
        XCTAssertTrue(script.contains("PBS_GPUFILE"))
        XCTAssertTrue(script.contains("gpu_args=('--gpus' '\"device='\"${gpus}\"'\"')"), script)
        try assertBashSyntax(script)
    }

    func testScriptRefusesControlCharacters() throws {
        var bad = spec()
        bad.authorizedKeyLine = "ssh-ed25519 AAAA\u{1}gpus\u{1}"
        XCTAssertThrowsError(try render(request(container: bad)))
        XCTAssertThrowsError(try JobScript.words(["a\u{1}HOME\u{1}b"]))
        XCTAssertEqual(try JobScript.words(["", "a b", "x\u{1}port\u{1}"]), "'' 'a b' 'x'\"${port}\"")
    }

    /// The rendered script is valid bash (`bash -n`).
    func assertBashSyntax(_ script: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let result = try LocalProcessRunner().run(["bash", "-n"], input: Data(script.utf8))
        XCTAssertEqual(result.exitCode, 0, result.stderrText, file: file, line: line)
    }

    func testReportParsing() {
        let text = """
        slurmstepd: something
        dbgbox-job-report: job=4711
        dbgbox-job-report: node=n1
        dbgbox-job-report: port=24211
        dbgbox-job-report: container=alice_04211
        dbgbox-job-report: gpus=GPU-1,GPU-2
        dbgbox-job-report: hostkey=ssh-ed25519 AAAAC3Nz= root@c
        dbgbox-job-report: ready=1
        """
        let report = JobReport.parse(text)
        XCTAssertTrue(report.isReady)
        XCTAssertEqual(report.port, 24211)
        XCTAssertEqual(report.gpus, ["GPU-1", "GPU-2"])
        XCTAssertEqual(report.hostKey, "ssh-ed25519 AAAAC3Nz= root@c")
        XCTAssertNil(report.error)
        XCTAssertEqual(JobReport.parse("dbgbox-job-report: error=docker run failed").error, "docker run failed")
        XCTAssertFalse(JobReport.parse("dbgbox-job-report: node=n1").isReady)
    }

    // MARK: client

    func testSlurmClientSubmitAndRefusal() throws {
        let runner = ContainerFakeRunner { argv in
            argv[0] == "sbatch" ? ok("4711\n") : fail("?")
        }
        let client = SlurmClient(runner: runner)
        XCTAssertEqual(try client.submit(request(), script: "#!/bin/bash\n"), "4711")
        let refusing = SlurmClient(runner: ContainerFakeRunner { _ in fail(SchedulerFixtures.text("sbatch-too-many-gpus.txt")) })
        XCTAssertThrowsError(try refusing.submit(request(gpus: 99), script: "")) {
            XCTAssertEqual("\($0)", "sbatch refused the job: Requested node configuration is not available")
        }
        let missing = SlurmClient(runner: ContainerFakeRunner { _ in throw ProcessError.notFound("sbatch") })
        XCTAssertThrowsError(try missing.submit(request(), script: "")) {
            XCTAssertTrue("\($0)".hasPrefix("sbatch not found on the login host"))
        }
    }

    func testSlurmStateFallsBack() throws {
        // squeue forgot the job; scontrol too; sacct answers.
        let runner = ContainerFakeRunner { argv in
            switch argv[0] {
            case "squeue": return fail(SchedulerFixtures.text("squeue-invalid-job.txt"))
            case "scontrol": return fail("slurm_load_jobs error: Invalid job id specified")
            case "sacct": return ok(SchedulerFixtures.text("sacct-timeout.txt"))
            default: return fail("?")
            }
        }
        XCTAssertEqual(try SlurmClient(runner: runner).state("4711").state, "TIMEOUT")
        // No accounting either: ended, no longer known.
        let none = ContainerFakeRunner { argv in argv[0] == "sacct" ? fail(SchedulerFixtures.text("sacct-disabled.txt")) : fail("Invalid job id specified") }
        XCTAssertEqual(try SlurmClient(runner: none).state("4711"), .gone)
        // squeue failing for another reason is an error, not an ended job.
        let down = ContainerFakeRunner { _ in fail("squeue: error: Unable to contact slurm controller (connect failure)") }
        XCTAssertThrowsError(try SlurmClient(runner: down).state("4711"))
    }

    func testWaitUntilReadyReportsProgressAndCancelsOnInterrupt() throws {
        var looks = 0
        let runner = ContainerFakeRunner { argv in
            switch argv[0] {
            case "squeue":
                looks += 1
                return ok(looks < 3 ? "PENDING|Resources||0:00|10:00\n" : "RUNNING|None|n1|0:01|9:59\n")
            case "head":
                return looks < 4 ? fail("No such file") : ok("dbgbox-job-report: node=n1\ndbgbox-job-report: port=24000\ndbgbox-job-report: container=c\ndbgbox-job-report: hostkey=ssh-ed25519 AAAA\ndbgbox-job-report: ready=1\n")
            default: return ok()
            }
        }
        var lines: [String] = []
        let (status, report) = try SlurmClient(runner: runner).waitUntilReady("7", sleep: { _ in }, progress: { s, w in lines.append(s.progressLine(jobID: "7", waited: w)) })
        XCTAssertEqual(status.node, "n1")
        XCTAssertEqual(report.port, 24000)
        XCTAssertEqual(lines.first, "job 7 PENDING (Resources), 0:00")

        let pending = ContainerFakeRunner { argv in argv[0] == "squeue" ? ok("PENDING|PartitionDown||0:00|10:00\n") : ok() }
        var asked = 0
        XCTAssertThrowsError(try SlurmClient(runner: pending).waitUntilReady("8", sleep: { _ in }, interrupted: {
            asked += 1
            return asked > 2 ? SIGINT : nil
        })) { XCTAssertEqual($0 as? Interrupted, Interrupted(signal: SIGINT)) }
        XCTAssertTrue(pending.calls.contains(["scancel", "8"]))
    }

    func testWaitUntilReadyEndsOnJobError() {
        let runner = ContainerFakeRunner { argv in
            switch argv[0] {
            case "squeue": return ok("RUNNING|None|n1|0:01|9:59\n")
            case "head": return ok("dbgbox-job-report: error=docker run failed on n1: no such image\n")
            default: return ok()
            }
        }
        XCTAssertThrowsError(try SlurmClient(runner: runner).waitUntilReady("9", sleep: { _ in })) {
            XCTAssertTrue("\($0)".contains("job 9 ended (RUNNING) before its container was ready: docker run failed on n1: no such image"), "\($0)")
        }
        XCTAssertTrue(runner.calls.contains(["scancel", "9"]))
    }

    func testPBSClient() throws {
        let runner = ContainerFakeRunner { argv in
            switch (argv[0], argv.last ?? "") {
            case ("qsub", _): return ok(SchedulerFixtures.text("qsub.txt"))
            case ("qstat", "1234.pbsserver"): return ok(SchedulerFixtures.text("qstat-f-running.txt"))
            case ("qstat", "1233.pbsserver") where argv.contains("-x"): return ok(SchedulerFixtures.text("qstat-xf-finished.txt"))
            case ("qstat", _): return fail(SchedulerFixtures.text("qstat-unknown.txt"), code: 153)
            default: return ok()
            }
        }
        let client = PBSClient(runner: runner)
        XCTAssertEqual(try client.submit(request(.pbs), script: ""), "1234.pbsserver")
        XCTAssertEqual(try client.state("1234.pbsserver").phase, .running)
        XCTAssertEqual(try client.state("1233.pbsserver").state, "F")
        XCTAssertEqual(try client.state("9999.pbsserver"), .gone)
        XCTAssertEqual(try client.liveJobs(among: ["1234.pbsserver", "9999.pbsserver"]), ["1234.pbsserver"])
        let refusing = PBSClient(runner: ContainerFakeRunner { _ in fail(SchedulerFixtures.text("qsub-too-many-gpus.txt"), code: 188) })
        XCTAssertThrowsError(try refusing.submit(request(.pbs, gpus: 9), script: "")) {
            XCTAssertEqual("\($0)", "qsub refused the job: Job exceeds queue resource limits MSG=cannot satisfy queue max ngpus requirement")
        }
    }

    // MARK: reaper

    func testReaperRemovesOnlyOwnContainersOfGoneJobs() throws {
        let containers = JobContainer.parseList("a_1|10|alice\na_2|11|alice\nb_1|12|bob\nodd\n")
        XCTAssertEqual(containers.count, 3)
        XCTAssertEqual(Reaper.toRemove(containers, owner: "alice", liveJobs: ["11"]), ["a_1"])

        let node = ContainerFakeRunner { argv in argv[1] == "ps" ? ok("a_1|10|alice\na_2|11|alice\nb_1|12|bob\n") : ok() }
        let slurm = SlurmClient(runner: ContainerFakeRunner { _ in ok("11\n13\n") })
        XCTAssertEqual(try Reaper.reap(node: node, scheduler: slurm, owner: "alice"), ["a_1"])
        XCTAssertTrue(node.calls.contains { $0.contains("rm") && $0.contains("a_1") }, "\(node.calls)")
        XCTAssertFalse(node.calls.contains { $0.contains("a_2") || $0.contains("b_1") })

        // The scheduler cannot say: nothing is removed.
        let quiet = ContainerFakeRunner { argv in argv[1] == "ps" ? ok("a_1|10|alice\n") : ok() }
        let down = SlurmClient(runner: ContainerFakeRunner { _ in fail("squeue: error: Unable to contact slurm controller") })
        XCTAssertThrowsError(try Reaper.reap(node: quiet, scheduler: down, owner: "alice")) {
            XCTAssertTrue("\($0)".contains("no container was removed"))
        }
        XCTAssertFalse(quiet.calls.contains { $0.contains("rm") })
    }
}
