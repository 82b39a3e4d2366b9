import ArgumentParser
import DbgboxKit

struct Ide: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ide",
        abstract: "Print what PyCharm or VS Code needs to use a dbgbox container's Python over SSH.",
        subcommands: [IdePyCharm.self, IdeVSCode.self])
}

struct IdePyCharm: DbgboxCommand {
    static let configuration = CommandConfiguration(
        commandName: "pycharm",
        abstract: "Print the values for PyCharm's SSH interpreter dialog.",
        discussion: """
        NAME is a session of dbgbox up (see dbgbox status): its values come from the session record, and \
        Python is looked for in the container through the session's tunnel, so no docker is needed \
        here. Without NAME: your only session; with no session, your only local container of \
        dbgbox container create. Example: dbgbox ide pycharm alice_01234
        """)

    @Argument(help: "The session or container (default: your only session, else your only local container).")
    var name: String?

    @Option(help: ArgumentHelp("The private key the IDE logs in with (default: the session's, else ~/.ssh/id_dbgbox).", valueName: "file"))
    var key: String?

    @OptionGroup var userOptions: UserOptions

    func run(_ context: CommandContext) throws {
        let target = try IDETargetResolver(context: context).target(name: name, key: key, requestedUser: userOptions.user)
        context.write(IDEInstructions.pycharm(target))
    }
}

struct IdeVSCode: DbgboxCommand {
    static let configuration = CommandConfiguration(
        commandName: "vscode",
        abstract: "Print (or with --open run) the `code --folder-uri` command for a dbgbox container.",
        discussion: "NAME as for dbgbox ide pycharm. Example: dbgbox ide vscode alice_01234 /home/alice/project --open")

    @Argument(help: "The session or container (default: your only session, else your only local container).")
    var name: String?

    @Argument(help: "The folder to open inside the container (default: your home).")
    var path: String?

    @Flag(help: "Run `code` with the printed arguments.")
    var open = false

    @Option(help: ArgumentHelp("The private key the IDE logs in with (default: the session's, else ~/.ssh/id_dbgbox).", valueName: "file"))
    var key: String?

    @OptionGroup var userOptions: UserOptions

    func run(_ context: CommandContext) throws {
        if let path, !path.hasPrefix("/") { throw IDEError.pathNotAbsolute(path) }
        let ide = IDETargetResolver(context: context)
        let target = try ide.target(name: name, key: key, requestedUser: userOptions.user)
        let folder = path ?? target.home
        context.write(IDEInstructions.vscode(target, path: folder))
        guard open else { return }
        guard let alias = target.alias else { throw IDEError.noAliasToOpen(alias: target.expectedAlias) }
        try ide.openVSCode(alias: alias, folder: folder)
    }
}
