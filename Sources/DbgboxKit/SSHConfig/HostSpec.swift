import Foundation

/// One hop as the user typed it: `[USER@]HOST[:PORT]`, or `[USER@][V6ADDR]:PORT`.
///
/// HOST may be an alias from ~/.ssh/config; `SSHConfigResolver` turns it into a `ResolvedHost`.
/// The user and port given here win over the config file, as `user@` and `-p` do for ssh.
public struct HostSpec: Sendable, Equatable, CustomStringConvertible {
    public var user: String?
    public var host: String
    public var port: Int?

    public init(user: String? = nil, host: String, port: Int? = nil) {
        self.user = user
        self.host = host
        self.port = port
    }

    /// Parses `[USER@]HOST[:PORT]`. The user is everything before the last `@` (as ssh takes it);
    /// an IPv6 address needs brackets when a port follows (`[::1]:2222`); a bare address with
    /// several colons is taken whole as the host.
    public init(parsing text: String) throws {
        guard !text.isEmpty else { throw SSHConfigError.badHostSpec(text, "it is empty") }
        if text.contains(where: { $0.isWhitespace || $0.asciiValue.map { $0 < 32 || $0 == 127 } == true }) {
            throw SSHConfigError.badHostSpec(text, "it contains a blank or control character")
        }
        var rest = Substring(text)
        var user: String?
        if let at = rest.lastIndex(of: "@") {
            guard at != rest.startIndex else { throw SSHConfigError.badHostSpec(text, "the user name before '@' is empty") }
            user = String(rest[..<at])
            rest = rest[rest.index(after: at)...]
        }
        var host: Substring
        var portText: Substring?
        if rest.first == "[" {
            guard let close = rest.firstIndex(of: "]") else {
                throw SSHConfigError.badHostSpec(text, "'[' has no matching ']'")
            }
            host = rest[rest.index(after: rest.startIndex)..<close]
            let after = rest[rest.index(after: close)...]
            if !after.isEmpty {
                guard after.first == ":" else { throw SSHConfigError.badHostSpec(text, "only ':PORT' may follow ']'") }
                portText = after.dropFirst()
            }
        } else if let colon = rest.firstIndex(of: ":"), rest[rest.index(after: colon)...].contains(":") == false {
            host = rest[..<colon]
            portText = rest[rest.index(after: colon)...]
        } else {
            host = rest // a bare IPv6 address, or no port
        }
        guard !host.isEmpty else { throw SSHConfigError.badHostSpec(text, "the host name is empty") }
        guard host.first != "-" else { throw SSHConfigError.badHostSpec(text, "a host name cannot start with '-'") }
        var port: Int?
        if let portText {
            guard let value = Int(portText), portText.allSatisfy(\.isASCII), portText.allSatisfy(\.isNumber),
                  (1...65535).contains(value) else {
                throw SSHConfigError.badHostSpec(text, "the port \"\(portText)\" is not a number from 1 to 65535")
            }
            port = value
        }
        self.init(user: user, host: String(host), port: port)
    }

    /// `[USER@]HOST[:PORT]`, with brackets around a host that contains ':'.
    public var description: String {
        let userPart = user.map { "\($0)@" } ?? ""
        let hostPart = port != nil && host.contains(":") ? "[\(host)]" : host
        return userPart + hostPart + (port.map { ":\($0)" } ?? "")
    }
}
