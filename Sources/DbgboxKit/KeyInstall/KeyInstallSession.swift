import Foundation
import SSH

/// `dbgbox key install` over libssh2: one session to the login host (its host key checked as for
/// the tunnel), a login, and `KeyInstaller.command` with the key line on stdin.
public struct KeyInstallSession {
    public var context: CommandContext

    public init(context: CommandContext) {
        self.context = context
    }

    /// What was done, for the one line the command prints.
    public struct Result: Sendable, Equatable {
        public var outcome: KeyInstaller.Outcome
        /// The public key file (absolute).
        public var keyPath: String
        public var user: String
        public var host: String
    }

    /// Installs `key` (default `~/.ssh/id_dbgbox.pub`) for the login user of `login`, logging in
    /// with `identityFiles` (`-i`), the host key checked against `knownHosts` (or ssh's file),
    /// ssh config from `sshConfig` (or ~/.ssh/config).
    public func install(login: String, key: String?, identityFiles: [String], acceptNew: Bool,
                        knownHosts: String?, sshConfig: String?) throws -> Result {
        let me = try context.me()
        let home = try context.home()
        let keyPath = TildePath.expand(key ?? "~/.ssh/id_dbgbox.pub", home: home)
        guard context.files.exists(keyPath) else {
            throw DbgboxError("public key \(keyPath) does not exist: run dbgbox keygen, or pass --key PUBFILE")
        }
        let line = try KeyInstaller.keyLine(from: try context.files.read(keyPath, as: .publicKey), path: keyPath)

        let resolver = SSHConfigResolver(home: me.home, userName: me.name, localHostName: context.hostName,
                                         environment: context.environment)
        let planner = TunnelPlanner(resolver: resolver, home: me.home, environment: context.environment)
        let hop = try planner.planSingleHop(try HostSpec(parsing: login),
                                            identityFiles: identityFiles.map { TildePath.expand($0, home: home) },
                                            sshConfigFile: sshConfig, allowNoCredentials: true)
        let checker = HostKeyChecker(prompter: context.prompter, knownHostsOverride: knownHosts, acceptNew: acceptNew)
        let name = "\(hop.hop.label) \(hop.hop.endpoint)"

        let session: SSHSession
        do {
            session = try SSHSession(host: hop.hop.host, port: UInt16(clamping: hop.hop.port))
        } catch {
            throw DbgboxError("\(name): \(error)")
        }
        defer { session.close() }
        guard let hostKey = session.hostKey else { throw DbgboxError("\(name): no host key presented") }
        do { try checker.check(hop, key: hostKey) } catch { throw DbgboxError("\(name): host key not accepted: \(error)") }

        try HopLogin.logIn(session, hop: hop.hop, encryptedKeys: hop.encryptedKeys, prompter: context.prompter, name: name)
        var out = Data()
        var err = Data()
        let status = try session.execStreaming(KeyInstaller.command, input: Data((line + "\n").utf8),
                                               onStdout: { out.append($0) }, onStderr: { err.append($0) })
        guard status.code == 0, let outcome = KeyInstaller.outcome(out) else {
            let why = String(decoding: err, as: UTF8.self).split(separator: "\n").last.map(String.init) ?? "exit \(status.code)"
            throw DbgboxError("\(name): could not update ~/.ssh/authorized_keys: \(why)")
        }
        return Result(outcome: outcome, keyPath: keyPath, user: hop.hop.user, host: hop.hop.host)
    }
}
