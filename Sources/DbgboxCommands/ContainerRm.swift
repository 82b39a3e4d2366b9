import ArgumentParser
import DbgboxKit
import Foundation

struct ContainerRm: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rm",
        abstract: "Remove your own dbgbox containers and their pinned host keys.",
        discussion: "Every name is checked before any is removed. Example: dbgbox container rm alice_01234")

    @Argument(help: "Container names.")
    var names: [String]

    @OptionGroup var userOptions: UserOptions

    @OptionGroup(title: "Run on a cluster node") var remote: RemoteOptions

    func validate() throws {
        if names.isEmpty { throw ValidationError("name at least one container (see dbgbox container list)") }
    }

    func run() throws {
        let (_, node) = try remote.environment()
        defer { node.close() }
        let user = try node.identity(requested: userOptions.user)
        let removed = try ContainerWiring.service(node).remove(names: names, user: user,
                                                           pinnedPath: PinnedHostKeys.defaultPath(home: ContainerWiring.dotHome(user, options: userOptions, node: node)))
        for name in removed { print("removed \(name)") }
    }
}
