import Foundation

/// What can go wrong reading a hop's address or the user's ssh configuration.
public enum SSHConfigError: UserFacingError, Equatable {
    /// A `[USER@]HOST[:PORT]` argument that cannot be read, and why.
    case badHostSpec(String, String)
    /// A line of an ssh config file that OpenSSH would refuse too.
    case badLine(file: String, line: Int, String)
    /// A `-F`-like config file that cannot be read.
    case unreadableConfig(String)
    /// A config file that group or others can write, which ssh refuses.
    case unsafePermissions(String)
    /// Too many nested Include directives (OpenSSH allows 16).
    case includeTooDeep(String)
    /// A `%` token or `${VAR}` that cannot be expanded in a value.
    case badExpansion(keyword: String, value: String, String)

    public var description: String {
        switch self {
        case .badHostSpec(let text, let why):
            return "invalid host \"\(text)\": \(why): use [USER@]HOST[:PORT], e.g. alice@login.example.org:2222"
        case .badLine(let file, let line, let why):
            return "\(file) line \(line): \(why): fix that line (`ssh -G HOST` reports the same)"
        case .unreadableConfig(let path):
            return "cannot read ssh config file \(path): check the path given"
        case .unsafePermissions(let path):
            return "bad permissions on \(path): group or others may write it, so ssh ignores it too: run `chmod go-w \(path)`"
        case .includeTooDeep(let path):
            return "\(path): Include nested more than 16 deep: look for an Include that includes itself"
        case .badExpansion(let keyword, let value, let why):
            return "\(keyword) \(value): \(why): use only the %-tokens ssh_config(5) lists for \(keyword), or %% for a literal %"
        }
    }
}
