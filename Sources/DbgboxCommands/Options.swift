import ArgumentParser
import DbgboxKit

// The option groups commands share with `@OptionGroup`: one definition, one help text each.

/// Options every command that acts for a user takes.
struct UserOptions: ParsableArguments {
    @Option(name: .long, help: "Act for this user (root only); dbgbox refuses to mirror root itself.")
    var user: String?
}

/// How each hop of the chain logs in and is checked: identities, known_hosts, ssh config.
/// Part of `ChainOptions`; `key install` (one hop) takes it alone.
struct HopOptions: ParsableArguments {
    @Option(name: .customShort("i"), help: ArgumentHelp("An identity file to log in with, on every hop (repeatable).", valueName: "key"))
    var identity: [String] = []

    @Flag(help: "Append an unknown host key of a hop to known_hosts (one line) instead of refusing it.")
    var acceptNew = false

    @Option(help: ArgumentHelp("The known_hosts file for the hops' host keys (default: ssh's own, ~/.ssh/known_hosts).", valueName: "file"))
    var knownHosts: String?

    @Option(name: .customShort("F"), help: ArgumentHelp("The ssh config file to read instead of ~/.ssh/config.", valueName: "file"))
    var sshConfig: String?
}

/// Whether `--login` and `--node` must come together when parsed (`ChainOptions.validate`).
protocol ChainPairing {
    static var pairedWhenParsed: Bool { get }
    /// What --login's help says of --node.
    static var loginNote: String { get }
}

/// Every command but `up`: `--login` and `--node` go together (neither: this machine).
enum LoginWithNode: ChainPairing {
    static var pairedWhenParsed: Bool { true }
    static var loginNote: String { "goes with --node" }
}

/// `up`: either may come from config.yaml, and with a scheduler (`--scheduler`, `--job`) the node
/// is the one the job gets; `up` checks the pair itself once it knows which.
enum NodeFoundLater: ChainPairing {
    static var pairedWhenParsed: Bool { false }
    static var loginNote: String { "goes with --node, or alone with --scheduler or --job" }
}

/// The chain of every command but `up`.
typealias ChainOptions = Chain<LoginWithNode>

/// The chain laptop → login host → node: `--login`/`--node` and how to reach and log in to them.
/// With them, docker and the node checks run on the node through the libssh2 chain; without
/// them, on this machine (`tunnel` and `up` need them, or config.yaml's login:/node: for up).
/// `Pairing` says whether the pair is checked when parsed (`up` checks it itself).
struct Chain<Pairing: ChainPairing>: ParsableArguments {
    @Option(help: ArgumentHelp("The login host: [USER@]HOST[:PORT] or a Host alias (\(Pairing.loginNote)).", valueName: "host"))
    var login: String?

    @Option(help: ArgumentHelp("The node, as the login host reaches it: [USER@]HOST[:PORT] or a Host alias (goes with --login).", valueName: "host"))
    var node: String?

    @Option(help: ArgumentHelp("How the login host reaches the node: direct (a forwarded channel) or exec (`ssh -W` run on the login host).", valueName: "direct|exec"))
    var nodeVia: String = "direct"

    @OptionGroup var hops: HopOptions

    var isRemote: Bool { login != nil || node != nil }

    func validate() throws {
        if Pairing.pairedWhenParsed && (login == nil) != (node == nil) {
            throw ValidationError(Self.pairing)
        }
        guard TunnelRequest.NodeVia(rawValue: nodeVia) != nil else {
            throw ValidationError("--node-via \(nodeVia): use direct or exec")
        }
    }

    static var pairing: String { "--login and --node go together: give both to run on the node, or neither to run here" }

    /// The chain to open, nil without --login/--node (then everything runs here).
    func request(targetPort: Int = 22, localPort: Int? = nil) throws -> TunnelRequest? {
        guard login != nil || node != nil else { return nil }
        guard let login, let node else { throw DbgboxError(Self.pairing) }
        return TunnelRequest(
            login: try HostSpec(parsing: login), node: try HostSpec(parsing: node),
            targetPort: targetPort, localPort: localPort, identityFiles: hops.identity,
            nodeVia: TunnelRequest.NodeVia(rawValue: nodeVia) ?? .direct,
            acceptNew: hops.acceptNew, knownHostsFile: hops.knownHosts, sshConfigFile: hops.sshConfig)
    }

    /// The ssh flags (not --login/--node), paths made absolute: what `up` records for `down` and
    /// passes to its background tunnel.
    func flags(_ context: CommandContext) -> [String] {
        var flags: [String] = []
        if let config = hops.sshConfig { flags += ["-F", context.absolute(config)] }
        if let known = hops.knownHosts { flags += ["--known-hosts", context.absolute(known)] }
        for identity in hops.identity { flags += ["-i", context.absolute(identity)] }
        if nodeVia != "direct" { flags += ["--node-via", nodeVia] }
        return flags
    }

    /// The login host alone, with these hops' options: where a scheduler's commands run (its
    /// `node` is the login host until a job names its node).
    func loginRequest() throws -> TunnelRequest? {
        guard let login else { return nil }
        var copy = self
        copy.node = login
        return try copy.request()
    }
}

