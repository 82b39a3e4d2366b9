import Foundation
import SSH

/// What a session's tunnel process needs for its forwards (`TunnelRunner`): the control socket,
/// who logs in to the container, and the forwards it starts with.
public struct ForwardSetup: Sendable, Equatable {
    public var session: String
    public var controlPath: String
    public var user: String
    public var identityFile: String
    public var forwards: [PortForward]

    public init(session: String, controlPath: String, user: String, identityFile: String, forwards: [PortForward] = []) {
        self.session = session
        self.controlPath = controlPath
        self.user = user
        self.identityFile = identityFile
        self.forwards = forwards
    }

    /// The hidden flags of `dbgbox tunnel` that carry it.
    public var tunnelFlags: [String] {
        var flags = ["--control", controlPath, "--container-user", user, "--container-key", identityFile]
        for forward in forwards {
            flags += [forward.direction == .forward ? "--forward" : "--reverse", forward.spec]
        }
        return flags
    }
}

extension PortForward {
    /// Checks the laptop side of new forwards before anything is made (`up`): each LOCAL free
    /// (`probe`), `auto` replaced by a free port, no two clashing. `existing`: session `session`'s
    /// forwards. Throws `ForwardError`.
    public static func resolveLocals(_ forwards: [PortForward], existing: [PortForward] = [], session: String? = nil,
                                     probe: PortProbe = BindPortProbe(),
                                     freePort: () throws -> Int = LoopbackPortFinder.freePort) throws -> [PortForward] {
        if let (new, old) = firstClash(forwards, existing: existing) {
            throw ForwardError.duplicate(new: new, existing: old, session: existing.contains(old) ? session : nil)
        }
        var resolved: [PortForward] = []
        for var forward in forwards {
            if forward.direction == .forward {
                if forward.local == 0 {
                    forward.local = try freePort()
                } else if !probe.isFree(UInt16(clamping: forward.local)) {
                    throw ForwardError.localTaken(port: forward.local, why: "in use")
                }
            }
            resolved.append(forward)
        }
        return resolved
    }
}

/// `dbgbox forward`: changes a running session's forwards through its tunnel's control channel
/// and keeps the session record listing them. Never prints.
public struct SessionForwards {
    public var manager: SessionManager
    /// Sends a request to a tunnel (the control socket; a fake in tests).
    public var send: (ForwardControlRequest, _ path: String, _ session: String) throws -> ForwardControlReply

    public init(manager: SessionManager,
                send: @escaping (ForwardControlRequest, String, String) throws -> ForwardControlReply = { request, path, session in
                    try ForwardControl.send(request, to: path, session: session)
                }) {
        self.manager = manager
        self.send = send
    }

    /// The running session `name` (its tunnel alive), else a one-line error.
    private func running(_ name: String) throws -> SessionRecord {
        guard let record = try manager.store.load(name) else { throw SessionManagerError.noSuchSession(name) }
        guard manager.liveness.state(of: record) == .alive else { throw ForwardError.deadSession(name: name) }
        return record
    }

    /// Adds forwards to a running session, all or none; returns them resolved (auto → the port).
    public func add(_ forwards: [PortForward], to name: String) throws -> [PortForward] {
        let record = try running(name)
        if let (new, old) = PortForward.firstClash(forwards, existing: record.forwards ?? []) {
            throw ForwardError.duplicate(new: new, existing: old, session: record.forwards?.contains(old) == true ? name : nil)
        }
        let reply = try send(ForwardControlRequest(op: .add, forwards: forwards), manager.controlPath(name), name)
        if let error = reply.error { throw DbgboxError(error) }
        try update(name) { $0 + reply.forwards }
        return reply.forwards
    }

    /// Removes the forwards of these container ports; returns what went.
    public func remove(ports: [Int], from name: String) throws -> [PortForward] {
        let record = try running(name)
        for port in ports where !(record.forwards ?? []).contains(where: { $0.port == port }) {
            throw ForwardError.notForwarded(name: name, port: port)
        }
        let reply = try send(ForwardControlRequest(op: .remove, ports: ports), manager.controlPath(name), name)
        if let error = reply.error { throw DbgboxError(error) }
        try update(name) { list in list.filter { !reply.forwards.contains($0) && !ports.contains($0.port) } }
        return reply.forwards
    }

    /// Rewrites the record's forwards (read again: another command may have changed it).
    private func update(_ name: String, _ change: ([PortForward]) -> [PortForward]) throws {
        guard var record = try manager.store.load(name) else { return }
        let list = change(record.forwards ?? [])
        record.forwards = list.isEmpty ? nil : list
        try manager.store.save(record)
    }
}
