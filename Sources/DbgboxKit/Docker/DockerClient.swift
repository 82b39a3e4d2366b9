import Foundation

/// What dbgbox needs to know about one container, from `docker inspect`.
public struct DockerContainer: Sendable, Equatable {
    public var id: String
    /// Without docker's leading slash.
    public var name: String
    public var labels: [String: String]
    /// "created", "running", "exited", …
    public var status: String
    public var exitCode: Int
    /// Host ports from HostConfig.PortBindings (what it will publish, whether or not it runs).
    public var boundHostPorts: [UInt16]

    public init(id: String, name: String, labels: [String: String] = [:], status: String = "running",
                exitCode: Int = 0, boundHostPorts: [UInt16] = []) {
        self.id = id
        self.name = name
        self.labels = labels
        self.status = status
        self.exitCode = exitCode
        self.boundHostPorts = boundHostPorts
    }
}

/// A small docker CLI client over `ProcessRunner`: argv only, and docker's failures mapped to
/// one-line errors.
public struct DockerClient: Sendable {
    public let runner: ProcessRunner
    public var executable: String

    public init(runner: ProcessRunner, executable: String = "docker") {
        self.runner = runner
        self.executable = executable
    }

    /// Runs `docker ARGS`; engine-level failures (no docker, no daemon, no permission) throw,
    /// a command's own failure is returned for the caller to interpret.
    public func run(_ args: [String], input: Data? = nil) throws -> ProcessResult {
        let result: ProcessResult
        do {
            result = try runner.run([executable] + args, input: input)
        } catch ProcessError.notFound {
            throw DockerError.notInstalled
        }
        if !result.succeeded, let engine = DockerError.engineProblem(result.stderrText) { throw engine }
        return result
    }

    /// Like `run`, but a non-zero exit throws `DockerError.failed`.
    @discardableResult
    public func checked(_ args: [String]) throws -> ProcessResult {
        let result = try run(args)
        guard result.succeeded else {
            throw DockerError.failed(command: "docker " + args.prefix(2).joined(separator: " "), why: condense(result.stderrText))
        }
        return result
    }

