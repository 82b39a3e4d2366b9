import Foundation

/// Session settings from the config file's `defaults:` and `profiles:` (see `DbgboxConfig`).
/// Every field is optional: nil means "not set here", so a lower layer or a built-in default applies.
///
/// Precedence, highest first: the command line, the config file (a profile over `defaults:`),
/// ~/.ssh/config (for what ssh itself resolves: the login host's user, port, identity), then
/// dbgbox's built-in defaults. `filling(from:)` expresses one step of it.
public struct DbgboxSettings: Sendable, Equatable {
    /// The login host, as for `tunnel --login`: `[user@]host[:port]` or an ssh alias.
    public var login: String?
    /// The compute node, as for `--node`.
    public var node: String?
    /// The public key to install and authorize (e.g. `~/.ssh/id_dbgbox.pub`).
    public var key: String?
    /// The image to run (`--image`).
    public var image: String?
    /// The base image to build from (`--base`).
    public var base: String?
    /// A GPU letter, ids, or `none` (`--gpu`).
    public var gpu: String?
    /// Bind mounts, each `SRC:DST` or `SRC:DST:ro` (`-v`).
    public var mounts: [String]?
    /// A port 1024-65535 or `auto` (`--port`).
    public var port: String?
    /// A TTL such as `12h` or `0` (`--ttl`).
    public var ttl: String?
    /// `slurm` or `pbs` (`--scheduler`): sessions start with a scheduler job.
    public var scheduler: String?
    /// Slurm partition or PBS queue (`--partition`).
    public var partition: String?
    /// The job's time limit (`--time`).
    public var time: String?
    /// GPUs to ask the scheduler for (`--gpus`).
    public var gpus: String?
    /// Scheduler arguments for the profile's GPU type (`--gres=gpu:v100:1 --partition=v100`), argv.
    public var jobArgs: [String]?

    public init(login: String? = nil, node: String? = nil, key: String? = nil, image: String? = nil,
                base: String? = nil, gpu: String? = nil, mounts: [String]? = nil, port: String? = nil,
                ttl: String? = nil, scheduler: String? = nil, partition: String? = nil, time: String? = nil,
                gpus: String? = nil, jobArgs: [String]? = nil) {
        self.login = login
        self.node = node
        self.key = key
        self.image = image
        self.base = base
        self.gpu = gpu
        self.mounts = mounts
        self.port = port
        self.ttl = ttl
        self.scheduler = scheduler
        self.partition = partition
        self.time = time
        self.gpus = gpus
        self.jobArgs = jobArgs
    }

    /// The keys of a settings mapping, as written in the file.
    public static let keys = ["base", "gpu", "gpus", "image", "job_args", "key", "login", "mounts", "node", "partition",
                              "port", "scheduler", "time", "ttl"]

    /// These settings, with each field not set here taken from `lower`.
    /// A set `mounts` list replaces the lower one (lists are not concatenated).
    public func filling(from lower: DbgboxSettings) -> DbgboxSettings {
        DbgboxSettings(login: login ?? lower.login, node: node ?? lower.node, key: key ?? lower.key,
                       image: image ?? lower.image, base: base ?? lower.base, gpu: gpu ?? lower.gpu,
                       mounts: mounts ?? lower.mounts, port: port ?? lower.port, ttl: ttl ?? lower.ttl,
                       scheduler: scheduler ?? lower.scheduler, partition: partition ?? lower.partition,
                       time: time ?? lower.time, gpus: gpus ?? lower.gpus, jobArgs: jobArgs ?? lower.jobArgs)
    }

    /// Parses one settings mapping; `context` is its place in the file (`defaults`, `profiles.NAME`).
    static func parse(_ raw: Any, context: String, path: String) throws -> DbgboxSettings {
        var settings = DbgboxSettings()
        if raw is NSNull { return settings }
        guard let fields = raw as? [String: Any] else {
            throw ConfigError.malformed(path: path, why: "\(context) must be a mapping such as `{node: gpu01, gpu: V}`")
        }
        for (key, value) in fields {
            func text() throws -> String? {
                if value is NSNull { return nil }
                guard let text = DbgboxConfig.scalarText(value), !text.isEmpty else {
                    throw ConfigError.malformed(path: path, why: "\(context).\(key) must be a single value, not `\(condense("\(value)", limit: 60))`")
                }
                return text
            }
            switch key {
            case "login": settings.login = try text()
            case "node": settings.node = try text()
            case "key": settings.key = try text()
            case "image": settings.image = try text()
            case "base": settings.base = try text()
            case "gpu": settings.gpu = try text()
            case "port":
                guard let port = try text() else { continue }
                guard port == "auto" || (UInt16(port).map { $0 >= 1024 } ?? false) else {
                    throw ConfigError.malformed(path: path, why: "\(context).port must be auto or a port 1024-65535, not `\(port)`")
                }
                settings.port = port
            case "ttl":
                guard let ttl = try text() else { continue }
                do { _ = try TTL.parse(ttl) } catch {
                    throw ConfigError.malformed(path: path, why: "\(context).ttl must be a duration such as 12h, 90m or 0, not `\(ttl)`")
                }
                settings.ttl = ttl
            case "scheduler":
                guard let text = try text() else { continue }
                do { _ = try SchedulerKind.parse(text) } catch {
                    throw ConfigError.malformed(path: path, why: "\(context).scheduler must be slurm or pbs, not `\(condense(text, limit: 30))`")
                }
                settings.scheduler = text
            case "partition":
                guard let text = try text() else { continue }
                do { try JobRequest.validatePartition(text) } catch {
                    throw ConfigError.malformed(path: path, why: "\(context).partition must be a partition name (letters, digits, _.-), not `\(condense(text, limit: 40))`")
                }
                settings.partition = text
            case "time":
                guard let text = try text() else { continue }
                do { _ = try TimeLimit.parse(text) } catch {
                    throw ConfigError.malformed(path: path, why: "\(context).time must be a time limit such as 2h, 90m or 1-00:00:00, not `\(condense(text, limit: 30))`")
                }
                settings.time = text
            case "gpus":
                guard let text = try text() else { continue }
                guard let n = Int(text), n >= 1 else {
                    throw ConfigError.malformed(path: path, why: "\(context).gpus must be a number of GPUs, 1 or more, not `\(condense(text, limit: 30))`")
                }
                settings.gpus = String(n)
            case "job_args":
                if value is NSNull { continue }
                let items: [Any] = (value as? [Any]) ?? [value]
                settings.jobArgs = try items.map { item in
                    guard let arg = DbgboxConfig.scalarText(item), !arg.isEmpty else {
                        throw ConfigError.malformed(path: path, why: "\(context).job_args must list scheduler arguments such as `--gres=gpu:v100:1`, not `\(condense("\(item)", limit: 60))`")
                    }
                    return arg
                }
            case "mounts":
                if value is NSNull { continue }
                let items: [Any] = (value as? [Any]) ?? [value]
                settings.mounts = try items.map { item in
                    guard let entry = item as? String, entry.split(separator: ":").count >= 2 else {
                        throw ConfigError.malformed(path: path, why: "\(context).mounts must list SRC:DST entries such as `/data:/data`, not `\(condense("\(item)", limit: 60))`")
                    }
                    return entry
                }
            default:
                throw ConfigError.malformed(path: path, why: "unknown key `\(context).\(key)` (known: \(keys.joined(separator: ", ")))")
            }
        }
        return settings
    }
}
