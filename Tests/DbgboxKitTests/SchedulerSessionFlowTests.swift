import Foundation
import XCTest
@testable import DbgboxKit

/// `up --scheduler` / `up --job` as SessionManager steps over the Kit's fakes: a scripted login host
/// (sbatch, squeue, scontrol, scancel, head, rm, srun's launcher) and a scripted node (docker).
final class SchedulerSessionFlowTests: XCTestCase {
    var dir = ""
    let hostKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPdEnfBREMo2QJpuuo8u1nPTjWmhz7JkePPbU8ppai4I root@c"
    let alice = UserIdentity(name: "alice", uid: 1000, gid: 1000, home: "/home/alice")

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "dbgbox-sched-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: "\(dir)/home/.ssh", withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: dir) }

    var home: String { "\(dir)/home" }
    var pinned: String { "\(home)/.ssh/dbgbox/known_hosts" }

    func manager() -> SessionManager {
        SessionManagerTests.manager(dir: dir, inspector: SessionManagerTests.FakeInspector(alive: true))
    }

    final class Tunnels: SessionTunnelControl, @unchecked Sendable {
        var nodes: [String] = []
        var stopped: [Int32] = []
        let node: String
        init(node: String) { self.node = node }
        func localPort(preferring preferred: Int) throws -> Int { preferred }
        func start(_ launch: TunnelLaunch) throws -> LaunchedTunnel {
            nodes.append(node)
            return LaunchedTunnel(pid: 4242, startTime: 777)
        }
        func stop(pid: Int32) { stopped.append(pid) }
    }

    final class Sink: OutputSink, @unchecked Sendable {
        var text = ""
        func write(_ data: Data) { text += String(decoding: data, as: UTF8.self) }
    }

    /// The login host: a job that pends twice, then runs and reports.
    final class Login: @unchecked Sendable {
        var looks = 0
        var live: Set<String> = ["4711"]
        var reportFile = "dbgbox-job-4711.out"
        var report: String
        var onLook: (Int) -> Void = { _ in }
        lazy var runner = ContainerFakeRunner { [unowned self] argv in
            switch argv[0] {
            case "sbatch": return ok("4711\n")
            case "squeue" where argv.contains("--me"): return ok(live.joined(separator: "\n"))
            case "squeue":
                looks += 1
                onLook(looks)
                if !live.contains("4711") { return ok("CANCELLED|None|dbgbox-node|0:05|0:00\n") }
                return ok(looks < 3 ? "PENDING|Resources||0:00|1:00:00\n" : "RUNNING|None|dbgbox-node|0:01|59:59\n")
            case "scontrol": return ok("NodeName=dbgbox-node Arch=x86_64\n   NodeAddr=10.0.0.7 NodeHostName=dbgbox-node\n")
            case "head": return argv.last == reportFile && looks >= 4 ? ok(report) : fail("No such file")
            case "scancel": live.remove("4711"); return ok()
            default: return ok()
            }
        }
        init(hostKey: String) {
            report = ["node=dbgbox-node", "port=24001", "container=alice_00042", "gpus=0,1", "hostkey=\(hostKey)", "ready=1"]
                .map { "dbgbox-job-report: \($0)" }.joined(separator: "\n") + "\n"
        }
    }

    /// The node: the session's container (while its job lives) and an orphan of an ended job.
    final class Node: @unchecked Sendable {
        var containers: [String: String] = ["alice_00042": "4711", "alice_00007": "99", "bob_00001": "98"]
        lazy var runner = ContainerFakeRunner { [unowned self] argv in
            guard argv.first == "docker" else { return fail("not docker") }
            switch argv[1] {
            case "ps":
                return ok(containers.map { "\($0.key)|\($0.value)|\($0.key.hasPrefix("alice") ? "alice" : "bob")" }.sorted().joined(separator: "\n"))
            case "rm": containers[argv[3]] = nil; return ok()
            case "container":
                return containers[argv[3]] == nil ? fail("Error: No such container: \(argv[3])")
                    : ok("[{\"Id\":\"abc\",\"Name\":\"/\(argv[3])\",\"State\":{\"Status\":\"running\"},\"Config\":{\"Labels\":{}}}]")
            default: return ok()
            }
        }
    }

