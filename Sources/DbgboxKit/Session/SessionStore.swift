import Foundation

/// What dbgbox remembers about one session between `up` and `down` (and for `status`).
public struct SessionRecord: Codable, Sendable, Equatable {
    public var name: String
    public var container: String
    /// The login host (`user@host[:port]` as given), nil for a local container.
    public var login: String?
    /// The node the container runs on, nil for a local container.
    public var node: String?
    /// GPU device ids given to the container (empty: none).
    public var gpus: [String]
    /// The container's sshd port on the node.
    public var targetPort: Int
    /// The laptop-side port of the tunnel (the Host block's Port).
    public var localPort: Int
    /// The background tunnel process, nil with `--foreground` or before it started.
    public var tunnelPID: Int32?
    /// The tunnel's start time in clock ticks since boot (field 22 of /proc/PID/stat, see
    /// `ProcFSInspector.startTime(of:)`): tells the tunnel from a later process given the same pid.
    public var tunnelStartTime: UInt64?
    public var created: Date
    /// When the session's TTL runs out, nil for none.
    public var expires: Date?
    public var image: String
    /// The login user inside the container.
    public var user: String
    public var identityFile: String
    /// The background tunnel's log.
    public var logFile: String
    /// The user's home inside the container (mounted from the same path on the node); nil in
    /// records written before it was kept.
    public var home: String?
    /// The container's bind mounts (node path → container path), the home first; nil in records
    /// written before they were kept.
    public var mounts: [PathMapping]?
    /// The scheduler job the container runs in (`up --scheduler`, `up --job`); nil otherwise.
    public var job: SessionJob?
    /// The session's forwarded ports (`--forward`, `--reverse`, `dbgbox forward`); nil: none.
    public var forwards: [PortForward]?

    public init(name: String, container: String, login: String? = nil, node: String? = nil, gpus: [String] = [],
                targetPort: Int, localPort: Int, tunnelPID: Int32? = nil, tunnelStartTime: UInt64? = nil,
                created: Date, expires: Date? = nil, image: String, user: String, identityFile: String, logFile: String,
                home: String? = nil, mounts: [PathMapping]? = nil, job: SessionJob? = nil,
                forwards: [PortForward]? = nil) {
        self.name = name
        self.container = container
        self.login = login
        self.node = node
        self.gpus = gpus
        self.targetPort = targetPort
        self.localPort = localPort
        self.tunnelPID = tunnelPID
        self.tunnelStartTime = tunnelStartTime
        self.created = created
        self.expires = expires
        self.image = image
        self.user = user
        self.identityFile = identityFile
        self.logFile = logFile
        self.home = home
        self.mounts = mounts
        self.job = job
        self.forwards = forwards
    }

    /// `dbgbox-<name>`, the ssh alias and pinned host key alias.
    public var alias: String { SessionName.alias(name) }

    /// The TTL left at `now` (negative once expired), nil without a TTL.
    public func timeLeft(at now: Date) -> TimeInterval? { expires.map { $0.timeIntervalSince(now) } }
}

/// A directory listing, which the FileSystem protocol does not offer.
public protocol DirectoryListing: Sendable {
    /// The names in `path` (no `.` or `..`); empty when the directory does not exist.
    func directoryEntries(_ path: String) throws -> [String]
}

extension LocalFileSystem: DirectoryListing {
    public func directoryEntries(_ path: String) throws -> [String] {
        guard isDirectory(path) else { return [] }
        do {
            return try FileManager.default.contentsOfDirectory(atPath: path)
        } catch {
            throw FileSystemError.io(path: path, operation: "list", errno: (error as NSError).code == 0 ? EIO : Int32((error as NSError).code))
        }
    }
}

