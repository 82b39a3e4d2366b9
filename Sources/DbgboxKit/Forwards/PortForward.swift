import Foundation

/// One forwarded port of a session (issue 15), as the session record, the tunnel's control
/// channel and `status --json` carry it.
///
/// - `forward`: 127.0.0.1:`local` on the laptop reaches 127.0.0.1:`port` inside the container.
/// - `reverse`: 127.0.0.1:`port` inside the container reaches 127.0.0.1:`local` on the laptop.
///
/// Both ride the session's tunnel process: a libssh2 session into the container's sshd (pinned
/// host key, the session's key) carried by a direct-tcpip channel of the node session
/// (`ContainerForwarder`).
public struct PortForward: Codable, Sendable, Equatable, Hashable {
    public enum Direction: String, Codable, Sendable, Equatable, Hashable {
        case forward
        case reverse
    }

    public var direction: Direction
    /// The port inside the container (on its 127.0.0.1).
    public var port: Int
    /// The port on the laptop's 127.0.0.1; 0 for a forward means `auto` (a free port is picked).
    public var local: Int

    public init(_ direction: Direction, port: Int, local: Int) {
        self.direction = direction
        self.port = port
        self.local = local
    }

    /// `PORT[:LOCAL]` (LOCAL: a port or `auto`; default PORT), the value of `--forward`.
    public static func parseForward(_ text: String) throws -> PortForward {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        guard parts.count <= 2 else { throw ForwardError.badSpec(option: "--forward", text: text, why: "expected PORT or PORT:LOCAL") }
        let port = try number(parts[0], option: "--forward", text: text, what: "PORT")
        var local = port
        if parts.count == 2 {
            local = parts[1] == "auto" ? 0 : try number(parts[1], option: "--forward", text: text, what: "LOCAL")
        }
        return PortForward(.forward, port: port, local: local)
    }

    /// `LOCAL[:PORT]` (PORT default LOCAL), the value of `--reverse`.
    public static func parseReverse(_ text: String) throws -> PortForward {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        guard parts.count <= 2 else { throw ForwardError.badSpec(option: "--reverse", text: text, why: "expected LOCAL or LOCAL:PORT") }
        let local = try number(parts[0], option: "--reverse", text: text, what: "LOCAL")
        let port = parts.count == 2 ? try number(parts[1], option: "--reverse", text: text, what: "PORT") : local
        return PortForward(.reverse, port: port, local: local)
    }

    private static func number(_ word: String, option: String, text: String, what: String) throws -> Int {
        guard !word.isEmpty, word.allSatisfy(\.isASCIIDigit), word.count <= 6, let value = Int(word) else {
            throw ForwardError.badSpec(option: option, text: text, why: "\(what) must be a port number (1-65535)\(what == "LOCAL" && option == "--forward" ? " or auto" : "")")
        }
        guard (1...65535).contains(value) else {
            throw ForwardError.badSpec(option: option, text: text, why: "\(what) \(value) is out of range (1-65535)")
        }
        return value
    }

    /// The spec as the user writes it again (`--forward PORT:LOCAL`, `--reverse LOCAL:PORT`).
    public var spec: String {
        switch direction {
        case .forward: return "\(port):\(local == 0 ? "auto" : String(local))"
        case .reverse: return "\(local):\(port)"
        }
    }

    /// "127.0.0.1:18888 → container 8888", "container 5678 → 127.0.0.1:5678".
    public var summary: String {
        switch direction {
        case .forward: return "127.0.0.1:\(local == 0 ? "auto" : String(local)) → container \(port)"
        case .reverse: return "container \(port) → 127.0.0.1:\(local)"
        }
    }

    /// Whether `other` would clash with this one: the same direction and container port, or the
    /// same laptop port for two forwards.
    public func clashes(with other: PortForward) -> Bool {
        guard direction == other.direction else { return false }
        if port == other.port { return true }
        return direction == .forward && local != 0 && local == other.local
    }

    /// The first clash among `forwards` plus `new` (nil: none).
    public static func firstClash(_ new: [PortForward], existing: [PortForward]) -> (PortForward, PortForward)? {
        var seen = existing
        for forward in new {
            if let old = seen.first(where: { $0.clashes(with: forward) }) { return (forward, old) }
            seen.append(forward)
        }
        return nil
    }
}

extension Character {
    fileprivate var isASCIIDigit: Bool { ("0"..."9").contains(self) }
}

/// What is wrong with a forward, one line each.
public enum ForwardError: UserFacingError, Equatable {
    case badSpec(option: String, text: String, why: String)
    case localTaken(port: Int, why: String)
    /// `session`: the running session whose forward it clashes with (nil: two new ones clash).
    case duplicate(new: PortForward, existing: PortForward, session: String?)
    case deadSession(name: String)
    case notForwarded(name: String, port: Int)
    case refusedInContainer(PortForward, why: String)
    case control(name: String, why: String)

    public var description: String {
        switch self {
        case .badSpec(let option, let text, let why):
            return "\(option) \(text): \(why)"
        case .localTaken(let port, let why):
            return "cannot listen on 127.0.0.1:\(port) (\(why)): another program uses it; choose another LOCAL (PORT:LOCAL) or PORT:auto"
        case .duplicate(let new, let existing, let session):
            let what = new.direction == .forward ? "--forward \(new.spec)" : "--reverse \(new.spec)"
            guard let session else { return "\(what) clashes with \(existing.summary) given too: choose other ports" }
            return "\(what) clashes with session \(session)'s \(existing.summary): remove that one first (dbgbox forward \(session) --remove \(existing.port)) or choose other ports"
        case .deadSession(let name):
            return "session \(name) has no running tunnel: run `dbgbox down \(name)`, then `dbgbox up …` again"
        case .notForwarded(let name, let port):
            return "session \(name) forwards no port \(port) (see dbgbox status)"
        case .refusedInContainer(let forward, let why):
            return "the container refused to listen on its 127.0.0.1:\(forward.port) for --reverse \(forward.spec) (\(why)): another program there may use it; choose another PORT"
        case .control(let name, let why):
            return "cannot reach the tunnel of session \(name) (\(why)): check `dbgbox status`; if it is dead run `dbgbox down \(name)` and `dbgbox up …` again"
        }
    }
}