    func templates() -> JobTemplates {
        JobTemplates(header: "#!/bin/bash\njob_id=\"$SLURM_JOB_ID\"\n{{{body}}}", headerName: "h", body: "# body of {{jobName}}\n")
    }

    func request() throws -> JobRequest {
        let input = try XCTUnwrap(try SchedulerUpInput.parse(scheduler: "slurm", job: nil, settings: DbgboxSettings(gpus: "2"),
                                                             nodeGiven: false, gpu: "V", runtime: .nvidia, jobArguments: [],
                                                             profiles: DbgboxConfig.builtinGPUProfiles))
        return try input.jobRequest(user: alice, image: "alice/ssh:latest", authorizedKeyLine: "ssh-ed25519 AAAA k",
                                    ttl: TTL(seconds: 3600), mounts: [], profiles: DbgboxConfig.builtinGPUProfiles,
                                    now: Date(timeIntervalSince1970: 1_800_000_000), random: { _ in 42 })
    }

    func flow(_ login: Login, _ node: Node, attachTo: String? = nil) throws -> (SchedulerSessionNode, Sink) {
        let client = SlurmClient(runner: login.runner)
        let flow = SchedulerSessionNode(client: client, request: try request(), templates: templates(), attachTo: attachTo,
                                        pinnedPath: pinned, connectNode: { address in
                                            XCTAssertEqual(address, "10.0.0.7")
                                            return NodeEnvironment(runner: node.runner, remoteName: "node \(address)")
                                        })
        flow.sleep = { _ in }
        flow.teardown.sleep = { _ in }
        let sink = Sink()
        flow.waitLine = JobWaitLine(sink: sink, terminal: false)
        return (flow, sink)
    }

    func testUpRunsTheJobRecordsItAndDownCancelsIt() throws {
        let login = Login(hostKey: hostKey)
        let node = Node()
        let (flow, sink) = try flow(login, node)
        var warnings: [String] = []
        flow.warn = { warnings.append($0) }
        let tunnels = Tunnels(node: "?")
        var made: [String] = []
        let m = manager()
        let result = try m.up(.init(login: "alice@login", node: nil, identityFile: "\(home)/.ssh/id_dbgbox"), node: flow,
                              tunnels: flow.tunnels { address in made.append(address); return tunnels })
        let record = result.record
        XCTAssertEqual(record.name, "alice_00042")
        XCTAssertEqual(record.node, "10.0.0.7", "the node as the login host reaches it (NodeAddr)")
        XCTAssertEqual(record.targetPort, 24001)
        XCTAssertEqual(record.gpus, ["0", "1"])
        XCTAssertEqual(record.job, SessionJob(id: "4711", scheduler: "slurm", nodeName: "dbgbox-node", outputFile: "dbgbox-job-4711.out"))
        XCTAssertEqual(try m.store.load("alice_00042")?.job?.id, "4711")
        XCTAssertEqual(made.last, "10.0.0.7")
        XCTAssertEqual(tunnels.nodes.count, 1)
        XCTAssertNotNil(try PinnedHostKeys(path: pinned).key(for: "dbgbox-alice_00042"))
        // sbatch got the profile's count and the job name.
        let sbatch = try XCTUnwrap(login.runner.calls.first { $0.first == "sbatch" })
        XCTAssertEqual(Array(sbatch.prefix(4)), ["sbatch", "--parsable", "--job-name=alice_00042", "--gres=gpu:2"])
        // One line per state while waiting (not a terminal).
        XCTAssertEqual(sink.text, "job 4711 PENDING (Resources), 0:00\njob 4711 RUNNING, 0:00\n")
        // The reaper on the job's node: alice's container of the ended job 99 went; bob's stays.
        XCTAssertNil(node.containers["alice_00007"])
        XCTAssertNotNil(node.containers["bob_00001"])
        XCTAssertNotNil(node.containers["alice_00042"])
        XCTAssertEqual(warnings, ["removed container alice_00007 on 10.0.0.7: its job no longer exists"])

        // down: scancel, the container awaited (gone with the job: here removed after the wait), the output file.
        let teardown = SchedulerTeardown(client: SlurmClient(runner: login.runner), connectNode: { _ in
            NodeEnvironment(runner: node.runner, remoteName: "node")
        })
        var quick = teardown
        quick.goneTimeout = 0
        let report = try m.down(record, node: { SchedulerRecordOperations(teardown: quick, job: record.job!, node: record.node) },
                                tunnels: tunnels)
        XCTAssertTrue(report.stoppedTunnel)
        XCTAssertTrue(login.runner.calls.contains(["scancel", "4711"]))
        XCTAssertTrue(login.runner.calls.contains(["rm", "-f", "--", "dbgbox-job-4711.out"]))
        XCTAssertNil(node.containers["alice_00042"])
        XCTAssertNil(try m.store.load("alice_00042"))
        XCTAssertNil(try PinnedHostKeys(path: pinned).key(for: "dbgbox-alice_00042"))
    }

