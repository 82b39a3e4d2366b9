import Foundation

/// Gathers an `IDETarget` for `dbgbox ide`: from a session record of `dbgbox up` when NAME names
/// one (or, without NAME, when there is exactly one), else from a local container (docker
/// inspect, docker exec).
public struct IDETargetResolver {
    public var context: CommandContext

    public init(context: CommandContext) {
        self.context = context
    }

    /// `key`: the private key the IDE logs in with (a `.pub` path names its private half);
    /// `requestedUser`: `--user` (root only).
    public func target(name: String?, key: String?, requestedUser: String?) throws -> IDETarget {
        let user = try context.identity(requested: requestedUser)
        let home = context.dotHome(for: user, requestedUser: requestedUser, remote: false)
        var identityFile = key.map(context.absolute)
        if identityFile?.hasSuffix(".pub") == true { identityFile?.removeLast(4) }
        let resolver = SSHConfigResolver(home: home, userName: user.name, localHostName: context.hostName,
                                         uid: user.uid, environment: context.environment)
        let pinnedPath = PinnedHostKeys.defaultPath(home: home)
        /// The alias when ssh's resolution of it reaches `port` (a config ssh cannot read gives no
        /// alias; ssh itself would then fail the same way).
        func alias(_ alias: String, port: Int) -> String? {
            let reaches = (try? resolver.resolve(spec: HostSpec(host: alias)))
                .map { IDETargetFinder.aliasReaches($0, port: UInt16(clamping: port)) } ?? false
            return reaches ? alias : nil
        }

        let manager = try context.sessionManager(home: home)
        let prompter = context.prompter
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
        let finder = IDETargetFinder(docker: DockerClient(runner: context.runner))
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

    /// `dbgbox ide vscode --open`: runs `code` with the printed arguments, its output on stderr.
    public func openVSCode(alias: String, folder: String) throws {
        let result: ProcessResult
        do {
            result = try context.runner.stream(VSCodeLink.argv(alias: alias, path: folder), input: nil, to: context.stderr)
        } catch ProcessError.notFound {
            throw IDEError.codeNotFound
        }
        guard result.succeeded else {
            throw DbgboxError("code exited with status \(result.exitCode): run the printed command yourself to see why")
        }
    }
}
