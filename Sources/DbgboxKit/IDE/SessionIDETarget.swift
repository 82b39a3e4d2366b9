import Foundation

/// Gathers an `IDETarget` from a session record of `dbgbox up`: alias, port, user, key, home and
/// mounts come from the record, and Python is looked for inside the container over the session's
/// own tunnel. Nothing runs on this machine, so no docker is needed here (the container runs on a
/// cluster node). Never prints.
public struct SessionIDETargetFinder {
    public var store: SessionStore
    public var liveness: TunnelLiveness
    /// dbgbox's pinned container host keys (`~/.ssh/dbgbox/known_hosts`).
    public var pinnedPath: String
    /// Opens a runner inside the session's container (the real one: `ContainerSessionRunner`).
    public var connect: (_ record: SessionRecord, _ pinned: SSHPublicKey, _ identityFile: String) throws -> ProcessRunner

    public init(store: SessionStore, liveness: TunnelLiveness, pinnedPath: String,
                connect: @escaping (SessionRecord, SSHPublicKey, String) throws -> ProcessRunner) {
        self.store = store
        self.liveness = liveness
        self.pinnedPath = pinnedPath
        self.connect = connect
    }

    /// The session `ide` acts on: NAME's record, or without NAME the only one. Nil when NAME has no
    /// record or there is no session at all: then the caller looks for a local container.
    public func record(named name: String?) throws -> SessionRecord? {
        if let name {
            guard (try? SessionName.validate(name)) != nil else { return nil }
            return try store.load(name)
        }
        let records = try store.list().records
        guard records.count <= 1 else { throw IDEError.severalSessions(records.map(\.name)) }
        return records.first
    }

    /// The target for `record`. `identityFile` overrides the record's key; `alias` is dbgbox-NAME
    /// when ssh's resolution of it reaches the session's port (nil: the IDE gets host and port).
    public func target(for record: SessionRecord, identityFile: String? = nil, alias: String?) throws -> IDETarget {
        switch liveness.state(of: record) {
        case .alive, .notRecorded:
            break
        case .gone, .pidReused, .notDbgbox:
            throw IDEError.sessionTunnelDead(name: record.name)
        }
        guard let pinned = try PinnedHostKeys(path: pinnedPath).key(for: record.alias) else {
            throw IDEError.sessionNotPinned(name: record.name, alias: record.alias, path: pinnedPath)
        }
        let key = identityFile ?? record.identityFile
        let runner = try connect(record, pinned, key)
        defer { (runner as? ContainerSessionRunner)?.close() }
        var home = record.home
        if home == nil {
            // A record written before the home was kept: ask the container.
            let answer = try runner.run(["sh", "-c", "printf '%s' \"$HOME\""])
            home = answer.succeeded && answer.stdoutText.hasPrefix("/") ? answer.stdoutText : nil
        }
        let containerHome = home ?? "/home/\(record.user)"
        let interpreters = try InterpreterDiscovery.discover(runner: runner, transport: .session,
                                                             target: "session \(record.name)")
        return IDETarget(name: record.name, alias: alias, port: UInt16(clamping: record.localPort), user: record.user,
                         identityFile: key, home: containerHome,
                         mounts: record.mounts ?? [PathMapping(source: containerHome, target: containerHome)],
                         interpreters: interpreters, hostKeyFingerprint: pinned.fingerprintSHA256, node: record.node)
    }
}
