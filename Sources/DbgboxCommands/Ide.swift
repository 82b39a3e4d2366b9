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
        discussion: "Without NAME, uses your only dbgbox container. Example: dbgbox ide pycharm alice_01234")

    @Argument(help: "The container (default: your only dbgbox container).")
    var name: String?

    @Option(help: ArgumentHelp("The private key the IDE logs in with (default: ~/.ssh/id_dbgbox).", valueName: "file"))
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
        discussion: "Example: dbgbox ide vscode alice_01234 /home/alice/project --open")

    @Argument(help: "The container (default: your only dbgbox container).")
    var name: String?

    @Argument(help: "The folder to open inside the container (default: your home).")
    var path: String?

    @Flag(help: "Run `code` with the printed arguments.")
    var open = false

    @Option(help: ArgumentHelp("The private key the IDE logs in with (default: ~/.ssh/id_dbgbox).", valueName: "file"))
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

/// Gathers an `IDETarget` for a local container (docker inspect, docker exec). A session record
/// of `dbgbox up` can build the same struct instead.
enum IDEWiring {
    static func target(name: String?, key: String?, userOptions: UserOptions) throws -> IDETarget {
        let user = try userOptions.identity()
        let home = ContainerWiring.dotHome(user, options: userOptions)
        let finder = IDETargetFinder(docker: DockerClient(runner: LocalProcessRunner()))
        let container = try finder.container(named: name, user: user)
        var identityFile = key.map(ContainerWiring.absolute) ?? "\(home)/.ssh/id_dbgbox"
        if identityFile.hasSuffix(".pub") { identityFile.removeLast(4) }

        let alias = ContainerSpec.hostKeyAlias(for: container.name)
        let port = container.labels[ContainerSpec.labelPort].flatMap { UInt16($0) } ?? 0
        let resolver = SSHConfigResolver(home: home, userName: user.name, localHostName: ProcessInfo.processInfo.hostName,
                                         uid: user.uid)
        // A config ssh cannot read gives no alias; ssh itself would then fail the same way.
        let reaches = (try? resolver.resolve(spec: HostSpec(host: alias))).map { IDETargetFinder.aliasReaches($0, port: port) } ?? false
        let fingerprint = (try? PinnedHostKeys(path: PinnedHostKeys.defaultPath(home: home)).key(for: alias))??.fingerprintSHA256
        return try finder.target(for: container, home: user.home, identityFile: identityFile,
                                 alias: reaches ? alias : nil, hostKeyFingerprint: fingerprint)
    }
}
