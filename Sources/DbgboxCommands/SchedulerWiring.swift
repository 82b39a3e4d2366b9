import ArgumentParser
import DbgboxKit
import Foundation
#if canImport(Glibc)
import Glibc
#endif

// Issue 14 (scheduler sessions): the command-side wiring of the Kit's SchedulerSessionNode,
// SchedulerTeardown and SchedulerSessionStatus. Connections are made from RemoteOptions here; all
// the flow is in Sources/DbgboxKit/Session/SchedulerSessionFlow.swift.

extension RemoteOptions {
    /// The login host alone (`--login`, its ssh options): where the scheduler's commands run.
    func loginRunner() throws -> LoginProcessRunner {
        guard let login else { throw DbgboxError("a scheduler session needs --login (or login: in config.yaml)") }
        let spec = try HostSpec(parsing: login)
        let request = TunnelRequest(login: spec, node: spec, targetPort: 22, identityFiles: identity, nodeVia: .direct,
                                    acceptNew: acceptNew, knownHostsFile: knownHosts, sshConfigFile: sshConfig)
        let (plan, prompter, _) = try TunnelCommand.makePlan(request)
        let checker = HostKeyChecker(prompter: prompter, knownHostsOverride: knownHosts, acceptNew: acceptNew)
        return try LoginProcessRunner(plan: plan, checker: checker)
    }

    /// docker on `node` through the chain from this login host.
    func nodeEnvironment(_ node: String) throws -> NodeEnvironment {
        var options = self
        options.node = node
        return try options.environment().1
    }
}

enum SchedulerWiring {
    /// `down`'s node side for a record with a job: the job cancelled, its container gone, its output removed.
    static func downOperations(_ record: SessionRecord, job: SessionJob, options: RemoteOptions) throws -> SessionNodeOperations {
        guard let kind = job.kind else { throw DbgboxError("session \(record.name) names an unknown scheduler \(job.scheduler)") }
        let client = schedulerClient(kind, runner: try options.loginRunner())
        let teardown = SchedulerTeardown(client: client, connectNode: { try options.nodeEnvironment($0) })
        return SchedulerRecordOperations(teardown: teardown, job: job, node: record.node)
    }

    /// `status`: each job's state (one login connection per login host and flags), and the reaper
    /// on the nodes of ended jobs.
    static func looks(_ records: [SessionRecord], manager: SessionManager) -> [String: SchedulerSessionStatus.Look] {
        guard records.contains(where: { $0.job != nil }) else { return [:] }
        var runners: [String: LoginProcessRunner] = [:]
        defer { runners.values.forEach { $0.close() } }
        func options(_ record: SessionRecord) throws -> RemoteOptions {
            var flags: [String] = []
            let path = manager.optionsPath(record.name)
            if manager.fs.exists(path), let stored = try? JSONDecoder().decode(SessionOptions.self, from: try manager.fs.read(path, as: .sessionRecord)) {
                flags = stored.flags
            }
            return try RemoteOptions.parse(["--login", record.login ?? "", "--node", record.node ?? ""] + flags)
        }
        let status = SchedulerSessionStatus(client: { record in
            guard let kind = record.job?.kind else { throw DbgboxError("unknown scheduler") }
            let o = try options(record)
            let key = ([o.login ?? ""] + SessionWiring.remoteFlags(o)).joined(separator: "\u{0}")
            if let runner = runners[key] { return schedulerClient(kind, runner: runner) }
            let runner = try o.loginRunner()
            runners[key] = runner
            return schedulerClient(kind, runner: runner)
        }, connectNode: { record in try options(record).environment().1 })
        return status.look(records, owner: { $0.user })
    }

    /// The key to authorize and the private half for the Host block.
    static func key(_ given: String?, home: String) throws -> (key: (key: SSHPublicKey, line: String), identityFile: String) {
        let path = given.map(ContainerWiring.absolute) ?? AuthorizedKey.defaultPath(home: home)
        return (try AuthorizedKey.load(path: path, fs: LocalFileSystem()), path.hasSuffix(".pub") ? String(path.dropLast(4)) : path)
    }

    /// `up`'s step lines on stderr, with the seconds since `started`.
    static func stepLine(_ started: Date) -> (String) -> Void {
        { step in
            FileHandle.standardError.write(Data("dbgbox: up: \(step) (\(String(format: "%.1f", Date().timeIntervalSince(started))) s)\n".utf8))
        }
    }

    /// The live line of a waiting job, on stderr.
    static func waitLine() -> JobWaitLine {
        JobWaitLine(sink: StandardStreamSink(.stderr), terminal: isatty(STDERR_FILENO) != 0)
    }
}
