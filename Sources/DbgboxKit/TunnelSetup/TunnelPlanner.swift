import Foundation

/// One hop after resolution: where it goes, how to authenticate, how to check its host key.
public struct PlannedHop: Sendable, Equatable {
    public var role: TunnelHopRole
    public var resolved: ResolvedHost
    public var hop: TunnelHop
    /// Key files that are passphrase-protected: the command asks for each before starting.
    public var encryptedKeys: [String]
    /// Identity files passed over, with why (RSA, legacy PEM): said when authentication fails.
    public var skippedKeys: [String]
}

/// A resolved tunnel: the engine's configuration plus what the command needs around it.
public struct TunnelPlan: Sendable {
    public var configuration: TunnelConfiguration
    public var login: PlannedHop
    public var node: PlannedHop

    public func hop(_ role: TunnelHopRole) -> PlannedHop { role == .login ? login : node }
}

/// Turns a `TunnelRequest` into a `TunnelPlan` as ssh would: command line, then ~/.ssh/config,
/// then defaults (`ssh -G` semantics, via `SSHConfigResolver`).
public struct TunnelPlanner: Sendable {
    public let resolver: SSHConfigResolver
    public let home: String
    public let fs: FileSystem
    public let environment: [String: String]

    public init(resolver: SSHConfigResolver, home: String, fs: FileSystem = LocalFileSystem(),
                environment: [String: String] = ProcessInfo.processInfo.environment) {
        self.resolver = resolver
        self.home = home
        self.fs = fs
        self.environment = environment
    }

    public func plan(_ request: TunnelRequest) throws -> TunnelPlan {
        guard (1...65535).contains(request.targetPort) else {
            throw TunnelSetupError.badPort("--port", request.targetPort)
        }
        let localPort = request.localPort ?? request.targetPort
        guard (1...65535).contains(localPort) else { throw TunnelSetupError.badPort("--local-port", localPort) }

        var login = try planHop(.login, spec: request.login,
                                explicitKeys: request.loginIdentityFiles + request.identityFiles, request: request)
        var node = try planHop(.node, spec: request.node,
                               explicitKeys: request.nodeIdentityFiles + request.identityFiles, request: request)
        login.resolved.warnings += Self.proxyWarnings(login.resolved, role: .login, loginSpec: request.login)
        node.resolved.warnings += Self.proxyWarnings(node.resolved, role: .node, loginSpec: request.login)
        let route: NodeRoute
        switch request.nodeVia {
        case .direct:
            route = .direct
        case .exec:
            // The login host's own ssh, with its own config and keys, carries the node session.
            // It gets the resolved address (a laptop alias means nothing there). The node's host
            // key is still checked here, end to end, by the node session.
            route = .sshW(to: node.hop)
        }
        let configuration = TunnelConfiguration(
            login: login.hop, node: node.hop, nodeVia: route,
            targetHost: "127.0.0.1", targetPort: request.targetPort,
            bindAddress: request.bindAddress, localPort: localPort,
            keepaliveInterval: login.resolved.serverAliveInterval > 0 ? login.resolved.serverAliveInterval : 15,
            connectTimeout: Double(login.resolved.connectTimeout ?? 15),
            deadPeerTimeout: Self.deadPeerTimeout(login.resolved))
        return TunnelPlan(configuration: configuration, login: login, node: node)
    }

    /// dbgbox builds the chain itself: a ProxyJump or ProxyCommand in the ssh config is not used,
    /// and the user hears so once instead of finding out from a failure. A node whose ProxyJump is
    /// the login host given (a common `Host gpu*` block) needs no word: that is dbgbox's route.
    static func proxyWarnings(_ resolved: ResolvedHost, role: TunnelHopRole, loginSpec: HostSpec) -> [String] {
        let jump = resolved.proxyJump.flatMap { $0.lowercased() == "none" ? nil : $0 }
        let command = resolved.proxyCommand.flatMap { $0.lowercased() == "none" ? nil : $0 }
        let name = resolved.originalHost
        switch role {
        case .login:
            if let jump {
                return ["ssh config gives ProxyJump \(condense(jump, limit: 80)) for the login host \(name); dbgbox does not use it and connects to \(resolved.hostName) directly"]
            }
            if command != nil {
                return ["ssh config gives a ProxyCommand for the login host \(name); dbgbox does not run it and connects to \(resolved.hostName) directly"]
            }
        case .node:
            if let jump {
                let viaLogin = jump.split(separator: ",").map(String.init) == [loginSpec.host] || jump == loginSpec.description
                return viaLogin ? [] : ["ssh config gives ProxyJump \(condense(jump, limit: 80)) for the node \(name); dbgbox does not use it and reaches the node through the login host \(loginSpec.host)"]
            }
            if command != nil {
                return ["ssh config gives a ProxyCommand for the node \(name); dbgbox does not run it and reaches the node through the login host \(loginSpec.host) (--node-via exec has the login host's own ssh reach it)"]
            }
        }
        return []
    }

    /// How long the login connection may go unanswered before it counts as dead: as OpenSSH,
    /// ServerAliveInterval × ServerAliveCountMax when the interval is set; 30 s otherwise.
    static func deadPeerTimeout(_ resolved: ResolvedHost) -> Double {
        guard resolved.serverAliveInterval > 0 else { return 30 }
        return Double(resolved.serverAliveInterval * max(1, resolved.serverAliveCountMax))
    }

