import Foundation
import SSH

/// Logs a session in on one hop: the one authenticator for every hop (the tunnel's login and node
/// hops, key install, the container runner) and every session type (`SSHUserAuth`: the blocking
/// `SSHSession` and the tunnel's `NonBlockingSSHSession`).
///
/// As in swift-nio-ssh, host keys and user authentication are separate, small delegates: the host
/// key is checked before this runs (`HostKeyChecker`, `TunnelDelegate.verifyHostKey`); here the
/// `Prompter` is the user-auth delegate, asked for what the hop's credentials do not hold.
///
/// Order: the hop's credentials as given (ssh-agent, identity files; an encrypted key without a
/// passphrase gets one asked through the prompter), then, only when the prompter can ask
/// (`isInteractive`) and `allowsPassword`, the password if the server offers "password", and
/// keyboard-interactive (PAM's password, one-time codes) if it offers that and the password was
/// not offered or failed. With `NoPrompter` (the tunnel, which runs unattended and reconnects on
/// its own) only the credentials are tried.
public struct HopAuthenticator {
    public var hop: TunnelHop
    public var prompter: Prompter
    /// Key files known to be encrypted (asked a passphrase for, as are those whose file says so).
    public var encryptedKeys: [String]
    /// Whether password and keyboard-interactive may follow the credentials (when the prompter
    /// can ask); also whether the server is asked what it offers, for the failure's message.
    public var allowsPassword: Bool
    /// Asked for the passphrase of an encrypted key file (its path) whose credential has none; nil
    /// tries it without. By default the prompter asks, when it can.
    public var passphrase: (String) -> String?

    public init(hop: TunnelHop, prompter: Prompter = NoPrompter(), encryptedKeys: [String] = [], allowsPassword: Bool = true,
                passphrase: ((String) -> String?)? = nil) {
        self.hop = hop
        self.prompter = prompter
        self.encryptedKeys = encryptedKeys
        self.allowsPassword = allowsPassword
        self.passphrase = passphrase ?? { path in
            prompter.isInteractive ? prompter.secret("Enter passphrase for key '\(path)': ") : nil
        }
    }

    /// One way tried, and what became of it.
    public struct Attempt: Sendable, Equatable {
        public enum Method: Sendable, Equatable {
            case agent
            case keyFile(path: String)
            case password
            case keyboardInteractive
        }
        public var method: Method
        /// Why it did not get in, when more is known than "refused" (e.g. "2 keys",
        /// "encrypted, no passphrase given", "unusable: ...").
        public var note: String?

        /// "ssh-agent", the key's path, "password", "keyboard-interactive".
        public var label: String {
            switch method {
            case .agent: return "ssh-agent"
            case .keyFile(let path): return path
            case .password: return "password"
            case .keyboardInteractive: return "keyboard-interactive"
            }
        }
    }

    /// Every way failed.
    public struct Failure: Error, Sendable, Equatable {
        /// In the order tried.
        public var attempts: [Attempt]
        /// The last libssh2 error text ("" when nothing was tried).
        public var lastError: String
        /// Key files that cannot work as they are, with the fix (`OpenSSHKeyFile.unusableReason`).
        public var advice: [String]
        /// The methods the server offers (asked only with `allowsPassword`).
        public var offered: [String]

        /// The labels of the attempts.
        public var tried: [String] { attempts.map(\.label) }
    }

    /// Logs `session` in. Returns nil when logged in, the failure when every way was refused.
    /// Throws when the connection failed underneath (an `SSHError` of kind `.disconnected` or
    /// `.timeout`, or the session's waiter's error): nothing else can be tried then.
    public func logIn(_ session: SSHUserAuth) throws -> Failure? {
        var failure = Failure(attempts: [], lastError: "", advice: [], offered: [])
        func refused(_ attempt: Attempt, _ error: Error) throws {
            if let error = error as? SSHError {
                guard error.kind != .disconnected && error.kind != .timeout else { throw error }
            } else {
                throw error
            }
            failure.attempts.append(attempt)
            failure.lastError = "\(error)"
        }
        for credential in hop.credentials {
            switch credential {
            case .agent(let path):
                let socket = path ?? ProcessInfo.processInfo.environment["SSH_AUTH_SOCK"]
                guard let socket, !socket.isEmpty else { continue }
                do {
                    let offered = try session.agentLogin(user: hop.user, socketPath: socket)
                    if session.isAuthenticated { return nil }
                    failure.attempts.append(Attempt(method: .agent, note: "\(offered.count) key\(offered.count == 1 ? "" : "s")"))
                } catch let error as SSHError where error.kind != .disconnected && error.kind != .timeout {
                    failure.attempts.append(Attempt(method: .agent, note: "unusable: \(error.message)"))
                    failure.lastError = "\(error)"
                }
            case .keyFile(let path, let given):
                let attempt = Attempt(method: .keyFile(path: path))
                // The bounded checker reads the key before libssh2 opens the path itself.
                let data: Data
                do { data = try LocalFileSystem().read(path, as: .privateKey) } catch {
                    let reason = FileSystemError.reason(error, otherwise: "cannot read the file")
                    failure.attempts.append(Attempt(method: attempt.method, note: reason))
                    failure.lastError = "\(path): \(reason)"
                    continue
                }
                let info = try? OpenSSHKeyFile.inspect(data)
                if let reason = info?.unusableReason { failure.advice.append("\(path): \(reason)") }
                let encrypted = info?.isEncrypted ?? false
                var passphrase = given
                if passphrase == nil && (encrypted || encryptedKeys.contains(path)) { passphrase = self.passphrase(path) }
                do {
                    try session.authenticate(user: hop.user, privateKeyPath: path, passphrase: passphrase)
                    return nil
                } catch let error as SSHError where error.kind == .keyFile {
                    let note = encrypted ? (passphrase == nil ? "encrypted, no passphrase given" : "wrong passphrase")
                                         : "unusable key file: \(error.message)"
                    try refused(Attempt(method: attempt.method, note: note), error)
                } catch {
                    try refused(attempt, error)
                }
            }
        }
        guard allowsPassword else { return failure }
        // Asked also when nobody can be asked: the failure names what the host offers.
        failure.offered = (try? session.offeredMethods(user: hop.user)) ?? []
        if session.isAuthenticated { return nil }
        guard prompter.isInteractive else { return failure }
        let account = "\(hop.user)@\(hop.host)"
        if failure.offered.contains("password"), let password = prompter.secret("\(account)'s password: ") {
            do {
                try session.authenticate(user: hop.user, password: password)
                return nil
            } catch { try refused(Attempt(method: .password), error) }
        }
        if failure.offered.contains("keyboard-interactive") {
            do {
                try session.authenticate(user: hop.user) { challenge in
                    Self.answer(challenge, account: account, prompter: prompter)
                }
                return nil
            } catch { try refused(Attempt(method: .keyboardInteractive), error) }
        }
        return failure
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
