import Foundation
import SSH

/// Runs argv arrays inside a session's container, as `ssh dbgbox-NAME` would: one blocking libssh2
/// session to the laptop end of the session's tunnel (127.0.0.1:PORT), the container's host key
/// checked against the key pinned for dbgbox-NAME, logged in as the container user with the
/// session's key. Each argv is one exec channel. Needs neither docker nor the ssh binary here.
public final class ContainerSessionRunner: SSHSessionRunner, @unchecked Sendable {
    public let sessionName: String
    public let port: UInt16

    /// Connects, checks the host key and logs in. Throws one-line `IDEError`s.
    /// `prompter` is asked for the key's passphrase when it is encrypted.
    public init(sessionName: String, port: UInt16, user: String, pinned: SSHPublicKey, identityFile: String,
                prompter: Prompter = NoPrompter(), timeout: Double = 10) throws {
        let session: SSHSession
        let key: SSHPublicKey
        do {
            (session, key) = try LibSSH2HandshakeProbe.open(port: port, timeout: timeout)
        } catch {
            throw IDEError.sessionUnreachable(name: sessionName, port: port, why: "\(error)")
        }
        do {
            guard key.isSameKey(as: pinned) else {
                throw IDEError.sessionHostKey(name: sessionName, port: port, pinned: pinned.fingerprintSHA256,
                                              presented: key.fingerprintSHA256)
            }
            // The bounded checker reads the key before libssh2 opens the path itself: a directory,
            // FIFO, device or huge file stops here (a missing one leaves the agent to try).
            do { _ = try LocalFileSystem().read(identityFile, as: .privateKey) } catch let error as FileSystemError {
                if case .io = error {} else {
                    throw IDEError.sessionLogin(name: sessionName, user: user, identityFile: identityFile, why: error.reason)
                }
            }
            // The key first (the Host block has IdentitiesOnly); an agent may hold it when it is encrypted.
            let hop = TunnelHop(host: "127.0.0.1", port: Int(port), user: user,
                                credentials: [.keyFile(path: identityFile, passphrase: nil), .agent(socketPath: nil)],
                                label: "container")
            let failure: HopAuthenticator.Failure?
            do { failure = try HopAuthenticator(hop: hop, prompter: prompter, allowsPassword: false).logIn(session) } catch {
                throw IDEError.sessionLogin(name: sessionName, user: user, identityFile: identityFile, why: "\(error)")
            }
            if let failure {
                throw IDEError.sessionLogin(name: sessionName, user: user, identityFile: identityFile, why: failure.lastError)
            }
        } catch {
            session.close()
            throw error
        }
        self.sessionName = sessionName
        self.port = port
        super.init(session: session)
    }

    override func sessionError(_ argv: [String], _ error: Error?) -> Error {
        IDEError.sessionUnreachable(name: sessionName, port: port, why: error.map { "\($0)" } ?? "the session is closed")
    }
}
