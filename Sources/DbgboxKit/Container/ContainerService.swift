import Foundation

/// The checked inputs of `dbgbox container create`.
public struct ContainerCreateRequest: Sendable {
    public var user: UserIdentity
    public var image: String
    public var gpu: GPUSelection
    public var port: PortRequest
    public var mounts: [BindMount]
    public var authorizedKeyLine: String
    public var ttl: TTL

    public init(user: UserIdentity, image: String, gpu: GPUSelection, port: PortRequest, mounts: [BindMount],
                authorizedKeyLine: String, ttl: TTL) {
        self.user = user
        self.image = image
        self.gpu = gpu
        self.port = port
        self.mounts = mounts
        self.authorizedKeyLine = authorizedKeyLine
        self.ttl = ttl
    }

    /// `<user>/ssh:latest`, what `dbgbox image create` builds by default.
    public static func defaultImage(for user: UserIdentity) -> String { "\(user.name)/ssh:latest" }
}

/// A container that is up with its host key pinned.
public struct CreatedContainer: Sendable, Equatable {
    public var spec: ContainerSpec
    public var hostKey: SSHPublicKey
    public var hostKeyFingerprint: String
    public var knownHostsPath: String

    /// The exact ssh command; `identityFile` is the private key beside the authorized .pub.
    public func sshCommand(identityFile: String) -> [String] {
        ["ssh", "-p", String(spec.port), "-i", identityFile,
         "-o", "HostKeyAlias=\(spec.hostKeyAlias)",
         "-o", "UserKnownHostsFile=\(knownHostsPath)",
         "-o", "StrictHostKeyChecking=yes",
         "\(spec.user.name)@127.0.0.1"]
    }
}

/// One row of `dbgbox container list`.
public struct ContainerSummary: Sendable, Equatable {
    public var name: String
    public var port: UInt16?
    public var status: String
    /// Seconds until expiry; nil when it has no TTL.
    public var secondsLeft: Int?
    public var gpus: String
}

/// What cleanup removed, or would remove with a dry run.
public struct CleanupReport: Sendable, Equatable {
    public var containers: [String] = []
    public var pinnedAliases: [String] = []
    public var knownHostsEntries: [RemovedKnownHostsEntry] = []
    public var dryRun: Bool
}

/// Creates, lists and removes a user's dbgbox containers. Never prints; side effects go through
/// the docker client, the file system and the clock.
public struct ContainerService: Sendable {
    public var docker: DockerClient
    public var fs: FileSystem
    public var clock: WallClock
    public var portProbe: PortProbe
    /// Waits between readiness polls; tests pass a no-op.
    public var sleep: @Sendable (TimeInterval) -> Void
    /// Random numbers for names and auto ports; tests pass a seeded source.
    public var random: @Sendable (ClosedRange<Int>) -> Int
    public var readyTimeout: TimeInterval = 20
    public var maxAttempts = 10

    public init(docker: DockerClient, fs: FileSystem = LocalFileSystem(), clock: WallClock = SystemWallClock(),
                portProbe: PortProbe = BindPortProbe(),
                sleep: @escaping @Sendable (TimeInterval) -> Void = { Thread.sleep(forTimeInterval: $0) },
                random: @escaping @Sendable (ClosedRange<Int>) -> Int = { Int.random(in: $0) }) {
        self.docker = docker
        self.fs = fs
        self.clock = clock
        self.portProbe = portProbe
        self.sleep = sleep
        self.random = random
    }

    // MARK: create

    /// Checks that the image exists and was built by dbgbox for this user.
    public func checkImage(_ image: String, user: UserIdentity) throws {
        guard let labels = try docker.imageLabels(image) else { throw ContainerError.imageMissing(image) }
        guard let owner = labels["dbgbox.user"], !owner.isEmpty else { throw ContainerError.imageNotDbgbox(image) }
        guard owner == user.name else { throw ContainerError.imageOfOtherUser(image, owner: owner, user: user.name) }
    }

    /// Refuses a port something listens on or another container publishes.
    public func checkPortFree(_ port: UInt16) throws {
        if let owner = try docker.publishedPorts()[port] { throw PortError.publishedBy(port, container: owner) }
        guard portProbe.isFree(port) else { throw PortError.listening(port) }
    }

    func pickAutoPort(avoiding published: [UInt16: String], tried: Set<UInt16>) throws -> UInt16 {
        let range = PortRequest.autoRange
        for _ in 0..<200 {
            let port = UInt16(random(Int(range.lowerBound)...Int(range.upperBound)))
            if tried.contains(port) || published[port] != nil { continue }
            if portProbe.isFree(port) { return port }
        }
        throw PortError.noFreePort(attempts: 200)
    }