/// Session records as JSON files `<name>.json` in dbgbox's XDG state directory
/// (`$XDG_STATE_HOME/dbgbox/sessions/`, else `~/.local/state/dbgbox/sessions/`; directory 0700,
/// files 0600). Writes are atomic and hold the directory's lock.
public struct SessionStore: Sendable {
    public let directory: String
    let fs: FileSystem & DirectoryListing

    public init(directory: String, fs: FileSystem & DirectoryListing = LocalFileSystem()) {
        self.directory = directory
        self.fs = fs
    }

    /// `$XDG_STATE_HOME/dbgbox/sessions` when it is set to an absolute path (the XDG spec says to
    /// ignore a relative one), else `<home>/.local/state/dbgbox/sessions`.
    public static func defaultDirectory(environment: [String: String] = ProcessInfo.processInfo.environment,
                                        home: String) -> String {
        if let state = environment["XDG_STATE_HOME"], state.hasPrefix("/") {
            return (state.hasSuffix("/") ? String(state.dropLast()) : state) + "/dbgbox/sessions"
        }
        return "\(home)/.local/state/dbgbox/sessions"
    }

    /// The file of session `name`.
    public func path(for name: String) -> String { "\(directory)/\(name).json" }

    var lockPath: String { "\(directory)/.lock" }

    /// Writes the record, replacing one of the same name.
    public func save(_ record: SessionRecord) throws {
        try write(record, replacing: true)
    }

    /// Writes the record unless one of that name exists (`SessionError.sessionExists`): how `up`
    /// claims a name, so two concurrent `up`s cannot both take it.
    public func insert(_ record: SessionRecord) throws {
        try write(record, replacing: false)
    }

    /// The record of session `name`, nil if there is none.
    public func load(_ name: String) throws -> SessionRecord? {
        try SessionName.validate(name)
        let file = path(for: name)
        guard fs.exists(file) else { return nil }
        return try decode(file)
    }

    /// All records by creation time (then name), and the record files that could not be read.
    public func list() throws -> SessionListing {
        var listing = SessionListing()
        for entry in try fs.directoryEntries(directory).sorted()
        where entry.hasSuffix(".json") && !entry.hasPrefix(".") {
            let file = "\(directory)/\(entry)"
            if let record = try? decode(file) {
                listing.records.append(record)
            } else {
                listing.unreadable.append(file)
            }
        }
        listing.records.sort { ($0.created, $0.name) < ($1.created, $1.name) }
        return listing
    }

    /// Deletes the record; returns whether there was one.
    @discardableResult
    public func remove(_ name: String) throws -> Bool {
        try SessionName.validate(name)
        guard fs.isDirectory(directory) else { return false }
        return try fs.withExclusiveLock(lockPath) {
            guard fs.exists(path(for: name)) else { return false }
            try fs.remove(path(for: name))
            return true
        }
    }

    private func write(_ record: SessionRecord, replacing: Bool) throws {
        try SessionName.validate(record.name)
        if !fs.isDirectory(directory) { try fs.createDirectory(directory, mode: 0o700) }
        let data = try Self.encoder.encode(record)
        try fs.withExclusiveLock(lockPath) {
            if !replacing && fs.exists(path(for: record.name)) { throw SessionError.sessionExists(record.name) }
            try fs.writeAtomically(data + Data("\n".utf8), to: path(for: record.name), mode: 0o600)
        }
    }

    private func decode(_ file: String) throws -> SessionRecord {
        do {
            return try Self.decoder.decode(SessionRecord.self, from: try fs.read(file, as: .sessionRecord))
        } catch is DecodingError {
            throw SessionError.unreadableRecord(path: file)
        }
    }

    static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        encoder.dateEncodingStrategy = .iso8601
        return encoder
    }()

    static let decoder: JSONDecoder = {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        return decoder
    }()
}

/// `SessionStore.list()`'s answer.
public struct SessionListing: Sendable, Equatable {
    public var records: [SessionRecord] = []
    /// Files in the directory that are not session records (`status` should name them).
    public var unreadable: [String] = []
    public init() {}
}
