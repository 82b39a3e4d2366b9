import Foundation
import XCTest
@testable import DbgboxKit

/// The Kit's scheduler code against the sandbox's real Slurm (scripts/testbed.sh: slurmctld on
/// login, slurmd for dbgbox-node in the root namespace where dockerd runs, 4 fake GPUs): the job
/// script rendered from templates/ is submitted with `sbatch --parsable` on stdin, as the test user
/// on the login host (in its namespace, from the home directory, as an ssh exec there runs), runs its
/// container on the node with the job's GPUs, and removes it when the job ends. Under CI=true a
/// missing Slurm fails; elsewhere it skips.
final class SlurmSandboxTests: XCTestCase {
    /// The class's image, built once (docker image names are lowercase; a test user's name may not be).
    private static let imageLock = NSLock()
    nonisolated(unsafe) private static var built: String?
    static func image() throws -> String {
        try imageLock.withLock {
            if let built { return built }
            let name = "\(IT.testUser.lowercased())/slurm:\(UUID().uuidString.prefix(8).lowercased())"
            let r = try IT.imageCreate(name: name, append: "", home: IT.user.home)
            guard r.succeeded else { throw DbgboxError("image create: \(r.stderrText.suffix(2000))") }
            built = name
            return name
        }
    }

    override class func tearDown() {
        if let built { _ = try? IT.runner.run(["docker", "image", "rm", "-f", built]) }
        Testbed.downIfStartedHere()
        super.tearDown()
    }

    /// Runs the scheduler's commands as the test user on the login host, in the home directory.
    struct LoginRunner: ProcessRunner {
        let bed: Testbed
        func run(_ argv: [String], input: Data?) throws -> ProcessResult {
            try IT.runner.run(bed.prefix(ns: bed.loginNS, asUser: true) + ["sh", "-c", "cd && exec \"$@\"", "sh"] + argv, input: input)
        }
        func stream(_ argv: [String], input: Data?, to sink: OutputSink) throws -> ProcessResult { try run(argv, input: input) }
    }

    /// Runs docker as the test user on the node (the root namespace).
    struct NodeRunner: ProcessRunner {
        func run(_ argv: [String], input: Data?) throws -> ProcessResult { try IT.asUser(argv, input: input) }
        func stream(_ argv: [String], input: Data?, to sink: OutputSink) throws -> ProcessResult { try run(argv, input: input) }
    }

    var bed: Testbed!
    var client: SlurmClient!
    var submitted: [String] = []

    override func setUpWithError() throws {
        try IT.requireDocker()
        bed = try Testbed.up()
        try IT.require(LocalProcessRunner.resolve("sbatch", path: "/usr/bin:/usr/sbin") != nil, "Slurm's commands (scripts/bootstrap.sh installs slurm-client)")
        try IT.require(Testbed.run(["status"]).stdoutText.contains("up    slurm"), "the testbed's Slurm (scripts/testbed.sh up starts it)")
        client = SlurmClient(runner: LoginRunner(bed: bed))
    }

    override func tearDownWithError() throws {
        for id in submitted {
            try? client?.cancel(id)
            try? client?.removeOutput(id)
        }
    }

    static var hasNvidiaRuntime: Bool {
        ((try? IT.runner.run(["docker", "info", "--format", "{{json .Runtimes}}"]))?.stdoutText ?? "").contains("\"nvidia\"")
    }