    func testInterruptionWhilePendingCancelsTheJobAndLeavesNothing() throws {
        let login = Login(hostKey: hostKey)
        let node = Node()
        let (flow, _) = try flow(login, node)
        let interruption = Interruption { _ in XCTFail("the job exists: up must undo, not end") }
        login.onLook = { if $0 == 2 { interruption.receive(SIGINT) } }
        flow.interruption = interruption
        var m = manager()
        m.interruption = interruption
        XCTAssertThrowsError(try m.up(.init(login: "alice@login", node: nil, identityFile: "\(home)/.ssh/id_dbgbox"), node: flow,
                                      tunnels: flow.tunnels { _ in Tunnels(node: "?") })) { error in
            XCTAssertEqual((error as? SessionManagerError)?.exitCode, 128 + SIGINT)
            // A job was submitted and cancelled: not "nothing had been made".
            XCTAssertEqual("\(error)", "up interrupted by SIGINT: undid the job 4711 (cancelled); nothing of the session is left")
        }
        XCTAssertTrue(login.runner.calls.contains(["scancel", "4711"]))
        XCTAssertTrue(login.runner.calls.contains(["rm", "-f", "--", "dbgbox-job-4711.out"]))
        XCTAssertEqual(try m.store.list().records, [])
        XCTAssertFalse(FileManager.default.fileExists(atPath: pinned))
    }

    func testJobErrorIsOneLineAndUndone() throws {
        let login = Login(hostKey: hostKey)
        login.report = "dbgbox-job-report: error=docker run failed on dbgbox-node: Unable to find image\n"
        let (flow, _) = try flow(login, Node())
        XCTAssertThrowsError(try manager().up(.init(login: "alice@login", node: nil, identityFile: "k"), node: flow,
                                              tunnels: flow.tunnels { _ in Tunnels(node: "?") })) { error in
            XCTAssertEqual("\(error)", "job 4711 ended (RUNNING) before its container was ready: docker run failed on dbgbox-node: Unable to find image: see the job's output file dbgbox-job-4711.out in your home directory on the cluster")
        }
        XCTAssertTrue(login.runner.calls.contains(["scancel", "4711"]))
        XCTAssertTrue(login.runner.calls.contains(["rm", "-f", "--", "dbgbox-job-4711.out"]))
    }

