import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// What `--port` asked for.
public enum PortRequest: Sendable, Equatable {
    case fixed(UInt16)
    case auto

    /// The range `auto` draws from: unprivileged, below the usual ephemeral range's busiest part.
    public static let autoRange: ClosedRange<UInt16> = 20000...59999

    /// `auto`, or digits only in 1024–65535.
    public static func parse(_ text: String) throws -> PortRequest {
        if text.lowercased() == "auto" { return .auto }
        guard !text.isEmpty, text.count <= 5, text.allSatisfy({ $0.isASCII && $0.isNumber }) else {
            throw PortError.notANumber(text)
        }
        guard let n = Int(text), (1024...65535).contains(n) else { throw PortError.outOfRange(text) }
        return .fixed(UInt16(n))
    }
}

/// Whether something on this node already listens on a port. A protocol so tests need no sockets.
public protocol PortProbe: Sendable {
    /// True when the TCP port can be bound on both 0.0.0.0 and 127.0.0.1.
    func isFree(_ port: UInt16) -> Bool
}

/// Probes by `bind()` and immediate close, without SO_REUSEADDR so a listener anywhere counts.
public struct BindPortProbe: PortProbe {
    public init() {}

    public func isFree(_ port: UInt16) -> Bool {
        canBind(port, address: INADDR_ANY) && canBind(port, address: 0x7f00_0001)
    }

    private func canBind(_ port: UInt16, address: UInt32) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = port.bigEndian
        addr.sin_addr = in_addr(s_addr: address.bigEndian)
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        return rc == 0
    }
}

public enum PortError: UserFacingError, Equatable {
    case notANumber(String)
    case outOfRange(String)
    case listening(UInt16)
    case publishedBy(UInt16, container: String)
    case noFreePort(attempts: Int)

    public var description: String {
        switch self {
        case .notANumber(let text):
            return "--port \(shown(text, limit: 20)) is not a port number: use digits only in 1024-65535, or auto"
        case .outOfRange(let text):
            return "--port \(text) is outside 1024-65535: pick an unprivileged port, or use --port auto"
        case .listening(let port):
            return "port \(port) is in use on this node (something listens on it): pick another, or use --port auto"
        case .publishedBy(let port, let container):
            return "port \(port) is already published by container \(container): pick another, or use --port auto"
        case .noFreePort(let attempts):
            return "no free port found after \(attempts) tries: pass a free one with --port N"
        }
    }
}

/// One bind mount into the container.
public struct BindMount: Sendable, Equatable {
    public var source: String
    public var target: String
    public var readOnly: Bool

    public init(source: String, target: String, readOnly: Bool = false) {
        self.source = source
        self.target = target
        self.readOnly = readOnly
    }

    /// `--mount type=bind,…`: the value is one argv element, so spaces need no quoting. docker reads
    /// it as CSV, so a path with a comma or a double quote is refused when parsed.
    public var dockerArguments: [String] {
        ["--mount", "type=bind,source=\(source),target=\(target)" + (readOnly ? ",readonly" : "")]
    }

    /// Directories whose contents the container runs or reads as root: its programs and libraries,
    /// its configuration (sshd's, dbgbox's own in /etc/dbgbox), the entrypoint
    /// (/usr/local/sbin/dbgbox-entrypoint), root's home and the runtime state. A target at or under
    /// any of them could put the user's own files where root runs or trusts them, so it is refused.
    /// (The entrypoint itself takes its programs only from /usr/sbin, /usr/bin, /sbin and /bin,
    /// never from the image's PATH, which may name a mounted directory.)
    static let systemRoots: [String] = [
        "/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/libx32", "/proc", "/root", "/run",
        "/sbin", "/sys", "/usr", "/var",
    ]
    /// Targets refused as such (nothing under them is run as root): the root and /tmp.
    static let forbiddenExactTargets: Set<String> = ["/", "/tmp"]

    static func isSystemTarget(_ target: String) -> Bool {
        forbiddenExactTargets.contains(target) || systemRoots.contains { target == $0 || target.hasPrefix($0 + "/") }
    }

    /// Parses the original scripts' `--mount "a:b;c:d"` form.
    public static func parseList(_ text: String, fs: FileSystem) throws -> [BindMount] {
        let parts = text.split(separator: ";", omittingEmptySubsequences: false).map(String.init)
        return try parts.enumerated().compactMap { index, part in
            // A trailing ";" is harmless; an empty piece in the middle is a typo.
            if part.trimmingCharacters(in: .whitespaces).isEmpty {
                if index == parts.count - 1 && parts.count > 1 { return nil }
                throw MountError.empty(text: condense(text, limit: 80))
            }
            return try parse(part, allowReadOnly: false, flag: "--mount", fs: fs)
        }
    }

    /// Parses one `-v SRC:DST[:ro]`.
    public static func parseVolume(_ text: String, fs: FileSystem) throws -> BindMount {
        try parse(text, allowReadOnly: true, flag: "-v", fs: fs)
    }

