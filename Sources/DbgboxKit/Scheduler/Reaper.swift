import Foundation

/// A dbgbox container on a node that a scheduler job made (it carries the job's id).
public struct JobContainer: Sendable, Equatable {
    public var name: String
    public var jobID: String
    public var owner: String

    public init(name: String, jobID: String, owner: String) {
        self.name = name
        self.jobID = jobID
        self.owner = owner
    }

    /// `docker ps -a` with the job and owner labels, one container a line.
    public static let listArguments = [
        "ps", "-a", "--filter", "label=\(JobScript.labelJob)",
        "--format", "{{.Names}}|{{.Label \"\(JobScript.labelJob)\"}}|{{.Label \"\(ContainerSpec.labelOwner)\"}}",
    ]

    /// Parses the lines of `listArguments`' output.
    public static func parseList(_ text: String) -> [JobContainer] {
        text.split(whereSeparator: \.isNewline).compactMap { line in
            let fields = line.split(separator: "|", omittingEmptySubsequences: false).map(String.init)
            guard fields.count == 3, !fields[0].isEmpty, !fields[1].isEmpty else { return nil }
            return JobContainer(name: fields[0], jobID: fields[1], owner: fields[2])
        }
    }
}

/// Removes the containers of jobs killed too hard for their script's trap (SIGKILL, OOM, a node
/// reboot of the job's shell): a job container whose job no longer exists is removed.
public enum Reaper {
    /// Of `containers`, the user's own whose job is not in `liveJobs`, by name.
    public static func toRemove(_ containers: [JobContainer], owner: String, liveJobs: Set<String>) -> [String] {
        containers.filter { $0.owner == owner && !liveJobs.contains($0.jobID) }.map(\.name)
    }

    /// Lists the user's job containers on the node (`docker` run by `node`), asks the scheduler
    /// which of their jobs still exist, removes the others; returns their names. When the
    /// scheduler cannot say, nothing is removed and its error is thrown.
    @discardableResult
    public static func reap(node: ProcessRunner, scheduler: SchedulerClient, owner: String) throws -> [String] {
        let docker = DockerClient(runner: node)
        let listed = try docker.run(JobContainer.listArguments)
        guard listed.succeeded else {
            throw DbgboxError("docker ps failed on the node: \(condense(listed.stderrText, limit: 200))")
        }
        let containers = JobContainer.parseList(listed.stdoutText).filter { $0.owner == owner }
        guard !containers.isEmpty else { return [] }
        let live = try scheduler.liveJobs(among: Set(containers.map(\.jobID)))
        let names = toRemove(containers, owner: owner, liveJobs: live)
        for name in names { try docker.forceRemove(name) }
        return names
    }
}