    func testAttachRunsAStepAndDownLeavesTheJob() throws {
        let login = Login(hostKey: hostKey)
        login.looks = 3
        login.reportFile = "dbgbox-job-4711-alice_00042.out"
        let node = Node()
        let launched = ContainerFakeRunner { argv in
            if argv.first == "bash" { return ok("31337\n") }
            return try login.runner.run(argv, input: nil)
        }
        let (flow, _) = try flow(login, node, attachTo: "4711")
        let attached = SchedulerSessionNode(client: SlurmClient(runner: launched), request: flow.request, templates: flow.templates,
                                            attachTo: "4711", pinnedPath: pinned, connectNode: flow.connectNode)
        attached.sleep = { _ in }
        let m = manager()
        let record = try m.up(.init(login: "alice@login", node: nil, identityFile: "\(home)/.ssh/id_dbgbox"), node: attached,
                              tunnels: attached.tunnels { _ in Tunnels(node: "?") }).record
        XCTAssertEqual(record.job?.attached, true)
        XCTAssertEqual(record.job?.outputFile, "dbgbox-job-4711-alice_00042.out")
        // The TTL (1 h) is capped by the job's time left (squeue %L 59:59).
        let expires = try XCTUnwrap(record.expires)
        XCTAssertEqual(expires.timeIntervalSinceNow, 3599, accuracy: 30)
        let step = try XCTUnwrap(launched.calls.first { $0.first == "bash" })
        XCTAssertEqual(Array(step.prefix(9)), ["bash", "-c", SlurmAttach.launcher, "dbgbox-attach", "dbgbox-job-4711-alice_00042.out",
                                                "srun", "--jobid=4711", "--overlap", "--nodes=1"])
        XCTAssertFalse(launched.calls.contains { $0.first == "sbatch" })

        var teardown = SchedulerTeardown(client: SlurmClient(runner: launched), connectNode: { _ in NodeEnvironment(runner: node.runner, remoteName: "n") })
        teardown.sleep = { _ in }
        _ = try m.down(record, node: { SchedulerRecordOperations(teardown: teardown, job: record.job!, node: record.node) },
                       tunnels: Tunnels(node: "?"))
        XCTAssertFalse(launched.calls.contains { $0.first == "scancel" }, "the user's job is never cancelled")
        XCTAssertNil(node.containers["alice_00042"])
        XCTAssertTrue(launched.calls.contains(["rm", "-f", "--", "dbgbox-job-4711-alice_00042.out"]))
    }

    func testAttachCapsTheTTLByTheJobsTimeLeft() throws {
        let request = try request()
        let now = Date(timeIntervalSince1970: 1_900_000_000)
        func capped(_ left: String?, ttl: Int = 3600) -> (Int, Date?) {
            var r = request
            r.container.ttl = TTL(seconds: ttl)
            let c = SchedulerSessionNode.capped(r, timeLeft: left, now: now).container
            return (c.ttl.seconds, c.expires)
        }
        XCTAssertEqual(capped("59:12").0, 59 * 60 + 12)
        XCTAssertEqual(capped("59:12").1, now.addingTimeInterval(59 * 60 + 12))
        XCTAssertEqual(capped("1:00:00", ttl: 0).0, 3600, "no limit becomes the job's")
        XCTAssertEqual(capped("1-02:00:00").0, 3600, "a longer job keeps the TTL")
        XCTAssertEqual(capped("UNLIMITED").0, 3600)
        XCTAssertEqual(capped(nil).0, 3600)
    }

    func testInterruptionBeforeTheSubmitMakesNoJob() throws {
        let login = Login(hostKey: hostKey)
        let (flow, _) = try flow(login, Node())
        let interruption = Interruption { _ in }
        interruption.beginUndoableSteps()
        interruption.receive(SIGTERM)
        flow.interruption = interruption
        XCTAssertThrowsError(try flow.createContainer(image: "i")) { XCTAssertEqual($0 as? Interrupted, Interrupted(signal: SIGTERM)) }
        XCTAssertFalse(login.runner.calls.contains { $0.first == "sbatch" })
    }

    func testAttachRefusesAJobThatDoesNotRun() throws {
        let login = Login(hostKey: hostKey)
        let (flow, _) = try flow(login, Node(), attachTo: "4711")
        XCTAssertThrowsError(try flow.createContainer(image: "i")) {
            XCTAssertEqual("\($0)", "job 4711 is PENDING, not running: dbgbox up --job needs a running job you hold (see squeue --me)")
        }
    }

