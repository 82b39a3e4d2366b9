import Foundation

/// What the command line asked of a container (`container create` and `up` share these options);
/// nil and empty mean "not given", so config.yaml or a built-in default applies.
public struct ContainerChoices: Sendable, Equatable {
    public var gpu: String?
    public var port: String?
    /// `--mount "SRC:DST;SRC:DST"` lists.
    public var mountLists: [String]
    /// `-v SRC:DST[:ro]` values.
    public var volumes: [String]
    public var base: String?
    public var image: String?
    public var ttl: String?
    public var key: String?
    public var profile: String?
    public var gpuRuntime: String

    public init(gpu: String? = nil, port: String? = nil, mountLists: [String] = [], volumes: [String] = [],
                base: String? = nil, image: String? = nil, ttl: String? = nil, key: String? = nil,
                profile: String? = nil, gpuRuntime: String = GPURuntime.gpus.rawValue) {
        self.gpu = gpu
        self.port = port
        self.mountLists = mountLists
        self.volumes = volumes
        self.base = base
        self.image = image
        self.ttl = ttl
        self.key = key
        self.profile = profile
        self.gpuRuntime = gpuRuntime
    }

    /// Whether the command line gave any bind mount (then config.yaml's `mounts:` do not apply).
    public var mountsGiven: Bool { !mountLists.isEmpty || !volumes.isEmpty }

    /// The checks that need neither config nor node: the GPU runtime's name, the image's form.
    public func checkForm() throws -> GPURuntime {
        guard let runtime = GPURuntime(rawValue: gpuRuntime) else {
            throw DbgboxError("--gpu-runtime '\(gpuRuntime)' is unknown: use gpus or nvidia")
        }
        if let image { try ImageReference.validateImage(image) }
        return runtime
    }
}

/// A container's settings, merged and checked before the node is touched.
public struct ContainerPlan: Sendable, Equatable {
    /// The command line over config.yaml (a profile over `defaults:`).
    public var settings: DbgboxSettings
    public var runtime: GPURuntime
    public var ttl: TTL
    public var port: PortRequest
    /// The command line's `--mount` lists.
    public var mountLists: [String]
    /// `-v` values: the command line's, else config.yaml's `mounts:`.
    public var volumes: [String]
    /// The public key to authorize (absolute).
    public var keyPath: String

    /// The private half beside the `.pub` key: what ssh and the IDE log in with.
    public var identityFile: String { keyPath.hasSuffix(".pub") ? String(keyPath.dropLast(4)) : keyPath }
}

/// Turns `ContainerChoices` into a container on a node, for `container create` and `up` alike:
/// precedence (command line > config.yaml profile > config defaults > built-ins), then on the node
/// the bind mounts, the GPU selection and the create request.
public struct ContainerPlanner: Sendable {
    public var config: DbgboxConfig
    /// The laptop's dot files (the default key).
    public var home: String
    public var absolute: @Sendable (String) -> String

    public init(config: DbgboxConfig, home: String, absolute: @escaping @Sendable (String) -> String) {
        self.config = config
        self.home = home
        self.absolute = absolute
    }

    /// Merges the command line (`given`, with `login`/`node` for `up`) over config.yaml and checks
    /// every value's form.
    public func plan(_ choices: ContainerChoices, login: String? = nil, node: String? = nil) throws -> ContainerPlan {
        let runtime = try choices.checkForm()
        let settings = DbgboxSettings(login: login, node: node, key: choices.key, image: choices.image, base: choices.base,
                                      gpu: choices.gpu, mounts: choices.mountsGiven ? choices.mountLists : nil,
                                      port: choices.port, ttl: choices.ttl)
            .filling(from: try config.settings(profile: choices.profile))
        let ttl = try TTL.parse(settings.ttl ?? TTL.defaultText)
        let port = try PortRequest.parse(settings.port ?? "auto")
        if let image = settings.image { try ImageReference.validateImage(image) }
        return ContainerPlan(settings: settings, runtime: runtime, ttl: ttl, port: port, mountLists: choices.mountLists,
                             // config.yaml's mounts are -v values, each (used when the command line gives none).
                             volumes: choices.mountsGiven ? choices.volumes : (settings.mounts ?? []),
                             keyPath: settings.key.map(absolute) ?? AuthorizedKey.defaultPath(home: home))
    }

    /// The bind mounts, their sources checked on the node, their targets against the user's home.
    public func mounts(_ plan: ContainerPlan, node: NodeEnvironment, userHome: String) throws -> [BindMount] {
        var mounts: [BindMount] = []
        for list in plan.mountLists { mounts += try BindMount.parseList(list, fs: node.files) }
        for volume in plan.volumes { mounts.append(try BindMount.parseVolume(volume, fs: node.files)) }
        try ContainerSpec.checkMountTargets(mounts, home: userHome)
        return mounts
    }

    /// The GPUs for `gpu` (a profile letter, ids, or none) on the node: a profile reads the
    /// scheduler's allocation there.
    public func gpus(_ gpu: String, runtime: GPURuntime, node: NodeEnvironment) throws -> GPUSelection {
        let request = try GPURequest.parse(gpu, profiles: config.gpuProfiles)
        do {
            var env: [String: String] = [:]
            if case .profile = request { env = try node.gpuVariables() }
            return try GPUResolver(profiles: config.gpuProfiles, environment: env, runner: node.runner, fs: node.files)
                .resolve(request, runtime: runtime)
        } catch { throw node.explain(error) }
    }
}
