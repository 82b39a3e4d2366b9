import ArgumentParser
import DbgboxKit
import Foundation

/// The root command. Subcommands live one per file in this module.
public struct Dbgbox: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "dbgbox",
        abstract: "Attach your laptop's IDE to a Docker container on a cluster GPU node.",
        discussion: """
        From the laptop, in one command: dbgbox keygen; dbgbox up --login LOGIN --node NODE --gpu V \
        --port auto --base IMAGE; then ssh dbgbox-NAME (or PyCharm / VS Code: dbgbox ide pycharm NAME); \
        dbgbox down NAME when done. Step by step: image create, container create|list|rm, tunnel and \
        cleanup (with --login/--node they run docker on the node through the libssh2 chain).
        """,
        version: DbgboxVersion.current,
        // In the order of the story: the one-command flow first, then its steps.
        subcommands: [
            Keygen.self,
            Key.self,
            Up.self,
            Down.self,
            Status.self,
            Ide.self,
            Image.self,
            Container.self,
            TunnelCommand.self,
            Cleanup.self,
        ]
    )

    public init() {}
}

public enum DbgboxVersion {
    public static let current = "0.1.0"
}

/// Runs dbgbox with the process arguments and exits. Every error becomes one line on stderr
/// (`dbgbox: error: …`) and a non-zero exit code; help and version print as usual.
public enum DbgboxMain {
    public static func main(_ arguments: [String] = Array(CommandLine.arguments.dropFirst())) -> Never {
        do {
            var command = try Dbgbox.parseAsRoot(arguments)
            try command.run()
            exit(0)
        } catch let error as UserFacingError {
            fail(error.description, code: error.exitCode)
        } catch let error as ExitCode {
            exit(error.rawValue)
        } catch {
            let code = Dbgbox.exitCode(for: error)
            if code == .success {
                // --help, --version and friends.
                print(Dbgbox.fullMessage(for: error))
                exit(0)
            }
            // Argument errors: one line, with where to look for the right form.
            let message = Dbgbox.message(for: error)
                .split(separator: "\n").first.map(String.init) ?? "invalid arguments"
            let path = (["dbgbox"] + helpPath(arguments)).joined(separator: " ")
            fail("\(message.replacingOccurrences(of: "Error: ", with: "")) (see `\(path) --help`)",
                 code: code.rawValue)
        }
    }

    static func fail(_ message: String, code: Int32) -> Never {
        FileHandle.standardError.write(Data("dbgbox: error: \(message)\n".utf8))
        exit(code == 0 ? 1 : code)
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
