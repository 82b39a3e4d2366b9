import ArgumentParser
import DbgboxKit
import Foundation

struct ContainerCreate: DbgboxCommand {
    static let configuration = CommandConfiguration(
        commandName: "create",
        abstract: "Start a container that serves ssh on a 127.0.0.1 port, with your GPUs and home.",
        discussion: """
        --gpu takes a profile letter (P, V, G, GT, or one from ~/.config/dbgbox/config.yaml), which uses \
        the GPUs of your job ($PBS_GPUFILE, $SLURM_JOB_GPUS or $CUDA_VISIBLE_DEVICES) and the letter's \
        CPU/memory limits; explicit ids such as 0,2 or GPU-<uuid>; or none. With --base (or base: in \
        config.yaml), a missing image is built from that base first.
        Example: dbgbox container create --gpu V --port auto --mount "/data:/data;/scratch:/scratch"
        """)

    @OptionGroup(title: "The container") var container: ContainerOptions

    @Flag(help: "Print the result as one JSON object.")
    var json = false

    @OptionGroup var userOptions: UserOptions

    @OptionGroup(title: "Run on a cluster node") var chain: ChainOptions

    func run(_ context: CommandContext) throws {
        _ = try container.choices.checkForm()
        let node = try context.node(try chain.request())
        defer { node.close() }
        let user = try node.identity(requested: userOptions.user)
        // Keys and config are this machine's; mount sources and the GPU allocation are the node's.
        let home = context.dotHome(for: user, requestedUser: userOptions.user, remote: node.isRemote)
        let planner = ContainerPlanner(config: try context.config(home: home), home: home, absolute: context.absolute)
        let plan = try planner.plan(container.choices)
        guard plan.settings.gpu != nil else {
            throw DbgboxError("container create needs --gpu (a profile letter, GPU ids, or none), or gpu: in \(DbgboxConfig.defaultPath(home: home))")
        }
        let operations = NodeSessionOperations(context: context, node: node, home: home, user: user)
        operations.planner = planner
        operations.plan = plan
        operations.authorizedKeyLine = try AuthorizedKey.load(path: plan.keyPath, fs: context.files).line
        let image = plan.settings.base == nil
            ? plan.settings.image ?? ContainerCreateRequest.defaultImage(for: user)
            : try operations.ensureImage()
        let created = try operations.create(image: image)

        if userOptions.user != nil { context.giveToUser(user, paths: ["\(home)/.ssh/dbgbox", created.knownHostsPath]) }
        let argv = created.sshCommand(identityFile: plan.identityFile)
        let command = shellQuote(argv)
        let spec = created.spec
        if json {
            try context.printJSON(CreateOutput(
                name: spec.name, port: Int(spec.port), user: spec.user.name, image: spec.image,
                gpus: spec.gpu.deviceIDs, ttl_seconds: spec.ttl.seconds,
                expires: spec.expires.map(ContainerSpec.iso8601) ?? "",
                host_key_alias: spec.hostKeyAlias, host_key_fingerprint: created.hostKeyFingerprint,
                known_hosts: created.knownHostsPath, ssh_command: command, ssh_argv: argv))
        } else {
            context.say("container    \(spec.name)")
            context.say("port         \(spec.port) (on 127.0.0.1 of \(node.isRemote ? node.name : "this node"))")
            context.say("gpus         \(spec.gpu.deviceIDs.isEmpty ? "none" : spec.gpu.label)")
            context.say("expires      \(spec.expires.map { "\(ContainerSpec.iso8601($0)) (in \(TTL.format(seconds: spec.ttl.seconds)))" } ?? "never (--ttl 0): remove it with dbgbox cleanup")")
            context.say("host key     \(created.hostKeyFingerprint) (pinned as \(spec.hostKeyAlias))")
            context.say("ssh command  \(command)")
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