    func testInputFromCommandLineAndConfig() throws {
        let profiles = DbgboxConfig.builtinGPUProfiles
        func parse(_ scheduler: String?, job: String? = nil, _ settings: DbgboxSettings = DbgboxSettings(), node: Bool = false,
                   gpu: String? = nil) throws -> SchedulerUpInput? {
            try SchedulerUpInput.parse(scheduler: scheduler, job: job, settings: settings, nodeGiven: node, gpu: gpu,
                                       runtime: .gpus, jobArguments: ["--account=p1"], profiles: profiles)
        }
        XCTAssertNil(try parse(nil))
        XCTAssertNil(try parse(nil, DbgboxSettings(scheduler: "slurm"), node: true), "a plain up --node keeps config's scheduler out")
        XCTAssertEqual(try parse(nil, DbgboxSettings(scheduler: "pbs"))?.kind, .pbs)
        XCTAssertEqual(try parse(nil, job: "12")?.kind, .slurm)
        XCTAssertEqual(try parse("slurm")?.gpus, 1)
        let full = try XCTUnwrap(try parse("slurm", DbgboxSettings(partition: "v100", time: "2h", gpus: "3", jobArgs: ["--gres=gpu:v100:1"]), gpu: "V"))
        XCTAssertEqual(full.letter, "V")
        XCTAssertEqual(full.time, TimeLimit(seconds: 7200))
        let r = full.jobRequest(container: ContainerSpec(name: "alice_1", image: "i", user: alice, port: 1, authorizedKeyLine: "",
                                                         ttl: TTL(seconds: 0), expires: nil, gpu: .none, mounts: []))
        XCTAssertEqual(r.submitArguments, ["sbatch", "--parsable", "--job-name=alice_1", "--gres=gpu:v100:3", "--time=02:00:00",
                                           "--partition=v100", "--account=p1"])
        let cases: [(() throws -> Any?, String)] = [
            ({ try parse("slurm", node: true) }, "--node cannot go with --scheduler or --job: the node is the one the job gets; leave --node out"),
            ({ try parse("slurm", DbgboxSettings(gpus: "0")) }, "--gpus 0: a scheduler session needs at least one GPU: use --gpus 1 or more"),
            ({ try parse("slurm", DbgboxSettings(gpus: "two")) }, "--gpus \"two\" is not a number: give how many GPUs the job asks for, e.g. --gpus 1"),
            ({ try parse("slurm", DbgboxSettings(time: "5x")) }, "--time \"5x\" is not a time limit: use MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS, or 90m, 2h, 1d"),
            ({ try parse("slurm", gpu: "0,1") }, "--gpu \"0,1\": with a scheduler the job's GPUs are the devices: ask for a count with --gpus N, and give --gpu a profile letter or none"),
            ({ try parse("pbs", job: "12") }, "--job attaches to Slurm jobs only (srun --overlap): use --scheduler slurm, or start a new PBS job with --scheduler pbs"),
            ({ try parse(nil, job: "12; rm") }, "--job \"12; rm\" is not a job id: give the number squeue --me shows"),
            ({ try parse("lsf") }, "--scheduler \"lsf\" is not known: use slurm or pbs"),
        ]
        for (call, message) in cases {
            XCTAssertThrowsError(try call()) { XCTAssertEqual(OneLine.message("\($0)"), message) }
        }
    }

    func testTimeCapsTheTTL() throws {
        let input = try XCTUnwrap(try SchedulerUpInput.parse(scheduler: "slurm", job: nil, settings: DbgboxSettings(time: "30m"),
                                                             nodeGiven: false, gpu: nil, runtime: .gpus, jobArguments: [],
                                                             profiles: [:]))
        let r = try input.jobRequest(user: alice, image: "i", authorizedKeyLine: "k", ttl: TTL(seconds: 12 * 3600), mounts: [],
                                     profiles: [:], now: Date(timeIntervalSince1970: 0), random: { _ in 1 })
        XCTAssertEqual(r.container.ttl.seconds, 1800)
        XCTAssertEqual(r.container.expires, Date(timeIntervalSince1970: 1800))
        XCTAssertEqual(r.container.name, "alice_00001")
    }

