import Foundation
import SSH

/// Runs argv arrays on the login host itself: one blocking libssh2 session to the login hop of a
/// `TunnelPlan` (its resolved address, its host key checked with the login hop's policy, its
/// credentials), each argv one exec channel in the user's home directory. What the scheduler's
/// commands (`sbatch`, `squeue`, `scancel`, `srun`) need: they run where the user submits jobs.
///
/// The plan is the one `--login`/`--node` commands make; only its login hop is used (the engine
/// connects to the login host directly too: its ProxyJump is not followed).
public final class LoginProcessRunner: SSHSessionRunner, @unchecked Sendable {
    public let hop: PlannedHop

    /// "login HOST:PORT", for messages.
    public var loginName: String { "\(hop.hop.label) \(hop.hop.endpoint)" }

    /// Connects, checks the host key and logs in. Throws one-line `RemoteError`s naming the login host.
    public init(plan: TunnelPlan, checker: HostKeyChecker) throws {
        let hop = plan.login
        let name = "\(hop.hop.label) \(hop.hop.endpoint)"
        let session: SSHSession
        do {
            session = try SSHSession(host: hop.hop.host, port: UInt16(clamping: hop.hop.port),
                                     timeout: plan.configuration.connectTimeout)
        } catch {
            throw DbgboxError("\(name): cannot connect: \(error): check --login and that the login host is reachable")
        }
        do {
            guard let key = session.hostKey else { throw DbgboxError("\(name): no host key presented: check --login") }
            do { try checker.check(hop, key: key) } catch {
                throw RemoteError.hostKey(node: name, why: "\(error)")
            }
            if let failure = HopLogin.tryCredentials(session, hop: hop.hop) {
                throw RemoteError.authentication(node: name, user: hop.hop.user, tried: failure.tried, why: failure.lastError)
            }
        } catch {
            session.close()
            throw error
        }
        self.hop = hop
        super.init(session: session)
    }

    override func sessionError(_ argv: [String], _ error: Error?) -> Error { RemoteError.session(loginName, argv, error) }

    override func check(_ argv: [String], _ result: ProcessResult) throws { try RemoteError.checkFound(loginName, argv, result) }
}
