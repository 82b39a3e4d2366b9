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
        dbgbox container create. Example: dbgbox ide pycharm alice_01234
        """)

    @Argument(help: "The session or container (default: your only session, else your only local container).")
    var name: String?

    @Option(help: ArgumentHelp("The private key the IDE logs in with (default: the session's, else ~/.ssh/id_dbgbox).", valueName: "file"))
    var key: String?

    @OptionGroup var userOptions: UserOptions

    func run() throws {
        let target = try IDEWiring.target(name: name, key: key, userOptions: userOptions)
        print(IDEInstructions.pycharm(target), terminator: "")
    }
}

struct IdeVSCode: ParsableCommand {
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

    func run() throws {
        if let path, !path.hasPrefix("/") { throw IDEError.pathNotAbsolute(path) }
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