    /// The image's labels, or nil when there is no such image.
    public func imageLabels(_ image: String) throws -> [String: String]? {
        let result = try run(["image", "inspect", "--format", "{{json .Config.Labels}}", image])
        guard result.succeeded else {
            if result.stderrText.lowercased().contains("no such image") { return nil }
            throw DockerError.failed(command: "docker image inspect", why: condense(result.stderrText))
        }
        let data = Data(result.stdoutText.trimmingCharacters(in: .whitespacesAndNewlines).utf8)
        let object = try? JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed])
        return (object as? [String: String]) ?? [:]
    }

    /// Ids of containers in any state (created, running, exited) matching the `--filter`s.
    public func containerIDs(filters: [String] = []) throws -> [String] {
        let result = try checked(["ps", "-aq", "--no-trunc"] + filters.flatMap { ["--filter", $0] })
        return result.stdoutText.split(whereSeparator: \.isNewline).map(String.init)
    }

    /// Inspects containers by id or name; ones that vanished meanwhile are left out.
    public func inspect(_ idsOrNames: [String]) throws -> [DockerContainer] {
        guard !idsOrNames.isEmpty else { return [] }
        let result = try run(["container", "inspect"] + idsOrNames)
        // With several names, inspect prints what it found and fails for the rest: use what it found.
        let data = result.stdout
        guard let array = (try? JSONSerialization.jsonObject(with: data)) as? [[String: Any]] else {
            if result.succeeded || !result.stdoutText.trimmingCharacters(in: .whitespacesAndNewlines).hasPrefix("[") {
                if result.stderrText.lowercased().contains("no such") || result.succeeded { return [] }
                throw DockerError.failed(command: "docker container inspect", why: condense(result.stderrText))
            }
            return []
        }
        return array.map(Self.container(from:))
    }

    /// One container by name or id, or nil when there is none.
    public func container(named name: String) throws -> DockerContainer? {
        try inspect([name]).first { $0.name == name || $0.id.hasPrefix(name) }
    }

    static func container(from json: [String: Any]) -> DockerContainer {
        let config = json["Config"] as? [String: Any]
        let state = json["State"] as? [String: Any]
        let hostConfig = json["HostConfig"] as? [String: Any]
        var ports: [UInt16] = []
        if let bindings = hostConfig?["PortBindings"] as? [String: Any] {
            for case let list as [[String: Any]] in bindings.values {
                for binding in list {
                    if let text = binding["HostPort"] as? String, let port = UInt16(text) { ports.append(port) }
                }
            }
        }
        var name = json["Name"] as? String ?? ""
        if name.hasPrefix("/") { name.removeFirst() }
        return DockerContainer(
            id: json["Id"] as? String ?? "",
            name: name,
            labels: config?["Labels"] as? [String: String] ?? [:],
            status: state?["Status"] as? String ?? "unknown",
            exitCode: state?["ExitCode"] as? Int ?? 0,
            boundHostPorts: ports.sorted()
        )
    }

    /// Every host port any container (in any state) publishes, with the container's name.
    public func publishedPorts() throws -> [UInt16: String] {
        var ports: [UInt16: String] = [:]
        for container in try inspect(try containerIDs()) {
            for port in container.boundHostPorts { ports[port] = container.name }
        }
        return ports
    }

    /// `docker exec NAME ARGV…` (as the container's root), returning its result as is. The
    /// command runs with the system's own PATH and no preloaded libraries: the image's ENV may put
    /// a directory the user mounted first on its PATH, and root must never run the user's files.
    public func exec(_ name: String, _ argv: [String]) throws -> ProcessResult {
        try run(["exec"] + Self.rootExecEnvironment + [name] + argv)
    }

    /// What `exec` sets for the command it runs as root.
    static let rootExecEnvironment = ["-e", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "-e", "LD_PRELOAD=", "-e", "LD_LIBRARY_PATH="]

    /// The last lines of the container's logs, condensed to one line, or nil if docker has none.
    public func logTail(_ name: String, lines: Int = 5) -> String? {
        guard let result = try? run(["logs", "--tail", String(lines), name]), result.succeeded else { return nil }
        let text = condense(result.stdoutText + result.stderrText, limit: 400)
        return text.isEmpty ? nil : text
    }

    /// `docker rm -f`; a container that is already gone is fine.
    public func forceRemove(_ name: String) throws {
        let result = try run(["rm", "-f", name])
        let why = result.stderrText.lowercased()
        // Gone, or going: docker is already removing it (an exited --rm container).
        if !result.succeeded && !why.contains("no such container") && !why.contains("is already in progress") {
            throw DockerError.failed(command: "docker rm", why: condense(result.stderrText))
        }
    }
}

public enum DockerError: UserFacingError, Equatable {
    case notInstalled
    case daemonNotRunning
    case permissionDenied
    case failed(command: String, why: String)

    public var description: String {
        switch self {
        case .notInstalled:
            return "docker is not installed on this node (no docker on PATH): install docker.io, or run dbgbox on a node that has Docker"
        case .daemonNotRunning:
            return "the Docker daemon is not running on this node: start it (e.g. `sudo systemctl start docker`) or ask the node's admin"
        case .permissionDenied:
            return "permission denied on the Docker socket: add yourself to the docker group (`sudo usermod -aG docker $USER`, then log in again)"
        case .failed(let command, let why):
            return "\(command) failed: \(why.isEmpty ? "no message" : why)"
        }
    }

    /// Recognizes failures of the engine itself in docker's stderr.
    static func engineProblem(_ stderr: String) -> DockerError? {
        let lower = stderr.lowercased()
        if lower.contains("permission denied") && (lower.contains("docker.sock") || lower.contains("docker daemon socket")) {
            return .permissionDenied
        }
        if lower.contains("cannot connect to the docker daemon") || lower.contains("is the docker daemon running") {
            return .daemonNotRunning
        }
        return nil
    }
}
