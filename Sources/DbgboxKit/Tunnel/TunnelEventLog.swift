/// What `dbgbox tunnel` logs about its hops: each step of an outage once. A hop going down, the
/// first reconnect attempt, an attempt failing for a new reason, and the tunnel being back are
/// one line each; attempts that fail again for the same reason (every 2 s while a link is down
/// for a minute) add nothing.
public struct TunnelEventLog: Sendable {
    private var lastFailure: String?
    private var attempts = 0

    public init() {}

    /// How a refusal's reason starts when the node could not open the channel to the target.
    static let targetUnreachable = "the node could not open the connection"

    /// The line for a local connection turned away. When the node could not reach the target (a
    /// container that stopped or was removed, e.g. by a dockerd restart), it names the target and
    /// what to run (for `session`, the session of `dbgbox up` the tunnel serves).
    public static func refusedLine(peer: String, reason: String, target: String, session: String? = nil) -> String {
        guard reason.hasPrefix(targetUnreachable) else { return "refused connection from \(peer): \(reason)" }
        return "refused connection from \(peer): \(reason); nothing answers at \(target) on the node: the container stopped or was removed (a dockerd restart removes it): `dbgbox status` checks it; `dbgbox down \(session ?? "NAME")`, then `dbgbox up …`, makes a new one"
    }

    /// The lines for `event` (none for events that are not about the hops). `ready` lines are
    /// the caller's: the first one is the tunnel's result, not a log line.
    public mutating func lines(for event: TunnelEvent) -> [String] {
        switch event {
        case .hopDown(_, let label, let endpoint, let reason):
            lastFailure = nil
            attempts = 0
            return ["\(label) \(endpoint) down: \(reason)"]
        case .reconnecting(let attempt, let delay, let lastError):
            attempts = attempt
            if attempt <= 1 {
                return [String(format: "reconnecting in %.2g s (then every %.2g s at most, until it works)", delay, Backoff().maximum)]
            }
            guard let lastError, lastError != lastFailure else { return [] }
            lastFailure = lastError
            return ["reconnect attempt \(attempt - 1) failed: \(lastError)" + (attempt > 2 ? " (trying on)" : "")]
        case .ready(let listening):
            defer { lastFailure = nil; attempts = 0 }
            return ["reconnected after \(max(attempts, 1)) attempt\(attempts > 1 ? "s" : ""): \(listening)"]
        case .hopUp, .connectionOpened, .connectionClosed, .connectionRefused:
            return []
        }
    }
}
