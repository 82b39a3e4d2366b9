import Foundation

/// docker on the node for `up`, `down` and `container create`: the image (built from a base
/// when missing), the container as `ContainerPlanner` plans it, its removal.
public final class NodeSessionOperations: SessionNodeOperations {
    public let context: CommandContext
    public let node: NodeEnvironment
    /// The laptop's dot files (pinned host keys).
    public let home: String
    /// What to create; nil for `down`, which only removes.
    public var planner: ContainerPlanner?
    public var plan: ContainerPlan?
    /// The GPU request when the plan has none (`up`: none).
    public var defaultGPU = "none"
    public var authorizedKeyLine = ""
    /// `--user` (locally, root only); nil: the invoking user, or the node's login user.
    public var requestedUser: String?
    /// The last container made, with its pinned host key.
    public private(set) var created: CreatedContainer?

    /// `user`: the identity already resolved for the node, if any (else asked on first use).
    public init(context: CommandContext, node: NodeEnvironment, home: String, user: UserIdentity? = nil) {
        self.context = context
        self.node = node
        self.home = home
        self.identity = user
    }

    private var identity: UserIdentity?
    public func user() throws -> UserIdentity {
        if let identity { return identity }
        let found = try node.identity(requested: requestedUser)
        identity = found
        return found
    }

    public func ensureImage() throws -> String {
        let user = try user()
        let name = plan?.settings.image ?? ContainerCreateRequest.defaultImage(for: user)
        let docker = DockerClient(runner: node.runner)
        if try docker.imageLabels(name) != nil { return name }
        guard let base = plan?.settings.base else {
            throw DbgboxError("image \(name) is missing on \(node.name): give --base IMAGE (a local image on the node) to build it, or set base: in ~/.config/dbgbox/config.yaml")
        }
        let service = ImageService(docker: docker)
        let prepared = try service.prepare(ImageCreateRequest(base: base, name: name, identity: user), requireBase: true)
        context.note("building \(prepared.name) from \(base) on \(node.name)")
        try service.build(prepared, output: context.stderr)
        return prepared.name
    }

    /// Runs the container (mounts, GPUs, port, TTL as planned) and pins its host key.
    public func create(image: String) throws -> CreatedContainer {
        guard let planner, let plan else { throw DbgboxError("no container was planned") }
        let user = try user()
        let mounts = try planner.mounts(plan, node: node, userHome: user.home)
        let selection = try planner.gpus(plan.settings.gpu ?? defaultGPU, runtime: plan.runtime, node: node)
        for warning in selection.warnings { context.warn(warning) }
        let made = try context.containers(node).create(
            ContainerCreateRequest(user: user, image: image, gpu: selection, port: plan.port, mounts: mounts,
                                   authorizedKeyLine: authorizedKeyLine, ttl: plan.ttl),
            pinnedPath: PinnedHostKeys.defaultPath(home: home))
        created = made
        return made
    }

    public func createContainer(image: String) throws -> SessionContainer {
        let spec = try create(image: image).spec
        return SessionContainer(name: spec.name, port: Int(spec.port), user: spec.user.name, image: spec.image,
                                gpus: spec.gpu.deviceIDs, expires: spec.expires, home: spec.user.home,
                                mounts: spec.allMounts.map { PathMapping(source: $0.source, target: $0.target) })
    }

    /// `docker rm -f`; a container already gone is fine.
    public func removeContainer(_ name: String) throws {
        try DockerClient(runner: node.runner).forceRemove(name)
    }
}
