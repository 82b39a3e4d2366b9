import Foundation

/// The chain laptop → login host → node as every command that takes --login/--node opens it:
/// both hops resolved as ssh would, passphrases asked once per key, config warnings printed.
public enum ChainSetup {
    /// Resolves both hops of `request` (ssh config, keys), asks for key passphrases and warns about
    /// the ssh config; returns the plan and the user running dbgbox.
    public static func plan(_ request: TunnelRequest, context: CommandContext) throws -> (TunnelPlan, UserIdentity) {
        let me = try context.me()
        // ssh expands ~ from the passwd entry, not $HOME; so does the resolver.
        let resolver = SSHConfigResolver(home: me.home, userName: me.name, localHostName: context.hostName,
                                         environment: context.environment)
        var plan = try TunnelPlanner(resolver: resolver, home: me.home, environment: context.environment).plan(request)
        try askPassphrases(&plan, prompter: context.prompter)
        for warning in plan.login.resolved.warnings + plan.node.resolved.warnings { context.warn(warning) }
        return (plan, me)
    }

    /// The host key checker of a chain: known_hosts (or `--known-hosts`), `--accept-new`.
    public static func checker(_ request: TunnelRequest, context: CommandContext) -> HostKeyChecker {
        HostKeyChecker(prompter: context.prompter, knownHostsOverride: request.knownHostsFile, acceptNew: request.acceptNew)
    }

    /// The node as a `NodeEnvironment`: commands run there over the chain (close it when done).
    @Sendable
    public static func open(_ request: TunnelRequest, context: CommandContext) throws -> NodeEnvironment {
        let (plan, _) = try plan(request, context: context)
        return .remote(try RemoteProcessRunner(plan: plan, checker: checker(request, context: context)))
    }

    /// Asks for the passphrase of each encrypted key; without a terminal such keys are dropped
    /// when something else can authenticate, and refused otherwise.
    public static func askPassphrases(_ plan: inout TunnelPlan, prompter: Prompter) throws {
        var asked: [String: String] = [:]
        func fill(_ hop: inout PlannedHop) throws {
            var credentials: [TunnelCredential] = []
            for credential in hop.hop.credentials {
                guard case .keyFile(let path, _) = credential, hop.encryptedKeys.contains(path) else {
                    credentials.append(credential)
                    continue
                }
                if let known = asked[path] {
                    credentials.append(.keyFile(path: path, passphrase: known))
                } else if prompter.isInteractive, let secret = prompter.secret("Enter passphrase for key '\(path)': ") {
                    asked[path] = secret
                    credentials.append(.keyFile(path: path, passphrase: secret))
                }
            }
            if credentials.isEmpty, let first = hop.encryptedKeys.first {
                throw TunnelSetupError.missingPassphrase(path: first)
            }
            hop.hop.credentials = credentials
        }
        try fill(&plan.login)
        try fill(&plan.node)
        plan.configuration.login = plan.login.hop
        plan.configuration.node = plan.node.hop
    }
}
