import Foundation

/// The public key a container authorizes, read from the user's `.pub` file with the checks that
/// save a confusing login failure later.
public enum AuthorizedKey {
    /// `~/.ssh/id_dbgbox.pub` under `home`.
    public static func defaultPath(home: String) -> String { "\(home)/.ssh/id_dbgbox.pub" }

    /// Reads and checks the key file; returns the key and the exact line to authorize.
    public static func load(path: String, fs: FileSystem) throws -> (key: SSHPublicKey, line: String) {
        guard fs.exists(path) else { throw ContainerError.keyMissing(path) }
        guard !fs.isDirectory(path) else { throw ContainerError.keyUnreadable(path, why: "it is a directory") }
        let text: String
        do { text = String(decoding: try fs.read(path, as: .publicKey), as: UTF8.self) } catch {
            throw ContainerError.keyUnreadable(path, why: FileSystemError.reason(error, otherwise: "it cannot be read"))
        }
        if text.contains("PRIVATE KEY-----") || text.contains("PuTTY-User-Key-File") {
            throw ContainerError.keyIsPrivate(path)
        }
        let lines = text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty && !$0.hasPrefix("#") }
        guard lines.count == 1, let line = lines.first else {
            throw ContainerError.keyUnreadable(path, why: lines.isEmpty ? "it is empty" : "it has \(lines.count) lines, not one public key")
        }
        let type = line.split(separator: " ").first.map(String.init) ?? ""
        if type == "ssh-rsa" || type.hasPrefix("rsa-sha2") { throw ContainerError.keyIsRSA(path) }
        if type == "ssh-dss" { throw ContainerError.keyUnsupported(path, type: type) }
        let key: SSHPublicKey
        do { key = try SSHPublicKey(line: line) } catch {
            throw ContainerError.keyUnreadable(path, why: "it is not an OpenSSH public key line")
        }
        return (key, line)
    }
}

/// Everything `docker run` needs for one dbgbox container. Pure data; `dockerRunArguments` is the argv.
public struct ContainerSpec: Sendable, Equatable {
    public var name: String
    public var image: String
    public var user: UserIdentity
    public var port: UInt16
    public var authorizedKeyLine: String
    public var ttl: TTL
    public var expires: Date?
    public var gpu: GPUSelection
    /// User mounts; the home directory is added by `dockerRunArguments`.
    public var mounts: [BindMount]
    /// `--security-opt no-new-privileges`: sshd needs no setuid helper to log the user in.
    public var noNewPrivileges: Bool

    public init(name: String, image: String, user: UserIdentity, port: UInt16, authorizedKeyLine: String,
                ttl: TTL, expires: Date?, gpu: GPUSelection, mounts: [BindMount], noNewPrivileges: Bool = true) {
        self.name = name
        self.image = image
        self.user = user
        self.port = port
        self.authorizedKeyLine = authorizedKeyLine
        self.ttl = ttl
        self.expires = expires
        self.gpu = gpu
        self.mounts = mounts
        self.noNewPrivileges = noNewPrivileges
    }

    public static let labelOwner = "dbgbox.owner"
    public static let labelOwnerUID = "dbgbox.owner-uid"
    public static let labelPort = "dbgbox.port"
    public static let labelTTL = "dbgbox.ttl"
    public static let labelExpires = "dbgbox.expires"
    public static let labelGPUs = "dbgbox.gpus"

    public var hostKeyAlias: String { Self.hostKeyAlias(for: name) }
    public static func hostKeyAlias(for name: String) -> String { "dbgbox-\(name)" }

    /// Docker's rule for container names (ids fit it too): `[a-zA-Z0-9][a-zA-Z0-9_.-]*`. A name
    /// outside it cannot exist, so saying "nothing removed" would hide a typo.
    public static func validateName(_ name: String) throws {
        func alphanumeric(_ c: Unicode.Scalar) -> Bool {
            ("a"..."z").contains(c) || ("A"..."Z").contains(c) || ("0"..."9").contains(c)
        }
        guard let first = name.unicodeScalars.first, alphanumeric(first),
              name.unicodeScalars.allSatisfy({ alphanumeric($0) || "_.-".unicodeScalars.contains($0) }) else {
            throw ContainerError.invalidName(name)
        }
    }

    public var labels: [(String, String)] { labels(port: String(port)) }

    /// The labels with the port as given (a job script passes its own, picked on the node).
    func labels(port: String) -> [(String, String)] {
        [
            (Self.labelOwner, user.name),
            (Self.labelOwnerUID, String(user.uid)),
            (Self.labelPort, port),
            (Self.labelTTL, String(ttl.seconds)),
            (Self.labelExpires, expires.map(Self.iso8601) ?? ""),
            (Self.labelGPUs, gpu.label),
        ]
    }

