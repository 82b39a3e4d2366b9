import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Where docker and the node checks run: this machine, or the node through a `RemoteProcessRunner`.
/// The commands take everything node-side from here (runner, port probe, the node's files, the
/// GPU allocation variables, the user to mirror); files of the laptop (keys, known_hosts, pinned
/// host keys, templates) stay local.
public struct NodeEnvironment: Sendable {
    public let runner: ProcessRunner
    /// "node HOST:PORT"; nil when acting locally.
    public let remoteName: String?
    private let closer: @Sendable () -> Void
    /// This machine's user for `--user` (or none): passwd, unless a context gives its own.
    private let localIdentity: @Sendable (String?) throws -> UserIdentity

    /// `remoteName` nil: this machine. Otherwise `runner` runs on that node and `close` ends it.
    public init(runner: ProcessRunner, remoteName: String?, close: @escaping @Sendable () -> Void = {},
                localIdentity: @escaping @Sendable (String?) throws -> UserIdentity = { try UserIdentity.resolve(requested: $0) }) {
        self.runner = runner
        self.remoteName = remoteName
        self.closer = close
        self.localIdentity = localIdentity
    }

    public static func local(runner: ProcessRunner = LocalProcessRunner(),
                             identity: @escaping @Sendable (String?) throws -> UserIdentity = { try UserIdentity.resolve(requested: $0) })
        -> NodeEnvironment {
        NodeEnvironment(runner: runner, remoteName: nil, localIdentity: identity)
    }

    public static func remote(_ runner: RemoteProcessRunner) -> NodeEnvironment {
        NodeEnvironment(runner: runner, remoteName: runner.nodeName, close: { runner.close() })
    }

    public var isRemote: Bool { remoteName != nil }

    /// "node HOST:PORT" or "this machine".
    public var name: String { remoteName ?? "this machine" }

    /// Whether something listens on a port of the node.
    public var portProbe: PortProbe {
        isRemote ? ProcNetPortProbe(runner: runner) : BindPortProbe()
    }

    /// The node's files (mount sources, $PBS_GPUFILE): read with `cat`/`test` there when remote.
    public var files: FileSystem {
        isRemote ? RemoteFiles(runner: runner) : LocalFileSystem()
    }

    /// The scheduler's GPU allocation variables as the node's commands see them.
    public func gpuVariables() throws -> [String: String] {
        guard isRemote else { return ProcessInfo.processInfo.environment }
        let result = try runner.run(["printenv"])
        var env: [String: String] = [:]
        for line in result.stdoutText.split(whereSeparator: \.isNewline) {
            guard let eq = line.firstIndex(of: "=") else { continue }
            let key = String(line[..<eq])
            if NodeEnvironment.gpuVariableNames.contains(key) { env[key] = String(line[line.index(after: eq)...]) }
        }
        return env
    }

    public static let gpuVariableNames = ["PBS_GPUFILE", "SLURM_JOB_GPUS", "CUDA_VISIBLE_DEVICES"]

    /// The user to mirror: locally the invoking user (or `--user`, root only); remotely the node
    /// user the session logged in as (`--user` does not apply there, and root is refused).
    public func identity(requested: String?) throws -> UserIdentity {
        guard let remoteName else { return try localIdentity(requested) }
        if let requested {
            throw DbgboxError("--user \(requested) acts for a user of this machine: with --node, dbgbox acts for the node user you log in as; set it with --node USER@HOST")
        }
        return try RemoteIdentity.query(runner: runner, node: remoteName)
    }

    /// Rewrites errors whose fix differs on a node (a scheduler allocation invisible to ssh).
    public func explain(_ error: Error) -> Error {
        guard let remoteName, case GPUError.noAllocation(let letter) = error else { return error }
        return DbgboxError("--gpu \(letter): no GPU allocation visible on \(remoteName): a plain ssh exec usually does not see your job's variables (\(NodeEnvironment.gpuVariableNames.joined(separator: ", "))): pass explicit ids instead, e.g. --gpu 0,1")
    }

    /// Ends the remote session, if any.
    public func close() { closer() }
}

/// The node user's identity, from `id` and `getent passwd` run there.
public enum RemoteIdentity {
    public static func query(runner: ProcessRunner, node: String) throws -> UserIdentity {
        func value(_ argv: [String]) throws -> String {
            let result = try runner.run(argv)
            let text = result.stdoutText.trimmingCharacters(in: .whitespacesAndNewlines)
            guard result.succeeded, !text.isEmpty else {
                throw DbgboxError("`\(shellQuote(argv))` failed on \(node) (exit \(result.exitCode)): \(condense(result.stderrText, limit: 120)): check the node user's account")
            }
            return text
        }
        guard let uid = UInt32(try value(["id", "-u"])), let gid = UInt32(try value(["id", "-g"])) else {
            throw DbgboxError("`id` on \(node) did not print numbers: check the node user's account")
        }
        let name = try value(["id", "-un"])
        let home = try parseHome(passwdLine: try value(["getent", "passwd", name]))
        guard let home else { throw DbgboxError("getent passwd \(name) on \(node) gives no home directory: check the account") }
        guard uid != 0 else {
            throw DbgboxError("the node session logs in as root, and would mirror root into the container: log in as your own user (--node USER@HOST)")
        }
        return UserIdentity(name: name, uid: uid, gid: gid, home: home)
    }

