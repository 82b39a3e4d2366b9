import Foundation

/// Why the tunnel could not start (or a hop went down): one line naming the hop and what to do.
public struct TunnelError: UserFacingError, Equatable {
    public enum Kind: String, Sendable, Equatable {
        /// The local port could not be bound.
        case localPort
        /// TCP connect failed (refused, no route, name not resolved).
        case unreachable
        /// SSH handshake / key exchange failed.
        case handshake
        /// The delegate refused the host key.
        case hostKey
        /// No credential was accepted.
        case authentication
        /// The login host could not carry us to the node (forwarding refused, `ssh -W` failed).
        case forwarding
        /// A step took longer than the connect timeout.
        case timeout
        /// The connection broke.
        case disconnected
        /// `stop()` was called while connecting.
        case stopped
    }

    public var kind: Kind
    public var role: TunnelHopRole?
    /// "login host 198.18.0.2:22", or nil for errors of no hop (local port).
    public var hopName: String?
    public var detail: String

    public init(kind: Kind, role: TunnelHopRole?, hopName: String?, detail: String) {
        self.kind = kind
        self.role = role
        self.hopName = hopName
        self.detail = detail
    }

    init(_ kind: Kind, _ role: TunnelHopRole, _ hop: TunnelHop, _ detail: String) {
        self.init(kind: kind, role: role, hopName: "\(hop.label) \(hop.endpoint)", detail: detail)
    }

    public var description: String {
        let text = hopName.map { "\($0): \(detail)" } ?? detail
        return text.replacingOccurrences(of: "\n", with: " ")
    }
}
