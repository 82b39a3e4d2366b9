import ArgumentParser
import DbgboxKit

/// `dbgbox tunnel`: 127.0.0.1:LOCAL → login host → node → 127.0.0.1:PORT, in process.
struct TunnelCommand: DbgboxCommand {
    static let configuration = CommandConfiguration(
        commandName: "tunnel",
        abstract: "Forward a local port to a container's sshd through the login host and the node.",
        usage: "dbgbox tunnel --login <host> --node <host> --port <port> [<options>]",
        discussion: """
        Each connection to 127.0.0.1:LOCAL is carried through an SSH session to the login host, a \
        second SSH session to the node inside the first, and a channel from the node to \
        127.0.0.1:PORT, where the container publishes its sshd. One process, libssh2; nothing runs \
        on the login host, and on the node only `true`, once per connect (it makes the node's sshd \
        turn Nagle off). HOST may be a Host alias from ~/.ssh/config (HostName, User, Port and IdentityFile \
        are resolved as `ssh -G` does). Host keys are checked on every hop against known_hosts.
        Example: dbgbox tunnel --login alice@login.cluster --node gpu07 --port 2201
        """)

    @Option(help: ArgumentHelp("The container's port on the node's 127.0.0.1.", valueName: "port"))
    var port: Int

    @Option(help: ArgumentHelp("The local port (default: the same as --port).", valueName: "port"))
    var localPort: Int?

    @Option(help: ArgumentHelp("An identity file for the login host only (repeatable).", valueName: "key"))
    var loginKey: [String] = []

    @Option(help: ArgumentHelp("An identity file for the node only (repeatable).", valueName: "key"))
    var nodeKey: [String] = []

    @Option(help: ArgumentHelp("The local address to listen on (one other than 127.0.0.1, ::1 or localhost gets a warning: it opens the port to the network).", valueName: "addr"))
    var bind: String = "127.0.0.1"

    @Flag(help: "No live status line; events only.")
    var quiet = false

    /// The session of `dbgbox up` this tunnel serves (up passes it): named in its log lines.
    @Option(help: .hidden)
    var session: String?

    @OptionGroup(title: "The chain") var chain: ChainOptions

    // MARK: forwarded ports (issue 15): what `up` passes to its background tunnel
    @Option(help: .hidden) var control: String?
    @Option(help: .hidden) var containerUser: String?
    @Option(help: .hidden) var containerKey: String?
    @OptionGroup(visibility: .hidden) var forwards: ForwardOptions

    /// The session's forwards, when `up` started this tunnel (`--session` with `--control`).
    private func forwardSetup() throws -> ForwardSetup? {
        guard let session, let control, let containerUser, let containerKey else { return nil }
        return ForwardSetup(session: session, controlPath: control, user: containerUser, identityFile: containerKey,
                            forwards: try forwards.forwards())
    }
    // MARK: end forwarded ports

    func validate() throws {
        guard chain.isRemote else {
            throw ValidationError("tunnel needs --login and --node: the login host and the node the container runs on")
        }
    }

    func run(_ context: CommandContext) throws {
        guard var request = try chain.request(targetPort: port, localPort: localPort) else { return }
        request.bindAddress = bind
        request.loginIdentityFiles = loginKey
        request.nodeIdentityFiles = nodeKey
        try TunnelRunner(context: context).run(request, session: session, quiet: quiet, forwards: try forwardSetup())
    }
}