    /// The home directory (6th field) of a passwd line.
    public static func parseHome(passwdLine: String) throws -> String? {
        let fields = passwdLine.split(separator: "\n").first.map { $0.split(separator: ":", omittingEmptySubsequences: false) } ?? []
        guard fields.count >= 7, fields[5].hasPrefix("/") else { return nil }
        return String(fields[5])
    }
}

/// Whether a port listens on the node, from `/proc/net/tcp` and `/proc/net/tcp6` read there.
/// The listening set is read once per second at most (an auto port may probe many candidates).
public final class ProcNetPortProbe: PortProbe, @unchecked Sendable {
    let runner: ProcessRunner
    private let lock = NSLock()
    private var cached: (ports: Set<UInt16>, at: Date)?

    public init(runner: ProcessRunner) { self.runner = runner }

    public func isFree(_ port: UInt16) -> Bool {
        lock.lock(); defer { lock.unlock() }
        if let cached, Date().timeIntervalSince(cached.at) < 1 { return !cached.ports.contains(port) }
        // tcp6 is absent without IPv6: cat then exits 1 but still prints tcp.
        guard let result = try? runner.run(["cat", "/proc/net/tcp", "/proc/net/tcp6"]), !result.stdout.isEmpty else {
            return true // cannot tell: docker's own bind still refuses a taken port
        }
        let ports = Self.listeningPorts(result.stdoutText)
        cached = (ports, Date())
        return !ports.contains(port)
    }

    /// Local ports in state LISTEN (0A) in `/proc/net/tcp{,6}` text, on any address.
    public static func listeningPorts(_ text: String) -> Set<UInt16> {
        var ports = Set<UInt16>()
        for line in text.split(whereSeparator: \.isNewline) {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            // "sl local_address rem_address st ...": local is ADDRHEX:PORTHEX.
            guard fields.count > 3, fields[0].hasSuffix(":"), fields[3].uppercased() == "0A",
                  let colon = fields[1].lastIndex(of: ":"),
                  let port = UInt16(fields[1][fields[1].index(after: colon)...], radix: 16) else { continue }
            ports.insert(port)
        }
        return ports
    }
}

/// The node's files, read-only, through the runner (`cat`, `test`).
public struct RemoteFiles: FileSystem {
    let runner: ProcessRunner

    public init(runner: ProcessRunner) { self.runner = runner }

    /// `test -f` first (a regular file, through links), then at most one byte past the limit with
    /// `head -c`, so a directory, FIFO or device on the node is refused as locally.
    public func read(_ path: String, as kind: FileKind) throws -> Data {
        if (try? runner.run(["test", "-e", path]).succeeded) == true,
           (try? runner.run(["test", "-f", path]).succeeded) == false {
            throw DbgboxError("\(path) on the node: not a regular file (a directory, FIFO or device)")
        }
        let result = try runner.run(["head", "-c", String(kind.limit + 1), "--", path])
        guard result.succeeded else {
            throw DbgboxError("cannot read \(path) on the node: \(condense(result.stderrText, limit: 120)): check the path there")
        }
        guard result.stdout.count <= kind.limit else { throw FileSystemError.tooLarge(path: "\(path) on the node", kind: kind) }
        return result.stdout
    }

    public func exists(_ path: String) -> Bool { (try? runner.run(["test", "-e", path]).succeeded) ?? false }
    public func isDirectory(_ path: String) -> Bool { (try? runner.run(["test", "-d", path]).succeeded) ?? false }

    public func realPath(_ path: String) throws -> String {
        let result = try runner.run(["realpath", "-e", "--", path])
        let resolved = result.stdoutText.trimmingCharacters(in: .newlines)
        guard result.succeeded, resolved.hasPrefix("/"), !resolved.contains(where: \.isNewline) else {
            throw DbgboxError("cannot resolve \(condense(path, limit: 120)) on the node: \(condense(result.stderrText, limit: 120))")
        }
        return resolved
    }

    private func readOnly(_ path: String) -> Error {
        DbgboxError("\(path) is on the node: dbgbox only reads the node's files")
    }
    public func writeAtomically(_ data: Data, to path: String, mode: mode_t?) throws { throw readOnly(path) }
    public func append(_ data: Data, to path: String, mode: mode_t) throws { throw readOnly(path) }
    public func createDirectory(_ path: String, mode: mode_t) throws { throw readOnly(path) }
    public func remove(_ path: String) throws { throw readOnly(path) }
    public func mode(of path: String) throws -> mode_t { throw readOnly(path) }
    public func setMode(_ mode: mode_t, of path: String) throws { throw readOnly(path) }
    public func withExclusiveLock<T>(_ lockPath: String, _ body: () throws -> T) throws -> T { throw readOnly(lockPath) }
}