    func request(gpus: Int, time: TimeLimit? = nil, partition: String? = nil) throws -> JobRequest {
        let user = IT.user
        let keyLine = try String(contentsOfFile: bed.key + ".pub", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        let name = "\(user.name)_slurm\(UUID().uuidString.prefix(6).lowercased())"
        let spec = ContainerSpec(name: name, image: try Self.image(), user: user, port: 1,
                                 authorizedKeyLine: keyLine, ttl: TTL(seconds: 3600), expires: nil,
                                 gpu: GPUSelection(deviceIDs: [], profile: nil, letter: nil, runtime: .nvidia), mounts: [])
        var r = JobRequest(kind: .slurm, gpus: gpus, time: time, partition: partition, container: spec)
        r.mapsDevices = Self.hasNvidiaRuntime
        return r
    }

    func submit(_ r: JobRequest) throws -> String {
        let script = try JobScript.render(r, templates: JobTemplates.load(directory: Templates.directory(), kind: .slurm))
        let id = try client.submit(r, script: script)
        submitted.append(id)
        return id
    }

    func container(_ name: String) throws -> [String: String]? {
        let r = try IT.runner.run(["docker", "inspect", "--format", "{{range .Config.Env}}{{println .}}{{end}}", name])
        guard r.succeeded else { return nil }
        var env: [String: String] = [:]
        for line in r.stdoutText.split(separator: "\n") {
            guard let eq = line.firstIndex(of: "=") else { continue }
            env[String(line[..<eq])] = String(line[line.index(after: eq)...])
        }
        return env
    }

    func waitGone(_ name: String, seconds: Double) throws -> Double {
        let start = Date()
        while Date().timeIntervalSince(start) < seconds {
            if try container(name) == nil { return Date().timeIntervalSince(start) }
            Thread.sleep(forTimeInterval: 0.5)
        }
        return -1
    }

    func startAndWait(_ r: JobRequest) throws -> (String, JobReport) {
        let id = try submit(r)
        let start = Date()
        var lines: [String] = []
        let (status, report) = try client.waitUntilReady(id, interval: 0.5, reportTimeout: 90,
                                                          progress: { s, w in lines.append(s.progressLine(jobID: id, waited: w)) })
        print("job \(id) ready in \(String(format: "%.1f", Date().timeIntervalSince(start))) s on \(status.node ?? "?"): \(lines.first ?? "")")
        XCTAssertEqual(status.phase, .running)
        return (id, report)
    }

    /// The job runs, its container is on the node with the job's GPUs (scontrol's IDX), published on
    /// 127.0.0.1 only, labelled with the job; the container's env has the job's variables; scancel
    /// removes it within 60 s; the output file is the only trace and goes with removeOutput.
    func testJobRunsContainerWithItsGPUsAndScancelRemovesIt() throws {
        let r = try request(gpus: 2)
        let (id, report) = try startAndWait(r)
        let name = try XCTUnwrap(report.container)
        XCTAssertEqual(name, r.container.name)
        XCTAssertEqual(report.node, "dbgbox-node")
        XCTAssertNotNil(report.hostKey.flatMap { try? SSHPublicKey(line: $0) }, "host key line: \(report.hostKey ?? "nil")")
        let indices = try client.gpuIndices(id)["dbgbox-node"]
        XCTAssertEqual(indices?.count, 2)
        let expected = (indices ?? []).map(String.init).joined(separator: ",")
        XCTAssertEqual(report.gpus.joined(separator: ","), expected)
        let env = try XCTUnwrap(try container(name))
        XCTAssertEqual(env["SLURM_JOB_ID"], id)
        XCTAssertEqual(env["SLURM_JOB_GPUS"], expected)
        if Self.hasNvidiaRuntime {
            XCTAssertEqual(env["NVIDIA_VISIBLE_DEVICES"], expected)
        }
        let labels = try IT.runner.run(["docker", "inspect", "--format", "{{index .Config.Labels \"dbgbox.job\"}}|{{json .HostConfig.PortBindings}}", name]).stdoutText
        XCTAssertTrue(labels.hasPrefix("\(id)|"), labels)
        XCTAssertTrue(labels.contains("\"HostIp\":\"127.0.0.1\",\"HostPort\":\"\(report.port ?? 0)\""), labels)
        XCTAssertEqual(try client.nodeAddress("dbgbox-node"), bed.nodeAddr)

        let cancelled = Date()
        try client.cancel(id)
        let gone = try waitGone(name, seconds: 60)
        XCTAssertGreaterThanOrEqual(gone, 0, "container \(name) still there 60 s after scancel")
        print("scancel to container gone: \(String(format: "%.1f", Date().timeIntervalSince(cancelled))) s")
        XCTAssertEqual(try client.state(id).phase, .ended)
        XCTAssertNotNil(try client.readReport(id))
        try client.removeOutput(id)
        XCTAssertNil(try client.readReport(id))
    }

    /// The container gets NVIDIA_VISIBLE_DEVICES = the job's GPUs through `--runtime nvidia` (the
    /// sandbox registers runc under that name; see scripts/bootstrap.sh).
    func testNvidiaRuntimeGetsTheJobsGPUs() throws {
        try IT.require(Self.hasNvidiaRuntime, "docker runtime `nvidia` (scripts/bootstrap.sh writes /etc/docker/daemon.json; restart dockerd to load it)")
        let (id, report) = try startAndWait(try request(gpus: 1))
        let indices = try client.gpuIndices(id)["dbgbox-node"] ?? []
        let env = try XCTUnwrap(try container(try XCTUnwrap(report.container)))
        XCTAssertEqual(env["NVIDIA_VISIBLE_DEVICES"], indices.map(String.init).joined(separator: ","))
        try client.cancel(id)
        XCTAssertGreaterThanOrEqual(try waitGone(report.container!, seconds: 60), 0)
    }

    /// A 1-minute job: the container is gone before or with the job (TERM 120 s before the limit
    /// means at once here; KillWait gives the trap its time).
    func testTimeLimitRemovesContainer() throws {
        let (id, report) = try startAndWait(try request(gpus: 1, time: TimeLimit(seconds: 60)))
        let name = try XCTUnwrap(report.container)
        let gone = try waitGone(name, seconds: 150)
        XCTAssertGreaterThanOrEqual(gone, 0, "container \(name) outlived its 1-minute job")
        let deadline = Date().addingTimeInterval(60)
        while try client.state(id).phase != .ended && Date() < deadline { Thread.sleep(forTimeInterval: 1) }
        let state = try client.state(id)
        XCTAssertEqual(state.phase, .ended, "\(state)")
    }

    /// KILL bypasses the trap: the container stays, and the reaper removes it once the job is gone.
    func testReaperRemovesContainerOfKilledJob() throws {
        let (id, report) = try startAndWait(try request(gpus: 1))
        let name = try XCTUnwrap(report.container)
        let kill = try LoginRunner(bed: bed).run(["scancel", "--signal=KILL", "--full", id], input: nil)
        XCTAssertTrue(kill.succeeded, kill.stderrText)
        let deadline = Date().addingTimeInterval(60)
        while try client.state(id).phase != .ended && Date() < deadline { Thread.sleep(forTimeInterval: 1) }
        XCTAssertNotNil(try container(name), "the trap was expected not to run on KILL")
        let removed = try Reaper.reap(node: NodeRunner(), scheduler: client, owner: IT.user.name)
        XCTAssertEqual(removed, [name])
        XCTAssertGreaterThanOrEqual(try waitGone(name, seconds: 10), 0)
    }

    /// A job in the partition that never starts pends with its reason; an interruption cancels it.
    func testPendingJobIsCancelledOnInterrupt() throws {
        let id = try submit(try request(gpus: 1, partition: "pending"))
        var lines: [String] = []
        var asked = 0
        XCTAssertThrowsError(try client.waitUntilReady(id, interval: 0.5, interrupted: {
            asked += 1
            return asked > 3 ? SIGINT : nil
        }, progress: { s, w in lines.append(s.progressLine(jobID: id, waited: w)) })) { XCTAssertTrue($0 is Interrupted) }
        XCTAssertEqual(lines.first?.hasPrefix("job \(id) PENDING (PartitionDown), 0:0"), true, "\(lines)")
        XCTAssertEqual(try client.state(id).phase, .ended)
    }

    /// The scheduler's refusals come back as one line.
    func testRefusalsAreOneLine() throws {
        XCTAssertThrowsError(try submit(try request(gpus: 99))) {
            XCTAssertEqual("\($0)", "sbatch refused the job: Requested node configuration is not available")
        }
        XCTAssertThrowsError(try submit(try request(gpus: 1, partition: "nope"))) {
            XCTAssertEqual("\($0)", "sbatch refused the job: invalid partition specified: nope; Invalid partition name specified")
        }
    }
}
