import ArgumentParser
import DbgboxKit
import Foundation

struct Ide: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ide",
        abstract: "Print what PyCharm or VS Code needs to use a dbgbox container's Python over SSH.",
        subcommands: [IdePyCharm.self, IdeVSCode.self])
}

struct IdePyCharm: ParsableCommand {
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

    func run() throws {
        if let debugServer { try DebugAttach.validatePort(debugServer, option: "--debug-server") }
        if let remoteRoot, !remoteRoot.hasPrefix("/") { throw IDEError.pathNotAbsolute(remoteRoot) }
        let target = try IDEWiring.target(name: name, key: key, userOptions: userOptions)
        if let debugServer {
            // Until dbgbox forwards ports, the laptop's port is the container's.
            let attach = DebugAttach(target: target, containerPort: debugServer, localPort: debugServer, remoteRoot: remoteRoot)
            print(attach.pycharmDebugServerInstructions(), terminator: "")
            return
        }
        print(IDEInstructions.pycharm(target), terminator: "")
    }
}

struct IdeVSCode: ParsableCommand {
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

    func run() throws {
        if let path, !path.hasPrefix("/") { throw IDEError.pathNotAbsolute(path) }
        if let remoteRoot, !remoteRoot.hasPrefix("/") { throw IDEError.pathNotAbsolute(remoteRoot) }
        if attach == nil, write != nil || remoteRoot != nil { throw ValidationError("--write and --remote-root go with --attach PORT") }
        if let attach {
            if path != nil || open { throw ValidationError("--attach prints a debugger configuration: leave out PATH and --open") }
            try DebugAttach.validatePort(attach, option: "--attach")
            let target = try IDEWiring.target(name: name, key: key, userOptions: userOptions)
            // Until dbgbox forwards ports, the laptop's port is the container's.
            let debug = DebugAttach(target: target, containerPort: attach, localPort: attach, remoteRoot: remoteRoot)
            let written = try write.map { try LaunchJSONFile(projectDirectory: ContainerWiring.absolute($0)).write(debug) }
            print(debug.vscodeInstructions(written: written), terminator: "")
            return
        }
        let target = try IDEWiring.target(name: name, key: key, userOptions: userOptions)
        let folder = path ?? target.home
        print(IDEInstructions.vscode(target, path: folder), terminator: "")
        guard open else { return }
        guard let alias = target.alias else { throw IDEError.noAliasToOpen(alias: target.expectedAlias) }
        let result: ProcessResult
        do {
            result = try LocalProcessRunner().stream(VSCodeLink.argv(alias: alias, path: folder), input: nil,
                                                     to: StandardStreamSink(.stderr))
        } catch ProcessError.notFound {
            throw IDEError.codeNotFound
        }
        guard result.succeeded else {
            throw DbgboxError("code exited with status \(result.exitCode): run the printed command yourself to see why")
        }
    }
}

/// Gathers an `IDETarget`: from a session record of `dbgbox up` when NAME names one (or, without
/// NAME, when there is exactly one), else from a local container (docker inspect, docker exec).
enum IDEWiring {
    static func target(name: String?, key: String?, userOptions: UserOptions) throws -> IDETarget {
        let user = try userOptions.identity()
        let home = ContainerWiring.dotHome(user, options: userOptions)
        var identityFile = key.map(ContainerWiring.absolute)
        if identityFile?.hasSuffix(".pub") == true { identityFile?.removeLast(4) }
        let resolver = SSHConfigResolver(home: home, userName: user.name, localHostName: ProcessInfo.processInfo.hostName,
                                         uid: user.uid)
        let pinnedPath = PinnedHostKeys.defaultPath(home: home)
        /// The alias when ssh's resolution of it reaches `port` (a config ssh cannot read gives no
        /// alias; ssh itself would then fail the same way).
        func alias(_ alias: String, port: Int) -> String? {
            let reaches = (try? resolver.resolve(spec: HostSpec(host: alias)))
                .map { IDETargetFinder.aliasReaches($0, port: UInt16(clamping: port)) } ?? false
            return reaches ? alias : nil
        }

        let manager = SessionWiring.manager(home: home)
        let prompter: Prompter = TerminalPrompter().isInteractive ? TerminalPrompter() : NoPrompter()
        let sessions = SessionIDETargetFinder(store: manager.store, liveness: manager.liveness, pinnedPath: pinnedPath) {
            record, pinned, identityFile in
            try ContainerSessionRunner(sessionName: record.name, port: UInt16(clamping: record.localPort), user: record.user,
                                       pinned: pinned, identityFile: identityFile, prompter: prompter)
        }
        if let record = try sessions.record(named: name) {
            return try sessions.target(for: record, identityFile: identityFile,
                                       alias: alias(record.alias, port: record.localPort))
        }

        // No session: a container of `dbgbox container create` on this machine.
        let finder = IDETargetFinder(docker: DockerClient(runner: LocalProcessRunner()))
        let container: DockerContainer
        do {
            container = try finder.container(named: name, user: user)
        } catch DockerError.notInstalled {
            throw IDEError.noSessionNoDocker(user: user.name, name: name)
        }
        let port = container.labels[ContainerSpec.labelPort].flatMap { Int($0) } ?? 0
        let containerAlias = ContainerSpec.hostKeyAlias(for: container.name)
        let fingerprint = (try? PinnedHostKeys(path: pinnedPath).key(for: containerAlias))??.fingerprintSHA256
        return try finder.target(for: container, home: user.home,
                                 identityFile: identityFile ?? "\(home)/.ssh/id_dbgbox",
                                 alias: alias(containerAlias, port: port), hostKeyFingerprint: fingerprint)
    }
}
