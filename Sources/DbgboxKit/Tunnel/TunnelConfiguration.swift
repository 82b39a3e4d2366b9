import Foundation

/// A way to authenticate on one hop, tried in the order given.
public enum TunnelCredential: Sendable, Equatable {
    /// Every identity of an ssh-agent; nil means SSH_AUTH_SOCK (skipped when unset).
    case agent(socketPath: String?)
    /// An OpenSSH private key file (ed25519 or ECDSA; RSA gets an explanatory error), with its
    /// passphrase when encrypted (the command asks for it before `start()`).
    case keyFile(path: String, passphrase: String?)
}

/// One SSH hop: where, as whom, with which credentials.
public struct TunnelHop: Sendable, Equatable {
    public var host: String
    public var port: Int
    public var user: String
    public var credentials: [TunnelCredential]
    /// How messages name this hop: "login host", "node".
    public var label: String

    public init(host: String, port: Int = 22, user: String, credentials: [TunnelCredential], label: String) {
        self.host = host
        self.port = port
        self.user = user
        self.credentials = credentials
        self.label = label
    }

    /// "host:port" ("[v6]:port" for IPv6 literals).
    public var endpoint: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

/// How the node session reaches the node through the login host.
public enum NodeRoute: Sendable, Equatable {
    /// A direct-tcpip channel from the login host to node.host:node.port (needs
    /// AllowTcpForwarding on the login host).
    case direct
    /// An exec channel running `command` on the login host, whose stdin/stdout is the byte
    /// stream to the node's sshd (e.g. `ssh -W NODE:22 NODE`). The argv is shell-quoted into one
    /// command line, since an exec request carries a string the login shell interprets.
    case exec(command: [String])

    /// The usual exec route: the login host's own ssh forwards stdio to the node's sshd
    /// (`ssh -o BatchMode=yes [OPTIONS] -W HOST:PORT -p PORT USER@HOST`).
    public static func sshW(to node: TunnelHop, options: [String] = []) -> NodeRoute {
        .exec(command: ["ssh", "-o", "BatchMode=yes"] + options
            + ["-W", "\(node.host):\(node.port)", "-p", String(node.port), "\(node.user)@\(node.host)"])
    }
}

/// Quotes argv for a POSIX shell: words of safe characters stay bare, others go in single quotes.
public func shellQuote(_ argv: [String]) -> String {
    argv.map { word -> String in
        let safe = CharacterSet(charactersIn: "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789@%+=:,./-_")
        if !word.isEmpty && word.unicodeScalars.allSatisfy({ safe.contains($0) }) { return word }
        return "'" + word.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }.joined(separator: " ")
}

/// Everything the engine needs. Defaults match `dbgbox tunnel`'s.
public struct TunnelConfiguration: Sendable {
    public var login: TunnelHop
    public var node: TunnelHop
    public var nodeVia: NodeRoute
    /// Where the node connects each forwarded connection (the container's published sshd).
    public var targetHost: String
    public var targetPort: Int
    /// The local listener. Port 0 picks a free port (see `Tunnel.localPort`).
    public var bindAddress: String
    public var localPort: Int
    /// Seconds between SSH keepalives on each hop (0 disables them).
    public var keepaliveInterval: Int
    /// Seconds for TCP connect + handshake + authentication of each hop.
    public var connectTimeout: Double
    /// Seconds of unacknowledged data or silent keepalive probes after which the login TCP
    /// connection counts as dead (TCP_USER_TIMEOUT, kernel keepalive).
    public var deadPeerTimeout: Double
    /// Whether the tunnel listens at all. Without a listener it only carries `NodeChannel`s
    /// (`Tunnel.openNodeChannel`: remote commands).
    public var listens = true

    public init(login: TunnelHop, node: TunnelHop, nodeVia: NodeRoute = .direct,
                targetHost: String = "127.0.0.1", targetPort: Int,
                bindAddress: String = "127.0.0.1", localPort: Int,
                keepaliveInterval: Int = 15, connectTimeout: Double = 15, deadPeerTimeout: Double = 30) {
        self.login = login
        self.node = node
        self.nodeVia = nodeVia
        self.targetHost = targetHost
        self.targetPort = targetPort
        self.bindAddress = bindAddress
        self.localPort = localPort
        self.keepaliveInterval = keepaliveInterval
        self.connectTimeout = connectTimeout
        self.deadPeerTimeout = deadPeerTimeout
    }
}

/// The reconnect delays: `initial`, doubling, at most `maximum` (0.25, 0.5, 1, 2, 2, … s), so
/// the tunnel is back within a few seconds of the path returning.
public struct Backoff: Sendable, Equatable {
    public var initial: Double
    public var maximum: Double
    public private(set) var attempt = 0

    public init(initial: Double = 0.25, maximum: Double = 2) {
        self.initial = initial
        self.maximum = maximum
    }

    /// The delay before the next attempt.
    public mutating func next() -> Double {
        let delay = min(maximum, initial * pow(2, Double(min(attempt, 30))))
        attempt += 1
        return delay
    }

    public mutating func reset() { attempt = 0 }
}