    static func parse(_ text: String, allowReadOnly: Bool, flag: String, fs: FileSystem) throws -> BindMount {
        var fields = text.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        var readOnly = false
        if allowReadOnly, fields.count == 3, ["ro", "rw"].contains(fields[2]) {
            readOnly = fields[2] == "ro"
            fields.removeLast()
        }
        guard fields.count == 2 else {
            throw MountError.malformed(flag: flag, text: condense(text, limit: 80), form: allowReadOnly ? "SRC:DST or SRC:DST:ro" : "SRC:DST pairs separated by ;")
        }
        let source = normalize(fields[0]), target = normalize(fields[1])
        for (what, path) in [("source", source), ("target", target)] {
            guard !path.isEmpty else { throw MountError.malformed(flag: flag, text: condense(text, limit: 80), form: "SRC:DST with both parts given") }
            guard path.hasPrefix("/") else { throw MountError.notAbsolute(what: what, path: condense(path, limit: 80)) }
            guard !path.contains(",") && !path.contains("\"") && !path.contains(where: \.isNewline) else {
                throw MountError.unsupportedCharacter(path: condense(path, limit: 80))
            }
            guard !path.split(separator: "/").contains("..") else { throw MountError.dotDot(path: condense(path, limit: 80)) }
        }
        guard !isSystemTarget(target) else { throw MountError.systemTarget(target) }
        guard fs.exists(source) else { throw MountError.missingSource(source) }
        // Docker resolves the source as root. Resolve it as the user instead (every symlink, each
        // directory entered with the user's rights) and mount what that gives: a link into a
        // directory the user cannot enter is refused, not followed by the daemon.
        let resolved: String
        do { resolved = try fs.realPath(source) } catch { throw MountError.unresolvableSource(source) }
        guard !resolved.contains(",") && !resolved.contains("\"") && !resolved.contains(where: \.isNewline) else {
            throw MountError.unsupportedCharacter(path: condense(resolved, limit: 80))
        }
        return BindMount(source: resolved, target: target, readOnly: readOnly)
    }

    /// Drops repeated and trailing slashes (but keeps "/").
    static func normalize(_ path: String) -> String {
        let trimmed = path.trimmingCharacters(in: .whitespaces)
        guard trimmed.hasPrefix("/") else { return trimmed }
        let joined = "/" + trimmed.split(separator: "/").joined(separator: "/")
        return joined
    }
}

public enum MountError: UserFacingError, Equatable {
    case empty(text: String)
    case malformed(flag: String, text: String, form: String)
    case notAbsolute(what: String, path: String)
    case unsupportedCharacter(path: String)
    case dotDot(path: String)
    case systemTarget(String)
    case missingSource(String)
    case unresolvableSource(String)
    case duplicateTarget(String)

    public var description: String {
        switch self {
        case .empty(let text):
            return "--mount '\(text)' has an empty part: write SRC:DST pairs separated by ; as in \"/data:/data;/scratch:/scratch\""
        case .malformed(let flag, let text, let form):
            return "\(flag) '\(text)' is malformed: write \(form)"
        case .notAbsolute(let what, let path):
            return "mount \(what) '\(path)' is not an absolute path: start it with /"
        case .unsupportedCharacter(let path):
            return "mount path '\(path)' contains a comma, quote or newline, which docker's --mount cannot take: use a symlink without them"
        case .dotDot(let path):
            return "mount path '\(path)' contains '..': give the real absolute path"
        case .systemTarget(let target):
            return "mount target \(target) would hide the container's own system directory: mount under another path such as /data"
        case .missingSource(let source):
            return "mount source \(source) does not exist on this node: create it or fix the path"
        case .unresolvableSource(let source):
            return "mount source \(source) cannot be resolved as you (a link into a directory you cannot enter?): mount a path you can reach yourself"
        case .duplicateTarget(let target):
            return "two mounts share the target \(target): give each mount its own target"
        }
    }
}

/// How long the container lives.
public struct TTL: Sendable, Equatable {
    public var seconds: Int

    public init(seconds: Int) { self.seconds = seconds }

    public static let defaultText = "12h"
    /// Anything longer is a typo rather than a plan: a year.
    public static let maximumSeconds = 366 * 86400

    /// `12h`, `90m`, `30s`, `1d`, a bare number of seconds, or `0` for no limit.
    public static func parse(_ text: String) throws -> TTL {
        let trimmed = text.trimmingCharacters(in: .whitespaces).lowercased()
        guard let last = trimmed.last else { throw TTLError.malformed(text) }
        let units: [Character: Int] = ["s": 1, "m": 60, "h": 3600, "d": 86400]
        let (digits, unit) = units[last].map { (String(trimmed.dropLast()), $0) } ?? (trimmed, 1)
        guard !digits.isEmpty, digits.count <= 9, digits.allSatisfy({ $0.isASCII && $0.isNumber }), let n = Int(digits) else {
            throw TTLError.malformed(text)
        }
        let seconds = n * unit
        guard seconds <= maximumSeconds else { throw TTLError.tooLong(text) }
        return TTL(seconds: seconds)
    }

    /// The expiry moment, or nil for no limit.
    public func expiry(from start: Date) -> Date? {
        seconds == 0 ? nil : start.addingTimeInterval(TimeInterval(seconds))
    }

    /// "2h05m", "45s", "none".
    public static func format(seconds: Int) -> String {
        if seconds <= 0 { return "0s" }
        let d = seconds / 86400, h = seconds % 86400 / 3600, m = seconds % 3600 / 60, s = seconds % 60
        if d > 0 { return "\(d)d\(h)h" }
        if h > 0 { return m > 0 ? "\(h)h\(String(format: "%02d", m))m" : "\(h)h" }
        if m > 0 { return s > 0 ? "\(m)m\(String(format: "%02d", s))s" : "\(m)m" }
        return "\(s)s"
    }
}

public enum TTLError: UserFacingError, Equatable {
    case malformed(String)
    case tooLong(String)

    public var description: String {
        switch self {
        case .malformed(let text):
            return "--ttl '\(condense(text, limit: 30))' is not a duration: use a number with s, m, h or d (e.g. 12h, 90m, 1d), or 0 for no limit"
        case .tooLong(let text):
            return "--ttl \(text) is longer than a year: use a shorter duration, or 0 for no limit"
        }
    }
}