    public static func iso8601(_ date: Date) -> String {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime]
        f.timeZone = TimeZone(identifier: "UTC")
        return f.string(from: date)
    }

    public static func parseISO8601(_ text: String) -> Date? {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime]
        return f.date(from: text)
    }

    /// The home directory first, at the same path, then the user's mounts.
    public var allMounts: [BindMount] { [BindMount(source: user.home, target: user.home)] + mounts }

    /// `docker run -d --rm --init …` for this spec (without the leading "docker").
    public var dockerRunArguments: [String] { dockerRunArguments(port: String(port), gpuArguments: gpu.dockerArguments) }

    /// The same argv with the port and the GPU flags as given: a job script renders it with its
    /// own port and GPUs, which it picks on the node (see `JobScript`).
    func dockerRunArguments(port: String, gpuArguments: [String], extra: [String] = []) -> [String] {
        var args = ["run", "-d", "--rm", "--init", "--name", name]
        for (key, value) in labels(port: port) { args += ["--label", "\(key)=\(value)"] }
        if noNewPrivileges { args += ["--security-opt", "no-new-privileges"] }
        args += ["-e", "DBGBOX_AUTHORIZED_KEY=\(authorizedKeyLine)", "-e", "DBGBOX_TTL=\(ttl.seconds)", "-e", "HOME=\(user.home)"]
        args += extra
        args += ["-p", "127.0.0.1:\(port):22"]
        args += gpuArguments
        for mount in allMounts { args += mount.dockerArguments }
        args.append(image)
        return args
    }

    /// Refuses two mounts onto one target (the home directory included).
    public static func checkMountTargets(_ mounts: [BindMount], home: String) throws {
        var seen: Set<String> = [home]
        for mount in mounts where !seen.insert(mount.target).inserted {
            throw MountError.duplicateTarget(mount.target)
        }
    }
}

public enum ContainerError: UserFacingError, Equatable {
    case keyMissing(String)
    case keyUnreadable(String, why: String)
    case keyIsPrivate(String)
    case keyIsRSA(String)
    case keyUnsupported(String, type: String)
    case imageMissing(String)
    case imageNotDbgbox(String)
    case imageOfOtherUser(String, owner: String, user: String)
    case runFailed(String)
    case nameCollisions(attempts: Int)
    case exitedAtStart(name: String, logs: String?)
    case notReady(name: String, seconds: Int)
    case hostKeyUnreadable(name: String, why: String)
    case noSuchContainer(String)
    case notDbgbox(String)
    case otherOwner(name: String, owner: String)
    case invalidName(String)

    public var description: String {
        switch self {
        case .keyMissing(let path):
            return "public key \(path) does not exist: run dbgbox keygen, or pass --key PUBFILE"
        case .keyUnreadable(let path, let why):
            return "public key \(path) is unusable (\(why)): pass the .pub file that dbgbox keygen wrote"
        case .keyIsPrivate(let path):
            return "\(path) is a private key: pass the .pub file beside it, and never copy the private key anywhere"
        case .keyIsRSA(let path):
            return "\(path) is an RSA key, refused: libssh2 1.10 has no rsa-sha2 signatures and modern sshd rejects SHA-1 ssh-rsa: run dbgbox keygen for an ed25519 key"
        case .keyUnsupported(let path, let type):
            return "\(path) is a \(type) key, which modern sshd rejects: run dbgbox keygen for an ed25519 key"
        case .imageMissing(let image):
            return "image \(image) does not exist on this node: build it with `dbgbox image create --base IMAGE`"
        case .imageNotDbgbox(let image):
            return "image \(image) was not built by dbgbox (no dbgbox.user label): build one with `dbgbox image create --base \(image)`"
        case .imageOfOtherUser(let image, let owner, let user):
            return "image \(image) was built for \(owner), not \(user): build your own with `dbgbox image create`"
        case .runFailed(let why):
            return "docker run failed: \(why)"
        case .nameCollisions(let attempts):
            return "could not find a free container name after \(attempts) tries: remove old containers with dbgbox cleanup"
        case .exitedAtStart(let name, let logs):
            if let logs { return "container \(name) exited at start; its last log lines: \(logs)" }
            return "container \(name) exited at start and docker removed it with its logs: rebuild the image with dbgbox image create and try again"
        case .notReady(let name, let seconds):
            return "container \(name) did not start sshd within \(seconds) s, so it was removed: check the image with dbgbox image create and try again"
        case .hostKeyUnreadable(let name, let why):
            return "cannot read the ssh host key of container \(name) (\(why)), so it was removed: rebuild the image with dbgbox image create"
        case .noSuchContainer(let name):
            return "no container named \(name): see your containers with dbgbox container list"
        case .notDbgbox(let name):
            return "container \(name) was not made by dbgbox: dbgbox removes only its own containers"
        case .otherOwner(let name, let owner):
            return "container \(name) belongs to \(owner): dbgbox works only with your own containers"
        case .invalidName(let name):
            return "\(shown(name)) cannot be a container name (docker names are letters, digits and _.- after a letter or digit): see your containers with dbgbox container list"
        }
    }
}