extension ChainOptions {
    /// The chain to `record`'s node for `down` and `status`: the recorded login and node (or
    /// `given`'s), with `given`'s ssh flags, else the ones `up` recorded. Nil for a session of a
    /// local container.
    static func recorded(_ record: SessionRecord, given: ChainOptions? = nil, manager: SessionManager,
                         context: CommandContext) throws -> TunnelRequest? {
        guard let login = record.login, let node = record.node else { return nil }
        var flags = given?.flags(context) ?? []
        if flags.isEmpty, let recorded = try SessionOptions.recorded(record.name, manager: manager) { flags = recorded }
        return try ChainOptions.parse(["--login", given?.login ?? login, "--node", given?.node ?? node] + flags).request()
    }
}

/// `up`'s scheduler job (issue 14): a new job (`--scheduler`), or a step in a job the user holds
/// (`--job`). Values not given come from config.yaml (--profile, then defaults:).
struct SchedulerOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Start the container in a new scheduler job: slurm or pbs (with --login; no --node: the node is the job's).", valueName: "slurm|pbs"))
    var scheduler: String?

    @Option(help: ArgumentHelp("GPUs the job asks for (Slurm --gres=gpu:N, PBS -l select=1:ngpus=N; default 1).", valueName: "n"))
    var gpus: String?

    @Option(help: ArgumentHelp("The job's time limit: 90m, 2h, 1d, or Slurm's MM, HH:MM:SS, D-HH:MM… The container's TTL never exceeds it.", valueName: "duration"))
    var time: String?

    @Option(help: ArgumentHelp("The Slurm partition or PBS queue.", valueName: "name"))
    var partition: String?

    @Option(name: .customLong("job-arg"), parsing: .unconditionalSingleValue,
            help: ArgumentHelp("An argument for sbatch/qsub, verbatim (repeatable), e.g. --job-arg=--account=proj1.", valueName: "arg"))
    var jobArgs: [String] = []

    @Option(help: ArgumentHelp("Attach to a running Slurm job you hold (salloc, sbatch): the container starts inside it with its GPUs (srun --jobid ID --overlap).", valueName: "id"))
    var job: String?

    var choices: SchedulerChoices {
        SchedulerChoices(scheduler: scheduler, gpus: gpus, time: time, partition: partition, jobArgs: jobArgs, job: job)
    }
}

/// The container `container create` and `up` make. Values not given come from config.yaml
/// (--profile, then defaults:), then the built-ins.
struct ContainerOptions: ParsableArguments {
    @Option(help: "A profile letter (P, V, G, GT, …), GPU ids such as 0,2, or none (up: default none; container create: required unless config.yaml gives gpu:).")
    var gpu: String?

    @Option(help: "The node port for ssh (1024-65535), or auto (default: auto).")
    var port: String?

    @Option(name: .customLong("mount"), help: "Bind mounts as \"SRC:DST;SRC:DST\" (absolute paths on the node).")
    var mountLists: [String] = []

    @Option(name: [.customShort("v"), .customLong("volume")], help: "A bind mount SRC:DST[:ro]; repeatable.")
    var volumes: [String] = []

    @Option(help: "A local base image on the node to build the image from when it is missing.")
    var base: String?

    @Option(help: "The image (default: <user>/ssh:latest, from dbgbox image create or --base).")
    var image: String?

    @Option(help: "How long the container lives: 12h, 90m, 30s, 1d, or 0 for no limit (default: \(TTL.defaultText)).")
    var ttl: String?

    @Option(help: "The public key to authorize (default: ~/.ssh/id_dbgbox.pub); up puts its private half into the Host block.")
    var key: String?

    @Option(help: "A profile of ~/.config/dbgbox/config.yaml.")
    var profile: String?

    @Option(name: .customLong("gpu-runtime"), help: "How GPUs reach docker: gpus (--gpus) or nvidia (--runtime nvidia).")
    var gpuRuntime: String = GPURuntime.gpus.rawValue

    var choices: ContainerChoices {
        ContainerChoices(gpu: gpu, port: port, mountLists: mountLists, volumes: volumes, base: base, image: image,
                         ttl: ttl, key: key, profile: profile, gpuRuntime: gpuRuntime)
    }
}

// MARK: forwarded ports (issue 15)

/// `--forward PORT[:LOCAL]` and `--reverse LOCAL[:PORT]` (up; `forward` takes the same).
struct ForwardOptions: ParsableArguments {
    @Option(name: .customLong("forward"), help: ArgumentHelp(
        "Forward the laptop's 127.0.0.1:LOCAL (default PORT; auto: a free one) to 127.0.0.1:PORT in the container (repeatable).",
        valueName: "port[:local]"))
    var forwardSpecs: [String] = []

    @Option(name: .customLong("reverse"), help: ArgumentHelp(
        "Make 127.0.0.1:PORT in the container (default LOCAL) reach the laptop's 127.0.0.1:LOCAL (repeatable).",
        valueName: "local[:port]"))
    var reverseSpecs: [String] = []

    func validate() throws {
        _ = try forwards()
    }

    /// The parsed forwards, forwards first. Throws `ForwardError.badSpec`.
    func forwards() throws -> [PortForward] {
        try forwardSpecs.map(PortForward.parseForward) + reverseSpecs.map(PortForward.parseReverse)
    }
}
