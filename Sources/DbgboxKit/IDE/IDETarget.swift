import Foundation

/// A host directory as it appears inside the container.
public struct PathMapping: Sendable, Equatable, Codable {
    public var source: String
    public var target: String
    public init(source: String, target: String) {
        self.source = source
        self.target = target
    }
}

/// Everything the IDE instructions need about one session, whatever it was gathered from
/// (`docker inspect` of a local container, or a session record of `dbgbox up`).
public struct IDETarget: Sendable, Equatable {
    /// The container name.
    public var name: String
    /// The ssh Host alias (`dbgbox-NAME`) when a Host block for it exists and points at this
    /// session; nil otherwise (then the IDE gets host and port).
    public var alias: String?
    /// Where ssh connects: 127.0.0.1 (the tunnel's or the container's published port).
    public var host: String
    public var port: UInt16
    public var user: String
    /// The private key.
    public var identityFile: String
    /// The user's home inside the container (mounted from the same path on the host).
    public var home: String
    /// Bind mounts, the home first.
    public var mounts: [PathMapping]
    /// Best first; never empty for a container that has Python.
    public var interpreters: [PythonInterpreter]
    /// The pinned host key fingerprint (`SHA256:…`), for checking what PyCharm shows; nil if unknown.
    public var hostKeyFingerprint: String?
    /// The cluster node the container runs on (its mounts are that node's paths); nil when it runs
    /// on this machine.
    public var node: String?

    public init(name: String, alias: String?, host: String = "127.0.0.1", port: UInt16, user: String,
                identityFile: String, home: String, mounts: [PathMapping], interpreters: [PythonInterpreter],
                hostKeyFingerprint: String? = nil, node: String? = nil) {
        self.name = name
        self.alias = alias
        self.host = host
        self.port = port
        self.user = user
        self.identityFile = identityFile
        self.home = home
        self.mounts = mounts
        self.interpreters = interpreters
        self.hostKeyFingerprint = hostKeyFingerprint
        self.node = node
    }

    /// The alias `dbgbox up` writes for this container.
    public var expectedAlias: String { ContainerSpec.hostKeyAlias(for: name) }
}

/// Finds the caller's container and gathers an `IDETarget` from docker. Never prints.
public struct IDETargetFinder: Sendable {
    public var docker: DockerClient

    public init(docker: DockerClient) {
        self.docker = docker
    }

    /// The named container if it is the caller's own; without a name, the caller's only dbgbox container.
    public func container(named name: String?, user: UserIdentity) throws -> DockerContainer {
        let service = ContainerService(docker: docker)
        if let name { return try service.ownContainer(name, user: user) }
        let own = try service.list(user: user)
        guard let only = own.first, own.count == 1 else {
            if own.isEmpty { throw IDEError.noContainer(user: user.name) }
            throw IDEError.severalContainers(own.map(\.name))
        }
        return try service.ownContainer(only.name, user: user)
    }

    /// The container's bind mounts (`.Mounts` of docker inspect), the home first.
    public func mounts(of container: String, home: String) throws -> [PathMapping] {
        let result = try docker.checked(["container", "inspect", "--format", "{{json .Mounts}}", container])
        return Self.parseMounts(result.stdout, home: home)
    }

    static func parseMounts(_ json: Data, home: String) -> [PathMapping] {
        guard let list = (try? JSONSerialization.jsonObject(with: json)) as? [[String: Any]] else { return [] }
        let mappings = list.compactMap { entry -> PathMapping? in
            guard (entry["Type"] as? String ?? "bind") == "bind",
                  let source = entry["Source"] as? String, let target = entry["Destination"] as? String else { return nil }
            return PathMapping(source: source, target: target)
        }
        return mappings.filter { $0.target == home } + mappings.filter { $0.target != home }.sorted { $0.target < $1.target }
    }

    /// The target for a running container: port and user from its labels, mounts from docker,
    /// interpreters found inside with `docker exec -u USER`.
    public func target(for container: DockerContainer, home: String, identityFile: String, alias: String?,
                       hostKeyFingerprint: String? = nil) throws -> IDETarget {
        guard container.status == "running" else {
            throw IDEError.notRunning(name: container.name, status: container.status)
        }
        guard let portText = container.labels[ContainerSpec.labelPort], let port = UInt16(portText),
              let owner = container.labels[ContainerSpec.labelOwner], !owner.isEmpty else {
            throw ContainerError.notDbgbox(container.name)
        }
        let interpreters = try InterpreterDiscovery.discover(
            runner: docker.runner, transport: .dockerExec(container: container.name, user: owner, docker: docker.executable),
            target: container.name)
        return IDETarget(name: container.name, alias: alias, port: port, user: owner, identityFile: identityFile,
                         home: home, mounts: try mounts(of: container.name, home: home), interpreters: interpreters,
                         hostKeyFingerprint: hostKeyFingerprint)
    }

