import SSH

/// Logs a blocking `SSHSession` in with a hop's credentials, in the hop's order (agent, then
/// key files): the one loop for every blocking session (remote commands, `key install`).
public enum HopLogin {
    public struct Failure: Error, Equatable {
        /// "ssh-agent" and key paths, in the order tried.
        public var tried: [String]
        /// The last libssh2 error text ("" when nothing was tried).
        public var lastError: String
    }

    /// Returns nil when logged in. `passphrase` is asked for a key file whose credential has none
    /// (return nil to try it without).
    public static func tryCredentials(_ session: SSHSession, hop: TunnelHop,
                                      passphrase: (String) -> String? = { _ in nil }) -> Failure? {
        var failure = Failure(tried: [], lastError: "")
        for credential in hop.credentials {
            switch credential {
            case .agent(let socket):
                failure.tried.append("ssh-agent")
                do {
                    if try session.authenticateWithAgent(user: hop.user, socketPath: socket) { return nil }
                } catch { failure.lastError = "\(error)" }
            case .keyFile(let path, let given):
                failure.tried.append(path)
                do {
                    try session.authenticate(user: hop.user, privateKeyPath: path, passphrase: given ?? passphrase(path))
                    return nil
                } catch { failure.lastError = "\(error)" }
            }
        }
        return failure
    }
}
