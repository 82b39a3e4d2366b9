import ArgumentParser
import DbgboxKit
import Foundation

struct ContainerCreate: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "create",
        abstract: "Start a container that serves ssh on a 127.0.0.1 port, with your GPUs and home.",
        discussion: """
        --gpu takes a profile letter (P, V, G, GT, or one from ~/.config/dbgbox/config.yaml), which uses \
        the GPUs of your job ($PBS_GPUFILE, $SLURM_JOB_GPUS or $CUDA_VISIBLE_DEVICES) and the letter's \
        CPU/memory limits; explicit ids such as 0,2 or GPU-<uuid>; or none.
        Example: dbgbox container create --gpu V --port auto --mount "/data:/data;/scratch:/scratch"
        """)

    @Option(help: "A profile letter (P, V, G, GT, …), GPU ids such as 0,2, or none (required unless config.yaml gives gpu:).")
    var gpu: String?

    @Option(help: "The node port for ssh (1024-65535), or auto (default: auto).")
    var port: String?

    @Option(name: .customLong("mount"), help: "Bind mounts as \"SRC:DST;SRC:DST\" (absolute paths).")
    var mountLists: [String] = []

    @Option(name: [.customShort("v"), .customLong("volume")], help: "A bind mount SRC:DST[:ro]; repeatable.")
    var volumes: [String] = []

    @Option(help: "The image (default: <user>/ssh:latest, from dbgbox image create).")
    var image: String?

    @Option(help: "The public key to authorize (default: ~/.ssh/id_dbgbox.pub).")
    var key: String?

    @Option(help: "How long the container lives: 12h, 90m, 30s, 1d, or 0 for no limit (default: \(TTL.defaultText)).")
    var ttl: String?

    @Option(help: "A profile of ~/.config/dbgbox/config.yaml.")
    var profile: String?

    @Option(name: .customLong("gpu-runtime"), help: "How GPUs reach docker: gpus (--gpus) or nvidia (--runtime nvidia).")
    var gpuRuntime: String = GPURuntime.gpus.rawValue

    @Flag(help: "Print the result as one JSON object.")
    var json = false

    @OptionGroup var userOptions: UserOptions

    @OptionGroup(title: "Run on a cluster node") var remote: RemoteOptions

    func run() throws {
        guard let runtime = GPURuntime(rawValue: gpuRuntime) else {
            throw DbgboxError("--gpu-runtime '\(gpuRuntime)' is unknown: use gpus or nvidia")
        }
        if let image { try ImageReference.validateImage(image) }
        let (runner, node) = try remote.environment()
        defer { node.close() }
        let user = try node.identity(requested: userOptions.user)
        // Keys and config are this machine's; mount sources and the GPU allocation are the node's.
        let fs = LocalFileSystem()
        let nodeFiles = node.files
        let home = ContainerWiring.dotHome(user, options: userOptions, node: node)

        // The command line first, then config.yaml (--profile, then defaults:), then the built-ins.
        let config = try DbgboxConfig.load(path: DbgboxConfig.defaultPath(home: home), fs: fs)
        let given = !mountLists.isEmpty || !volumes.isEmpty
        let settings = DbgboxSettings(key: key, image: image, gpu: gpu, mounts: given ? [] : nil, port: port, ttl: ttl)
            .filling(from: try config.settings(profile: profile))
        guard let gpuValue = settings.gpu else {
            throw DbgboxError("container create needs --gpu (a profile letter, GPU ids, or none), or gpu: in \(DbgboxConfig.defaultPath(home: home))")
        }
        let ttlValue = try TTL.parse(settings.ttl ?? TTL.defaultText)
        let portRequest = try PortRequest.parse(settings.port ?? "auto")
        if let image = settings.image { try ImageReference.validateImage(image) }

        var mounts: [BindMount] = []
        for list in mountLists { mounts += try BindMount.parseList(list, fs: nodeFiles) }
        // config.yaml's mounts are -v values, each.
        for volume in given ? volumes : (settings.mounts ?? []) { mounts.append(try BindMount.parseVolume(volume, fs: nodeFiles)) }
        try ContainerSpec.checkMountTargets(mounts, home: user.home)

        let keyPath = settings.key.map(ContainerWiring.absolute) ?? AuthorizedKey.defaultPath(home: home)
        let authorized = try AuthorizedKey.load(path: keyPath, fs: fs)

        let request = try GPURequest.parse(gpuValue, profiles: config.gpuProfiles)
        let selection: GPUSelection
        do {
            var env: [String: String] = [:]
            if case .profile = request { env = try node.gpuVariables() }
            selection = try GPUResolver(profiles: config.gpuProfiles, environment: env, runner: runner, fs: nodeFiles)
                .resolve(request, runtime: runtime)
        } catch { throw node.explain(error) }
        for warning in selection.warnings { ContainerWiring.warn(warning) }

        let service = ContainerWiring.service(node)
        let created = try service.create(
            ContainerCreateRequest(user: user, image: settings.image ?? ContainerCreateRequest.defaultImage(for: user),
                                   gpu: selection, port: portRequest, mounts: mounts,
                                   authorizedKeyLine: authorized.line, ttl: ttlValue),
            pinnedPath: PinnedHostKeys.defaultPath(home: home))

        if userOptions.user != nil { ContainerWiring.giveToUser(user, paths: ["\(home)/.ssh/dbgbox", created.knownHostsPath]) }
        let identityFile = keyPath.hasSuffix(".pub") ? String(keyPath.dropLast(4)) : keyPath
        let argv = created.sshCommand(identityFile: identityFile)
        let command = argv.map(ContainerWiring.shellQuote).joined(separator: " ")
        let spec = created.spec
        if json {
            try ContainerWiring.printJSON(CreateOutput(
                name: spec.name, port: Int(spec.port), user: spec.user.name, image: spec.image,
                gpus: spec.gpu.deviceIDs, ttl_seconds: spec.ttl.seconds,
                expires: spec.expires.map(ContainerSpec.iso8601) ?? "",
                host_key_alias: spec.hostKeyAlias, host_key_fingerprint: created.hostKeyFingerprint,
                known_hosts: created.knownHostsPath, ssh_command: command, ssh_argv: argv))
        } else {
            print("container    \(spec.name)")
            print("port         \(spec.port) (on 127.0.0.1 of \(node.isRemote ? node.name : "this node"))")
            print("gpus         \(spec.gpu.deviceIDs.isEmpty ? "none" : spec.gpu.label)")
            print("expires      \(spec.expires.map { "\(ContainerSpec.iso8601($0)) (in \(TTL.format(seconds: spec.ttl.seconds)))" } ?? "never (--ttl 0): remove it with dbgbox cleanup")")
            print("host key     \(created.hostKeyFingerprint) (pinned as \(spec.hostKeyAlias))")
            print("ssh command  \(command)")
        }
    }
}

/// `container create --json`: keys are stable, snake_case.
struct CreateOutput: Encodable {
    var name: String
    var port: Int
    var user: String
    var image: String
    var gpus: [String]
    var ttl_seconds: Int
    var expires: String
    var host_key_alias: String
    var host_key_fingerprint: String
    var known_hosts: String
    var ssh_command: String
    var ssh_argv: [String]
}
