import ArgumentParser
import DbgboxKit
import Foundation
import SSH

/// The root command. Subcommands live one per file in this module.
public struct Dbgbox: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "dbgbox",
        abstract: "Attach your laptop's IDE to a Docker container on a cluster GPU node.",
        discussion: """
        From the laptop, in one command: dbgbox keygen; dbgbox up --login LOGIN --node NODE --gpu V \
        --port auto --base IMAGE, or with the cluster's scheduler: dbgbox up --scheduler slurm|pbs \
        --login LOGIN --gpus 1 (the job gets the node and its GPUs); then ssh dbgbox-NAME (or PyCharm / \
        VS Code: dbgbox ide pycharm NAME); dbgbox forward NAME 6006 for TensorBoard and friends; \
        dbgbox down NAME when done. Step by step: image create, container create|list|rm, tunnel and \
        cleanup (with --login/--node they run docker on the node through the libssh2 chain).
        """,
        // `--version` prints DbgboxVersion.report instead (DbgboxMain): it asks the fast path,
        // which no other command without libssh2 should pay for.
        version: DbgboxVersion.current,
        // In the order of the story: the one-command flow first, then its steps.
        subcommands: [
            Keygen.self,
            Key.self,
            Up.self,
            Down.self,
            Status.self,
            Forward.self,
            Ide.self,
            Image.self,
            Container.self,
            TunnelCommand.self,
            Cleanup.self,
        ]
    )

    public init() {}
}

/// Runs dbgbox with the process arguments and exits. Every error becomes one line on stderr
/// (`dbgbox: error: …`) and a non-zero exit code; help and version print as usual.
public enum DbgboxMain {
    public static func main(_ arguments: [String] = Array(CommandLine.arguments.dropFirst())) -> Never {
        let context = CommandContext.live()
        // The fast path decides on first use (libssh2's initialization, --version, status); a
        // failed self-test, unlike a switch or a version it was not made for, is a fault: say so.
        FastPath.onSelfTestFailure { status in context.warn(DbgboxVersion.fastPathLine(status)) }
        exit(execute(arguments, context: context))
    }

    /// Parses `arguments`, runs the command with `context`, and returns the exit code; what the
    /// user sees goes to the context's stdout and stderr (tests pass sinks that keep it).
    public static func execute(_ arguments: [String], context: CommandContext) -> Int32 {
        do {
            let command = try Dbgbox.parseAsRoot(arguments)
            try TildePath.checkHome(environment: context.environment)
            if let command = command as? DbgboxCommand {
                try command.run(context)
            } else {
                var group = command
                try group.run()
            }
            return 0
        } catch let error as UserFacingError {
            return fail(error.description, code: error.exitCode, context: context)
        } catch let error as ExitCode {
            return error.rawValue
        } catch {
            let code = Dbgbox.exitCode(for: error)
            if code == .success {
                // --help, --version and friends; for --version, ArgumentParser's message is the
                // configured version.
                let message = Dbgbox.fullMessage(for: error)
                context.say(message == DbgboxVersion.current ? DbgboxVersion.report : message)
                return 0
            }
            // Argument errors: one line, with where to look for the right form.
            let message = Dbgbox.message(for: error)
                .split(separator: "\n").first.map(String.init) ?? "invalid arguments"
            let path = (["dbgbox"] + helpPath(arguments)).joined(separator: " ")
            return fail("\(message.replacingOccurrences(of: "Error: ", with: "")) (see `\(path) --help`)",
                        code: code.rawValue, context: context)
        }
    }


    static func fail(_ message: String, code: Int32, context: CommandContext) -> Int32 {
        context.error(message)
        return code == 0 ? 1 : code
    }

    /// The subcommand words the user typed, for pointing at the right --help.
    static func helpPath(_ arguments: [String]) -> [String] {
        var words: [String] = []
        var command: ParsableCommand.Type = Dbgbox.self
        for arg in arguments {
            guard let sub = command.configuration.subcommands.first(where: { $0._commandName == arg }) else { break }
            words.append(arg)
            command = sub
        }
        return words
    }
}
