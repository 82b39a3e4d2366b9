import ArgumentParser
import DbgboxKit

struct ContainerRm: DbgboxCommand {
    static let configuration = CommandConfiguration(
        commandName: "rm",
        abstract: "Remove your own dbgbox containers and their pinned host keys.",
        discussion: "Every name is checked before any is removed. Example: dbgbox container rm alice_01234")

    @Argument(help: "Container names.")
    var names: [String]

    @OptionGroup var userOptions: UserOptions

    @OptionGroup(title: "Run on a cluster node") var chain: ChainOptions

    func validate() throws {
        if names.isEmpty { throw ValidationError("name at least one container (see dbgbox container list)") }
    }

    func run(_ context: CommandContext) throws {
        let node = try context.node(try chain.request())
        defer { node.close() }
        let user = try node.identity(requested: userOptions.user)
        let home = context.dotHome(for: user, requestedUser: userOptions.user, remote: node.isRemote)
        let removed = try context.containers(node).remove(names: names, user: user, pinnedPath: PinnedHostKeys.defaultPath(home: home))
        for name in removed { context.say("removed \(name)") }
    }
}
