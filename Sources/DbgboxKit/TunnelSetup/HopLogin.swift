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

extension HopLogin {
    /// Logs in as a person at a terminal would (`dbgbox key install`, before any key is authorized):
    /// the hop's agent and keys (a passphrase asked through `prompter`), then, when `prompter` can
    /// ask, the password if the server offers "password", and keyboard-interactive (PAM's password,
    /// one-time codes) if it offers that and the password was not offered or failed. Each
    /// keyboard-interactive prompt is asked through `prompter`, echoed only when the server says so.
    /// Throws one line naming what was tried and what the server offers.
    public static func logIn(_ session: SSHSession, hop: TunnelHop, encryptedKeys: [String] = [],
                             prompter: Prompter, name: String) throws {
        let failure = tryCredentials(session, hop: hop) { path in
            encryptedKeys.contains(path) && prompter.isInteractive
                ? prompter.secret("Enter passphrase for key '\(path)': ") : nil
        }
        guard var tried = failure?.tried else { return }
        let methods = session.authMethods(user: hop.user)
        if session.isAuthenticated { return }
        let account = "\(hop.user)@\(hop.host)"
        if prompter.isInteractive {
            if methods.contains("password"), let password = prompter.secret("\(account)'s password: ") {
                tried.append("password")
                if (try? session.authenticate(user: hop.user, password: password)) != nil { return }
            }
            if methods.contains("keyboard-interactive") {
                tried.append("keyboard-interactive")
                let answered: Void? = try? session.authenticate(user: hop.user) { challenge in
                    answer(challenge, account: account, prompter: prompter)
                }
                if answered != nil { return }
            }
        }
        let offered = methods.isEmpty ? "" : " (the host offers: \(methods.joined(separator: ", ")))"
        let advice = prompter.isInteractive
            ? "pass -i KEY with a key the host accepts, or check the password"
            : "pass -i KEY, or run from a terminal to be asked for the password"
        throw DbgboxError("\(name): authentication failed for \(hop.user) with \(tried.isEmpty ? "nothing" : tried.joined(separator: ", "))\(offered): \(advice)")
    }

    /// Asks one keyboard-interactive round through `prompter`, as ssh shows it: "(user@host) " before
    /// each prompt, the server's instruction before the first. nil when a prompt gets no answer.
    static func answer(_ challenge: KeyboardInteractiveChallenge, account: String, prompter: Prompter) -> [String]? {
        var answers: [String] = []
        for (i, prompt) in challenge.prompts.enumerated() {
            let heading = i == 0 && !challenge.instruction.isEmpty ? challenge.instruction + "\n" : ""
            guard let answer = prompter.answer("\(heading)(\(account)) \(prompt.text)", echo: prompt.echo) else { return nil }
            answers.append(answer)
        }
        return answers
    }
}
