import ArgumentParser
import DbgboxKit

/// `dbgbox forward`: adds or removes forwarded ports of a running session.
struct Forward: DbgboxCommand {
    static let configuration = CommandConfiguration(
        abstract: "Forward ports of a running session's container to this machine (and back).",
        usage: """
        dbgbox forward <name> <port[:local]>... [--reverse <local[:port]>]...
          dbgbox forward <name> --remove <port>...
        """,
        discussion: """
        PORT is a port inside the container, reached as 127.0.0.1:PORT there (servers bound to \
        localhost only, as TensorBoard's and Jupyter's defaults, work). LOCAL is the port on this \
        machine's 127.0.0.1 (default PORT; auto picks a free one and says which); a taken LOCAL is \
        refused. --reverse LOCAL[:PORT] makes 127.0.0.1:PORT in the container reach this machine's \
        127.0.0.1:LOCAL (PyCharm's debug server). The forwards ride the session's tunnel process (an \
        SSH session into the container with its pinned host key, inside the node session): no ssh \
        process, no port on the node; they survive its reconnects and end with dbgbox down. \
        dbgbox status lists them.
        Examples: dbgbox forward alice_01234 6006    dbgbox forward alice_01234 8888:auto
                  dbgbox forward alice_01234 --reverse 5678    dbgbox forward alice_01234 --remove 6006
        """)

    @Argument(help: "The session (see dbgbox status).")
    var name: String

    @Argument(help: ArgumentHelp("Container ports to forward: PORT or PORT:LOCAL (LOCAL: a port or auto).", valueName: "port[:local]"))
    var ports: [String] = []

    @Option(name: .customLong("reverse"), help: ArgumentHelp(
        "Make 127.0.0.1:PORT in the container (default LOCAL) reach this machine's 127.0.0.1:LOCAL (repeatable).",
        valueName: "local[:port]"))
    var reverseSpecs: [String] = []

    @Option(name: .customLong("remove"), help: ArgumentHelp("Remove the forwards of this container port (repeatable).", valueName: "port"))
    var remove: [Int] = []

    func validate() throws {
        if !remove.isEmpty && !(ports.isEmpty && reverseSpecs.isEmpty) {
            throw ValidationError("--remove goes alone: remove forwards, or add them, in one command")
        }
        if remove.isEmpty && ports.isEmpty && reverseSpecs.isEmpty {
            throw ValidationError("name a port to forward (PORT[:LOCAL]), --reverse LOCAL[:PORT] or --remove PORT")
        }
        _ = try forwards()
    }

    private func forwards() throws -> [PortForward] {
        try ports.map(PortForward.parseForward) + reverseSpecs.map(PortForward.parseReverse)
    }

    func run(_ context: CommandContext) throws {
        let manager = try context.sessionManager(home: try context.home())
        let forwards = SessionForwards(manager: manager)
        if !remove.isEmpty {
            for forward in try forwards.remove(ports: remove, from: name) { context.say("removed  \(forward.summary)") }
            return
        }
        for forward in try forwards.add(try self.forwards(), to: name) {
            context.say("\(forward.direction == .forward ? "forward" : "reverse")  \(forward.summary)")
        }
    }
}
