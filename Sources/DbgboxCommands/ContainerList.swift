import ArgumentParser
import DbgboxKit
import Foundation

struct ContainerList: DbgboxCommand {
    static let configuration = CommandConfiguration(
        commandName: "list",
        abstract: "List your own dbgbox containers.",
        discussion: "Example: dbgbox container list --json")

    @Flag(help: "Print a JSON array.")
    var json = false

    @OptionGroup var userOptions: UserOptions

    @OptionGroup(title: "Run on a cluster node") var chain: ChainOptions

    func run(_ context: CommandContext) throws {
        let node = try context.node(try chain.request())
        defer { node.close() }
        let user = try node.identity(requested: userOptions.user)
        let rows = try context.containers(node).list(user: user)
        if json {
            try context.printJSON(rows.map {
                ListRow(name: $0.name, port: $0.port.map(Int.init), status: $0.status,
                        ttl_left_seconds: $0.secondsLeft, gpus: $0.gpus.isEmpty ? [] : $0.gpus.split(separator: ",").map(String.init))
            })
            return
        }
        if rows.isEmpty { context.say("no dbgbox containers of \(user.name)"); return }
        let table = [["NAME", "PORT", "STATUS", "TTL LEFT", "GPUS"]] + rows.map {
            [$0.name, $0.port.map(String.init) ?? "-", $0.status,
             $0.secondsLeft.map { TTL.format(seconds: $0) } ?? "none", $0.gpus.isEmpty ? "none" : $0.gpus]
        }
        let widths = (0..<5).map { col in table.map { $0[col].count }.max() ?? 0 }
        for row in table {
            context.say(zip(row, widths).map { $0.padding(toLength: $1, withPad: " ", startingAt: 0) }.joined(separator: "  ")
                .trimmingCharacters(in: .whitespaces))
        }
    }
}

/// `container list --json`: one object per container; keys are stable, snake_case.
struct ListRow: Encodable {
    var name: String
    var port: Int?
    var status: String
    var ttl_left_seconds: Int?
    var gpus: [String]
}