    func testWaitLine() {
        let plain = Sink()
        let line = JobWaitLine(sink: plain, terminal: false, every: 10)
        let pending = JobStatus(phase: .pending, state: "PENDING", reason: "Resources")
        for waited in 0...25 { line.update(pending, jobID: "7", waited: waited) }
        line.finish()
        XCTAssertEqual(plain.text, "job 7 PENDING (Resources), 0:00\njob 7 PENDING (Resources), 0:10\njob 7 PENDING (Resources), 0:20\n")
        let tty = Sink()
        let live = JobWaitLine(sink: tty, terminal: true)
        live.update(pending, jobID: "7", waited: 0)
        live.update(pending, jobID: "7", waited: 1)
        live.finish()
        XCTAssertEqual(tty.text, "\r\u{1B}[Kjob 7 PENDING (Resources), 0:00\r\u{1B}[Kjob 7 PENDING (Resources), 0:01\n")
    }

    func testStatusShowsTheJobAndReapsAfterItEnded() throws {
        let login = Login(hostKey: hostKey)
        login.live = []
        let node = Node()
        let record = SessionRecord(name: "alice_00042", container: "alice_00042", login: "l", node: "10.0.0.7", targetPort: 24001,
                                   localPort: 24001, created: Date(), image: "i", user: "alice", identityFile: "k", logFile: "/l",
                                   job: SessionJob(id: "4711", scheduler: "slurm", nodeName: "dbgbox-node", outputFile: "o"))
        let plain = SessionRecord(name: "alice_1", container: "alice_1", targetPort: 1, localPort: 1, created: Date(), image: "i",
                                  user: "alice", identityFile: "k", logFile: "/l")
        let status = SchedulerSessionStatus(client: { _ in SlurmClient(runner: login.runner) },
                                            connectNode: { _ in NodeEnvironment(runner: node.runner, remoteName: "n") })
        let looks = status.look([record, plain], owner: { $0.user })
        XCTAssertNil(looks["alice_1"])
        let look = try XCTUnwrap(looks["alice_00042"])
        XCTAssertEqual(look.status?.phase, .ended)
        XCTAssertEqual(look.reaped, ["alice_00007", "alice_00042"])
        var row = SessionStatusRow(record: record, tunnel: .gone, container: .unknown(why: "x"), now: Date(), fastPath: "off")
        row.setJob(record.job!, look: look)
        XCTAssertEqual(row.job_state, "ended")
        XCTAssertEqual(row.job_scheduler_state, "CANCELLED")
        let table = SessionStatusRow.table([row])
        XCTAssertTrue(table[0].hasSuffix("\tJOB"), table[0])
        XCTAssertTrue(table[1].hasSuffix("\t4711 ended (CANCELLED)"), table[1])
        XCTAssertTrue(table.contains("session alice_00042: job 4711 ended (CANCELLED): run `dbgbox down alice_00042` to remove the rest"), "\(table)")
        // Without jobs the table is as it was.
        let plainRow = SessionStatusRow(record: plain, tunnel: .gone, container: .unknown(why: "x"), now: Date(), fastPath: "off")
        XCTAssertEqual(SessionStatusRow.table([plainRow])[0], "NAME\tCONTAINER\tNODE\tPORTS\tTUNNEL\tSTATE\tTTL LEFT")
    }

    func testSettingsKeys() throws {
        let config = try DbgboxConfig.parse("""
            defaults: {login: alice@login, scheduler: slurm, time: 2h, gpus: 2}
            profiles:
              v100: {partition: v100, job_args: ["--gres=gpu:v100:1", "--account=p1"]}
            """, path: "/c.yaml")
        let s = try config.settings(profile: "v100")
        XCTAssertEqual(s.scheduler, "slurm")
        XCTAssertEqual(s.time, "2h")
        XCTAssertEqual(s.gpus, "2")
        XCTAssertEqual(s.partition, "v100")
        XCTAssertEqual(s.jobArgs, ["--gres=gpu:v100:1", "--account=p1"])
        XCTAssertThrowsError(try DbgboxConfig.parse("defaults: {scheduler: lsf}\n", path: "/c.yaml")) {
            XCTAssertTrue("\($0)".contains("defaults.scheduler must be slurm or pbs"), "\($0)")
        }
        XCTAssertThrowsError(try DbgboxConfig.parse("defaults: {gpus: 0}\n", path: "/c.yaml"))
    }
}