    func randomName(for user: UserIdentity) -> String {
        "\(user.name)_\(String(format: "%05d", random(0...99999)))"
    }

    /// Runs the container, waits for sshd, pins its host key. Anything failing after `docker run`
    /// removes the container again.
    public func create(_ request: ContainerCreateRequest, pinnedPath: String) throws -> CreatedContainer {
        try checkImage(request.image, user: request.user)
        try ContainerSpec.checkMountTargets(request.mounts, home: request.user.home)
        if case .fixed(let port) = request.port { try checkPortFree(port) }

        var triedPorts = Set<UInt16>()
        var published: [UInt16: String] = [:]
        if request.port == .auto { published = try docker.publishedPorts() }
        var nameCollisions = 0
        var portCollisions = 0
        var spec: ContainerSpec?
        while spec == nil {
            let port: UInt16
            switch request.port {
            case .fixed(let p): port = p
            case .auto: port = try pickAutoPort(avoiding: published, tried: triedPorts)
            }
            triedPorts.insert(port)
            let start = clock.now()
            let candidate = ContainerSpec(name: randomName(for: request.user), image: request.image, user: request.user,
                                          port: port, authorizedKeyLine: request.authorizedKeyLine, ttl: request.ttl,
                                          expires: request.ttl.expiry(from: start), gpu: request.gpu, mounts: request.mounts)
            let result = try docker.run(candidate.dockerRunArguments)
            if result.succeeded { spec = candidate; break }
            let stderr = result.stderrText
            let lower = stderr.lowercased()
            if lower.contains("conflict") && lower.contains("already in use") {
                nameCollisions += 1
                if nameCollisions >= maxAttempts { throw ContainerError.nameCollisions(attempts: nameCollisions) }
                continue
            }
            if lower.contains("port is already allocated") || lower.contains("address already in use") {
                // docker may leave the created container behind when the start fails.
                try? docker.forceRemove(candidate.name)
                guard request.port == .auto else { throw PortError.listening(port) }
                portCollisions += 1
                if portCollisions >= maxAttempts { throw PortError.noFreePort(attempts: portCollisions) }
                continue
            }
            try? docker.forceRemove(candidate.name)
            throw ContainerError.runFailed(condense(stderr))
        }
        let made = spec!
        do {
            try waitUntilReady(made.name)
            let key = try readHostKey(made.name)
            let pinned = PinnedHostKeys(path: pinnedPath, fs: fs)
            try pinned.pin(alias: made.hostKeyAlias, key: key)
            return CreatedContainer(spec: made, hostKey: key, hostKeyFingerprint: key.fingerprintSHA256, knownHostsPath: pinnedPath)
        } catch {
            try? docker.forceRemove(made.name)
            throw error
        }
    }

    func waitUntilReady(_ name: String) throws {
        let deadline = clock.now().addingTimeInterval(readyTimeout)
        while true {
            guard let state = try docker.container(named: name) else {
                throw ContainerError.exitedAtStart(name: name, logs: nil)
            }
            if state.status == "exited" || state.status == "dead" {
                let logs = docker.logTail(name)
                throw ContainerError.exitedAtStart(name: name, logs: logs.map { "exit code \(state.exitCode): \($0)" } ?? "exit code \(state.exitCode)")
            }
            if state.status == "running", (try docker.exec(name, ["test", "-e", "/run/dbgbox-ready"])).succeeded {
                return
            }
            if clock.now() >= deadline { throw ContainerError.notReady(name: name, seconds: Int(readyTimeout)) }
            sleep(0.2)
        }
    }

    func readHostKey(_ name: String) throws -> SSHPublicKey {
        let result = try docker.exec(name, ["cat", "/etc/ssh/ssh_host_ed25519_key.pub"])
        guard result.succeeded else { throw ContainerError.hostKeyUnreadable(name: name, why: condense(result.stderrText, limit: 120)) }
        let line = result.stdoutText.trimmingCharacters(in: .whitespacesAndNewlines)
        do { return try SSHPublicKey(line: line) } catch {
            throw ContainerError.hostKeyUnreadable(name: name, why: "not a public key line")
        }
    }

    // MARK: list