    /// Whether ssh's resolution of `alias` reaches this session (127.0.0.1 or localhost on `port`),
    /// i.e. a Host block for it exists and is current.
    public static func aliasReaches(_ resolved: ResolvedHost, port: UInt16) -> Bool {
        ["127.0.0.1", "localhost", "::1"].contains(resolved.hostName.lowercased()) && resolved.port == Int(port)
    }
}

public enum IDEError: UserFacingError, Equatable {
    case noContainer(user: String)
    case severalContainers([String])
    case notRunning(name: String, status: String)
    case noPython(target: String)
    case discoveryFailed(target: String, why: String)
    case transportMissing(String)
    case codeNotFound
    case noAliasToOpen(alias: String)
    case pathNotAbsolute(String)
    case severalSessions([String])
    case noSessionNoDocker(user: String, name: String?)
    case sessionTunnelDead(name: String)
    case sessionNotPinned(name: String, alias: String, path: String)
    case sessionUnreachable(name: String, port: UInt16, why: String)
    case sessionHostKey(name: String, port: UInt16, pinned: String, presented: String)
    case sessionLogin(name: String, user: String, identityFile: String, why: String)

    public var description: String {
        switch self {
        case .noContainer(let user):
            return "\(user) has no dbgbox container: start one with `dbgbox container create --gpu none --port auto` (or `dbgbox up`)"
        case .severalContainers(let names):
            return "you have \(names.count) dbgbox containers (\(names.joined(separator: ", "))): name one, e.g. `dbgbox ide pycharm \(names[0])`"
        case .notRunning(let name, let status):
            return "container \(name) is \(status), not running: start a new one with `dbgbox container create` and remove this one with `dbgbox container rm \(name)`"
        case .noPython(let target):
            return "no Python interpreter found in \(target): install python3 in the image, e.g. `dbgbox image create --append FILE` with a line `RUN apt-get update && apt-get install -y --no-install-recommends python3`"
        case .discoveryFailed(let target, let why):
            return "could not look for Python in \(target): \(why): check that the container runs (`dbgbox container list`)"
        case .transportMissing(let program):
            return "\(program) not found on PATH: install it, or run dbgbox where it is available"
        case .codeNotFound:
            return "`code` is not on PATH: install VS Code's command (in VS Code: Shell Command: Install 'code' command in PATH), or run the printed command yourself"
        case .noAliasToOpen(let alias):
            return "VS Code needs the ssh Host alias \(alias), which ~/.ssh/config does not define: add the Host block printed without --open, or create the session with `dbgbox up`"
        case .pathNotAbsolute(let path):
            return "the folder \(path) must be an absolute path inside the container, e.g. /home/you/project"
        case .severalSessions(let names):
            return "\(names.count) sessions are up (\(names.joined(separator: ", "))): name one, e.g. `dbgbox ide pycharm \(names[0])`"
        case .noSessionNoDocker(let user, let name):
            let what = name.map { "there is no session named \($0) (see `dbgbox status`)" } ?? "\(user) has no dbgbox session"
            return "\(what), and docker (for a local container) is not available here: start a session with `dbgbox up --login LOGIN --node NODE`"
        case .sessionTunnelDead(let name):
            return "the tunnel of session \(name) is not running (see `dbgbox status`): run `dbgbox down \(name)`, then `dbgbox up` again"
        case .sessionNotPinned(let name, let alias, let path):
            return "no host key is pinned for \(alias) in \(path), so session \(name) cannot be checked: run `dbgbox down \(name)`, then `dbgbox up` again"
        case .sessionUnreachable(let name, let port, let why):
            return "cannot reach session \(name) at 127.0.0.1:\(port): \(condense(why, limit: 160)): check `dbgbox status`; a dead tunnel needs `dbgbox down \(name)` and `dbgbox up`"
        case .sessionHostKey(let name, let port, let pinned, let presented):
            return "127.0.0.1:\(port) presented host key \(presented), not \(pinned) pinned for session \(name): another program may hold the port; check `dbgbox status`"
        case .sessionLogin(let name, let user, let identityFile, let why):
            return "the container of session \(name) refused \(user) with \(identityFile)\(why.isEmpty ? "" : " (\(condense(why, limit: 120)))"): pass the key the session was made with, --key FILE"
        }
    }
}
