import SSH

/// Which hop an event or error concerns.
public enum TunnelHopRole: String, Sendable, Equatable {
    case login
    case node
}

/// What the engine reports while it runs. Delivered to `TunnelDelegate.tunnelEvent` on the
/// thread running `start()` or `run()`, never concurrently.
public enum TunnelEvent: Sendable, Equatable {
    /// A hop finished connecting (handshake, host key accepted, authenticated).
    case hopUp(TunnelHopRole, label: String, endpoint: String)
    /// A hop went down; every connection of that generation was closed.
    case hopDown(TunnelHopRole, label: String, endpoint: String, reason: String)
    /// Both hops are up and the listener forwards connections.
    case ready(listening: String)
    /// The next connect attempt starts after `delay` seconds (`lastError` says why the previous failed).
    case reconnecting(attempt: Int, delay: Double, lastError: String?)
    /// A local client connected and got its channel to the target.
    case connectionOpened(id: Int, peer: String)
    /// A local connection ended. `bytesUp` went client → target, `bytesDown` target → client;
    /// `error` is nil for an orderly end.
    case connectionClosed(id: Int, bytesUp: UInt64, bytesDown: UInt64, error: String?)
    /// A local client was turned away (hops down, or the node could not open the channel).
    case connectionRefused(peer: String, reason: String)
}

/// The caller's side of the engine.
public protocol TunnelDelegate: AnyObject {
    /// Checks the host key a hop presented; throw to refuse it (the hop is aborted and the error's
    /// description appears in the hop's `TunnelError`). Called after every handshake, also on
    /// reconnects, on the thread running `start()`/`run()`.
    func verifyHostKey(hop: TunnelHop, role: TunnelHopRole, key: HostKey) throws
    /// Progress and status (see `TunnelEvent`).
    func tunnelEvent(_ event: TunnelEvent)
}

/// A snapshot of the engine's counters (`Tunnel.stats`, safe from any thread).
public struct TunnelStats: Sendable, Equatable {
    public var loginUp = false
    public var nodeUp = false
    public var openConnections = 0
    public var totalConnections = 0
    /// Bytes client → target and target → client, over all connections so far.
    public var bytesUp: UInt64 = 0
    public var bytesDown: UInt64 = 0
    /// Completed reconnects (not counting the first connect).
    public var reconnects = 0
    /// Passes one hop's thread did for the other while that one slept (small messages that
    /// woke no second thread; see `HandOverCoordinator`).
    public var handOvers = 0

    public init() {}
}