    /// The caller's own containers (label dbgbox.owner-uid = uid), sorted by name.
    public func list(user: UserIdentity) throws -> [ContainerSummary] {
        let ids = try docker.containerIDs(filters: ["label=\(ContainerSpec.labelOwnerUID)=\(user.uid)"])
        let now = clock.now()
        return try docker.inspect(ids).map { c in
            let expires = c.labels[ContainerSpec.labelExpires].flatMap(ContainerSpec.parseISO8601)
            return ContainerSummary(name: c.name, port: c.labels[ContainerSpec.labelPort].flatMap { UInt16($0) },
                                    status: c.status, secondsLeft: expires.map { max(0, Int($0.timeIntervalSince(now).rounded())) },
                                    gpus: c.labels[ContainerSpec.labelGPUs] ?? "")
        }.sorted { $0.name < $1.name }
    }

    // MARK: remove

    /// The container if it is the user's own dbgbox container; throws naming why not.
    public func ownContainer(_ name: String, user: UserIdentity) throws -> DockerContainer {
        guard let c = try docker.container(named: name) else { throw ContainerError.noSuchContainer(name) }
        guard let owner = c.labels[ContainerSpec.labelOwner], let uid = c.labels[ContainerSpec.labelOwnerUID] else {
            throw ContainerError.notDbgbox(name)
        }
        guard uid == String(user.uid) else { throw ContainerError.otherOwner(name: name, owner: owner) }
        return c
    }

    /// Removes the named containers and their pinned host keys; checks every name before removing any.
    public func remove(names: [String], user: UserIdentity, pinnedPath: String) throws -> [String] {
        let containers = try names.map { try ownContainer($0, user: user) }
        let pinned = PinnedHostKeys(path: pinnedPath, fs: fs)
        for c in containers {
            try docker.forceRemove(c.name)
            if fs.exists(pinnedPath) { try pinned.remove(alias: ContainerSpec.hostKeyAlias(for: c.name)) }
        }
        return containers.map(\.name)
    }

    // MARK: cleanup

    /// Removes the container (or, without `container` and `port`, every container of the user; with only
    /// `port`, the user's containers on that port), their pinned keys, and the `[127.0.0.1]:N` /
    /// `[localhost]:N` entries in `knownHostsPath` for every port involved.
    public func cleanup(user: UserIdentity, container: String?, port: UInt16?, knownHostsPath: String,
                        pinnedPath: String, dryRun: Bool) throws -> CleanupReport {
        // The files first: an odd known_hosts (a directory, a FIFO) stops before docker removes anything.
        try fs.checkIfPresent(knownHostsPath, as: .knownHosts)
        try fs.checkIfPresent(pinnedPath, as: .knownHosts)
        var targets: [DockerContainer] = []
        var aliases: [String] = []
        if let container {
            try ContainerSpec.validateName(container)
            if let c = try? ownContainer(container, user: user) {
                targets = [c]
            } else if try docker.container(named: container) != nil {
                _ = try ownContainer(container, user: user) // rethrows the precise refusal
            }
            // Gone already (e.g. its TTL ran out): its pinned key may still be there.
            aliases = [ContainerSpec.hostKeyAlias(for: container)]
        } else {
            let all = try docker.inspect(try docker.containerIDs(filters: ["label=\(ContainerSpec.labelOwnerUID)=\(user.uid)"]))
            targets = port.map { p in all.filter { $0.labels[ContainerSpec.labelPort] == String(p) } } ?? all
            aliases = targets.map { ContainerSpec.hostKeyAlias(for: $0.name) }
        }
        var ports = Set(targets.compactMap { $0.labels[ContainerSpec.labelPort].flatMap { UInt16($0) } })
        if let port { ports.insert(port) }

        var report = CleanupReport(dryRun: dryRun)
        for c in targets {
            if !dryRun { try docker.forceRemove(c.name) }
            report.containers.append(c.name)
        }
        if fs.exists(pinnedPath) {
            let pinned = PinnedHostKeys(path: pinnedPath, fs: fs)
            for alias in aliases {
                if dryRun {
                    if try pinned.key(for: alias) != nil { report.pinnedAliases.append(alias) }
                } else if try pinned.remove(alias: alias) {
                    report.pinnedAliases.append(alias)
                }
            }
        }
        if !ports.isEmpty {
            let hosts = ports.sorted().flatMap { ["[127.0.0.1]:\($0)", "[localhost]:\($0)"] }
            report.knownHostsEntries = try KnownHostsFile(path: knownHostsPath, fs: fs).remove(hosts: hosts, dryRun: dryRun)
        }
        return report
    }
}
