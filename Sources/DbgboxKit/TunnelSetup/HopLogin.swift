import SSH

/// The blocking sessions' entry points to `HopAuthenticator` (remote commands, `key install`, the
/// container runner), with the failure texts they had.
public enum HopLogin {
    public struct Failure: Error, Equatable {
        /// "ssh-agent" and key paths, in the order tried.
        public var tried: [String]
        /// The last libssh2 error text ("" when nothing was tried).
        public var lastError: String
    }

    /// The hop's credentials only. Returns nil when logged in. `passphrase` is asked for an
    /// encrypted key file whose credential has none (return nil to try it without).
    public static func tryCredentials(_ session: SSHSession, hop: TunnelHop,
                                      passphrase: @escaping (String) -> String? = { _ in nil }) -> Failure? {
        let authenticator = HopAuthenticator(hop: hop, allowsPassword: false, passphrase: passphrase)
        do {
            guard let failure = try authenticator.logIn(session) else { return nil }
            return Failure(tried: failure.tried, lastError: failure.lastError)
        } catch {
            return Failure(tried: hop.credentials.map(\.label), lastError: "\(error)")
        }
    }

    /// Logs in as a person at a terminal would (`dbgbox key install`, before any key is authorized):
    /// `HopAuthenticator` with `prompter` asking for passphrases, the password and
    /// keyboard-interactive answers. Throws one line naming what was tried and what the server offers.
    public static func logIn(_ session: SSHSession, hop: TunnelHop, encryptedKeys: [String] = [],
                             prompter: Prompter, name: String) throws {
        let authenticator = HopAuthenticator(hop: hop, prompter: prompter, encryptedKeys: encryptedKeys)
        guard let failure = try authenticator.logIn(session) else { return }
        let tried = failure.tried
        let offered = failure.offered.isEmpty ? "" : " (the host offers: \(failure.offered.joined(separator: ", ")))"
        let advice = prompter.isInteractive
            ? "pass -i KEY with a key the host accepts, or check the password"
            : "pass -i KEY, or run from a terminal to be asked for the password"
        throw DbgboxError("\(name): authentication failed for \(hop.user) with \(tried.isEmpty ? "nothing" : tried.joined(separator: ", "))\(offered): \(advice)")
    }

    /// One keyboard-interactive round asked through `prompter` (see `HopAuthenticator.answer`).
    static func answer(_ challenge: KeyboardInteractiveChallenge, account: String, prompter: Prompter) -> [String]? {
        HopAuthenticator.answer(challenge, account: account, prompter: prompter)
    }
}

extension TunnelCredential {
    /// "ssh-agent" or the key's path.
    var label: String {
        switch self {
        case .agent: return "ssh-agent"
        case .keyFile(let path, _): return path
        }
    }
}
