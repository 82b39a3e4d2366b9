import Foundation

/// What can go wrong with sessions: their names, their Host blocks and their state records.
public enum SessionError: UserFacingError, Equatable {
    /// A session name that would not be a plain ssh Host alias or file name.
    case invalidName(String)
    case invalidPort(Int)
    case invalidUser(String)
    /// A path ssh_config cannot carry (newline, NUL, `${`), or one that is not absolute.
    case invalidPath(field: String, path: String)
    /// A block in dbgbox's own ssh config that does not say what dbgbox wrote.
    case malformedBlock(name: String, path: String)
    /// `SessionStore.insert` found a record of that name.
    case sessionExists(String)
    /// A record file that is not a session record.
    case unreadableRecord(path: String)

    public var description: String {
        switch self {
        case .invalidName(let name):
            return "invalid session name \"\(name)\": use letters, digits, '-', '_' and '.', not starting with '.' or '-'"
        case .invalidPort(let port):
            return "invalid port \(port): use a port from 1 to 65535"
        case .invalidUser(let user):
            return "invalid user name \"\(user)\" for the ssh config: use letters, digits, '.', '_' and '-'"
        case .invalidPath(let field, let path):
            return "\(field) path \(path.debugDescription) cannot be written into an ssh config: use an absolute path without newlines or \"${\""
        case .malformedBlock(let name, let path):
            return "the block of session \(name) in \(path) was edited by hand: run `dbgbox down \(name)` to remove it, or delete it from that file"
        case .sessionExists(let name):
            return "a session named \(name) exists already: choose another name, or run `dbgbox down \(name)` first"
        case .unreadableRecord(let path):
            return "\(path) is not a dbgbox session record: delete it, and remove any container or tunnel it belonged to by hand"
        }
    }
}

/// Session names: each becomes the ssh alias `dbgbox-<name>`, a Host pattern, a known_hosts
/// alias and a file name, so only characters that mean nothing to any of them are allowed.
public enum SessionName {
    /// The ssh Host alias of a session.
    public static func alias(_ name: String) -> String { "dbgbox-\(name)" }

    public static func validate(_ name: String) throws {
        let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")
        guard !name.isEmpty, name.count <= 64, name.allSatisfy({ allowed.contains($0) }),
              name.first != ".", name.first != "-" else {
            throw SessionError.invalidName(name)
        }
    }
}
