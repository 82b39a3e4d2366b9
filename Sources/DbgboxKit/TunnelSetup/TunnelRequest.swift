import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// What `dbgbox tunnel` was asked for, before ssh-config resolution.
public struct TunnelRequest: Sendable, Equatable {
    public enum NodeVia: String, Sendable, Equatable, CaseIterable {
        /// A direct-tcpip channel from the login host to the node's sshd.
        case direct
        /// `ssh -W NODE:PORT` run on the login host (for nodes that accept only cluster-internal keys).
        case exec
    }

    public var login: HostSpec
    public var node: HostSpec
    /// The container's port on the node (published on the node's 127.0.0.1).
    public var targetPort: Int
    /// The local port; nil means the same as `targetPort`.
    public var localPort: Int?
    public var bindAddress: String
    /// `-i`: identity files for both hops.
    public var identityFiles: [String]
    public var loginIdentityFiles: [String]
    public var nodeIdentityFiles: [String]
    public var nodeVia: NodeVia
    /// `--accept-new`: an unknown host key is appended to known_hosts (one line) instead of refused.
    public var acceptNew: Bool
    /// `--known-hosts FILE`: check and record host keys here instead of ssh's files.
    public var knownHostsFile: String?
    /// `-F FILE`: the ssh config to read instead of ~/.ssh/config.
    public var sshConfigFile: String?

    public init(login: HostSpec, node: HostSpec, targetPort: Int, localPort: Int? = nil,
                bindAddress: String = "127.0.0.1", identityFiles: [String] = [],
                loginIdentityFiles: [String] = [], nodeIdentityFiles: [String] = [],
                nodeVia: NodeVia = .direct, acceptNew: Bool = false,
                knownHostsFile: String? = nil, sshConfigFile: String? = nil) {
        self.login = login
        self.node = node
        self.targetPort = targetPort
        self.localPort = localPort
        self.bindAddress = bindAddress
        self.identityFiles = identityFiles
        self.loginIdentityFiles = loginIdentityFiles
        self.nodeIdentityFiles = nodeIdentityFiles
        self.nodeVia = nodeVia
        self.acceptNew = acceptNew
        self.knownHostsFile = knownHostsFile
        self.sshConfigFile = sshConfigFile
    }

    /// A warning when `--bind` is not a loopback address: the tunnel's port is then open to
    /// whoever reaches this machine. nil for 127.0.0.0/8, ::1 and localhost.
    public var bindWarning: String? {
        guard !Self.isLoopback(bindAddress) else { return nil }
        return "--bind \(shown(bindAddress)) is not a loopback address: anyone who can reach this machine on port \(localPort ?? targetPort) reaches the container's sshd (only your key lets them in); leave --bind out to listen on 127.0.0.1 only"
    }

    public static func isLoopback(_ address: String) -> Bool {
        if address.lowercased() == "localhost" || address == "::1" || address == "[::1]" { return true }
        var v4 = in_addr()
        guard inet_pton(AF_INET, address, &v4) == 1 else { return false }
        return UInt32(bigEndian: v4.s_addr) >> 24 == 127
    }
}
