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
        dbgbox container create. With --debug-server PORT: the values for PyCharm's Python Debug \
        Server instead, with the reverse forward and the settrace line. Example: dbgbox ide pycharm alice_01234
        """)

    @Argument(help: "The session or container (default: your only session, else your only local container).")
    var name: String?

    @Option(help: ArgumentHelp("The private key the IDE logs in with (default: the session's, else ~/.ssh/id_dbgbox).", valueName: "file"))
    var key: String?

    @Option(help: ArgumentHelp("Print the values for PyCharm's Python Debug Server on this port (the container reaches it on its 127.0.0.1) instead.", valueName: "port"))
    var debugServer: Int?

    @Option(help: ArgumentHelp("With --debug-server: map your project folder to this folder in the container too.", valueName: "path"))
    var remoteRoot: String?

    @OptionGroup var userOptions: UserOptions

    func run(_ context: CommandContext) throws {
        if let debugServer { try DebugAttach.validatePort(debugServer, option: "--debug-server") }
        if let remoteRoot, !remoteRoot.hasPrefix("/") { throw IDEError.pathNotAbsolute(remoteRoot) }
        let target = try IDETargetResolver(context: context).target(name: name, key: key, requestedUser: userOptions.user)
        if let debugServer {
            // The session's reverse of the port when it has one (issue 15), else the same port here.
            let attach = DebugAttach.session(target, containerPort: debugServer, direction: .reverse, remoteRoot: remoteRoot,
                                             store: try? context.sessionManager(home: try context.home()).store)
            context.write(attach.pycharmDebugServerInstructions())
            return
        }
        context.write(IDEInstructions.pycharm(target))
    }
}

struct IdeVSCode: DbgboxCommand {
    static let configuration = CommandConfiguration(
        commandName: "vscode",
        abstract: "Print (or with --open run) the `code --folder-uri` command for a dbgbox container.",
        discussion: """
        NAME as for dbgbox ide pycharm. With --attach PORT: a debugpy "attach" configuration (path mappings \
        from the session's mounts) and the command that starts a program under debugpy in the container; \
        --write DIR merges it into DIR/.vscode/launch.json, keeping every other byte. \
        Examples: dbgbox ide vscode alice_01234 /home/alice/project --open; dbgbox ide vscode alice_01234 --attach 5678 --write .
        """)

    @Argument(help: "The session or container (default: your only session, else your only local container).")
    var name: String?

    @Argument(help: "The folder to open inside the container (default: your home).")
    var path: String?

    @Flag(help: "Run `code` with the printed arguments.")
    var open = false

    @Option(help: ArgumentHelp("The private key the IDE logs in with (default: the session's, else ~/.ssh/id_dbgbox).", valueName: "file"))
    var key: String?

    @Option(help: ArgumentHelp("Print a debugpy \"attach\" configuration for a program listening on this port in the container instead.", valueName: "port"))
    var attach: Int?

    @Option(help: ArgumentHelp("With --attach: add the configuration to DIR/.vscode/launch.json (or replace its earlier one), keeping the rest of the file.", valueName: "dir"))
    var write: String?

    @Option(help: ArgumentHelp("With --attach: map the open folder (${workspaceFolder}) to this folder in the container too.", valueName: "path"))
    var remoteRoot: String?

    @OptionGroup var userOptions: UserOptions

    func run(_ context: CommandContext) throws {
        if let path, !path.hasPrefix("/") { throw IDEError.pathNotAbsolute(path) }
        if let remoteRoot, !remoteRoot.hasPrefix("/") { throw IDEError.pathNotAbsolute(remoteRoot) }
        if attach == nil, write != nil || remoteRoot != nil { throw ValidationError("--write and --remote-root go with --attach PORT") }
        let ide = IDETargetResolver(context: context)
        if let attach {
            if path != nil || open { throw ValidationError("--attach prints a debugger configuration: leave out PATH and --open") }
            try DebugAttach.validatePort(attach, option: "--attach")
            let target = try ide.target(name: name, key: key, requestedUser: userOptions.user)
            // The session's forward of the port when it has one (issue 15), else the same port here.
            let debug = DebugAttach.session(target, containerPort: attach, direction: .forward, remoteRoot: remoteRoot,
                                            store: try? context.sessionManager(home: try context.home()).store)
            let written = try write.map { try LaunchJSONFile(projectDirectory: context.absolute($0)).write(debug) }
            context.write(debug.vscodeInstructions(written: written))
            return
        }
        let target = try ide.target(name: name, key: key, requestedUser: userOptions.user)
        let folder = path ?? target.home
        context.write(IDEInstructions.vscode(target, path: folder))
        guard open else { return }
        guard let alias = target.alias else { throw IDEError.noAliasToOpen(alias: target.expectedAlias) }
        try ide.openVSCode(alias: alias, folder: folder)
    }
}
