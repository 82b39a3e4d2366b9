import ArgumentParser
import DbgboxKit

/// What every dbgbox command is: parsed by ArgumentParser, then run with the one
/// `CommandContext` (identity, configuration, the node, signals, output) that `DbgboxMain`
/// makes. A command parses, asks the Kit, and prints through the context; it never calls another
/// command's code.
protocol DbgboxCommand: ParsableCommand {
    func run(_ context: CommandContext) throws
}

extension DbgboxCommand {
    /// ArgumentParser's entry point, for callers other than `DbgboxMain`: the live context.
    func run() throws {
        try run(.live())
    }
}