    /// One hop on its own (e.g. `dbgbox key install` on the login host). With
    /// `allowNoCredentials`, a hop with no agent and no usable key is planned anyway: the caller
    /// falls back to a password.
    public func planSingleHop(_ spec: HostSpec, identityFiles: [String], sshConfigFile: String?,
                              allowNoCredentials: Bool) throws -> PlannedHop {
        let request = TunnelRequest(login: spec, node: spec, targetPort: 22, identityFiles: identityFiles,
                                    sshConfigFile: sshConfigFile)
        return try planHop(.login, spec: spec, explicitKeys: identityFiles, request: request,
                           allowNoCredentials: allowNoCredentials)
    }

    private func planHop(_ role: TunnelHopRole, spec: HostSpec, explicitKeys: [String],
                         request: TunnelRequest, allowNoCredentials: Bool = false) throws -> PlannedHop {
        let expanded = explicitKeys.map(expandTilde)
        let resolved = try resolver.resolve(
            spec: spec, overrides: SSHConfigOverrides(identityFiles: expanded, configFile: request.sshConfigFile))
        let label = role == .login ? "login host" : "node"
        var credentials: [TunnelCredential] = []
        var encrypted: [String] = []
        var skipped: [String] = []

        // The agent first, as ssh does; with IdentitiesOnly and explicit keys, only those keys.
        let agentSocket = resolved.identityAgent ?? environment["SSH_AUTH_SOCK"]
        let agentDisabled = resolved.identityAgent.map { $0.lowercased() == "none" } ?? false
        if let agentSocket, !agentSocket.isEmpty, !agentDisabled, !(resolved.identitiesOnly && !expanded.isEmpty) {
            credentials.append(.agent(socketPath: agentSocket))
        }

        // Explicit keys must be usable; config and default ones are skipped with a reason.
        var candidates = resolved.identityFiles
        let dbgboxKey = "\(home)/.ssh/id_dbgbox"
        if expanded.isEmpty && !resolved.identitiesOnly && !candidates.contains(dbgboxKey) {
            candidates.append(dbgboxKey)
        }
        for path in candidates {
            let isExplicit = expanded.contains(path)
            guard fs.exists(path) else {
                if isExplicit { throw TunnelSetupError.missingKey(label: label, path: path) }
                continue
            }
            // Read here with the bounded checker before libssh2 ever opens the path itself.
            let inspected: OpenSSHKeyFile
            do {
                inspected = try OpenSSHKeyFile.inspect(try fs.read(path, as: .privateKey))
            } catch let error as FileSystemError {
                if isExplicit { throw TunnelSetupError.unusableKey(label: label, path: path, reason: error.reason) }
                skipped.append("\(path): \(error.reason)")
                continue
            } catch {
                if isExplicit { throw TunnelSetupError.unusableKey(label: label, path: path, reason: "\(error)") }
                skipped.append("\(path): not a private key")
                continue
            }
            if let reason = inspected.unusableReason {
                if isExplicit { throw TunnelSetupError.unusableKey(label: label, path: path, reason: reason) }
                skipped.append("\(path): \(reason)")
                continue
            }
            if inspected.isEncrypted { encrypted.append(path) }
            credentials.append(.keyFile(path: path, passphrase: nil))
        }
        guard !credentials.isEmpty || allowNoCredentials else {
            throw TunnelSetupError.noCredentials(label: label, host: resolved.hostName, skipped: skipped)
        }
        let hop = TunnelHop(host: resolved.hostName, port: resolved.port, user: resolved.user,
                            credentials: credentials, label: label)
        return PlannedHop(role: role, resolved: resolved, hop: hop, encryptedKeys: encrypted, skippedKeys: skipped)
    }

    private func expandTilde(_ path: String) -> String {
        if path == "~" { return home }
        if path.hasPrefix("~/") { return home + path.dropFirst(1) }
        return path
    }
}

/// Problems found before any connection is made.
public enum TunnelSetupError: UserFacingError, Equatable {
    case badPort(String, Int)
    case missingKey(label: String, path: String)
    case unusableKey(label: String, path: String, reason: String)
    case noCredentials(label: String, host: String, skipped: [String])
    case missingPassphrase(path: String)

    public var description: String {
        switch self {
        case .badPort(let option, let port):
            return "\(option) \(port) is not a port: use 1-65535"
        case .missingKey(let label, let path):
            return "\(label): identity file \(path) does not exist: check the path, or make one with dbgbox keygen"
        case .unusableKey(let label, let path, let reason):
            return "\(label): cannot use \(path): \(reason)"
        case .noCredentials(let label, let host, let skipped):
            let why = skipped.isEmpty ? "no ssh-agent and no key file" : "skipped \(skipped.joined(separator: "; "))"
            return "\(label) \(host): nothing to authenticate with (\(why)): run dbgbox keygen and authorize ~/.ssh/id_dbgbox.pub there, or pass -i KEY"
        case .missingPassphrase(let path):
            return "\(path) is passphrase-protected and there is no terminal to ask on: load it into ssh-agent (ssh-add), or run dbgbox tunnel from a terminal"
        }
    }
}
