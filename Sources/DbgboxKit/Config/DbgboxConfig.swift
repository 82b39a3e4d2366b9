import Foundation
import Yams

/// The resources a GPU letter gives a container, besides the GPU itself.
public struct GPUProfile: Sendable, Equatable, Codable {
    /// `--cpus` (e.g. "16", "4.5"), or nil for docker's default.
    public var cpus: String?
    /// `--memory` (e.g. "28G"), or nil.
    public var memory: String?
    /// `--memory-swap` (e.g. "28G"), or nil.
    public var memorySwap: String?
    /// A piece of the `nvidia-smi` GPU name this letter stands for (e.g. "V100"); used only to warn
    /// when the scheduler handed out a different model.
    public var model: String?

    public init(cpus: String? = nil, memory: String? = nil, memorySwap: String? = nil, model: String? = nil) {
        self.cpus = cpus
        self.memory = memory
        self.memorySwap = memorySwap
        self.model = model
    }

    /// The docker flags for this profile, in a fixed order.
    public var dockerArguments: [String] {
        var args: [String] = []
        if let cpus { args += ["--cpus", cpus] }
        if let memory { args += ["--memory", memory] }
        if let memorySwap { args += ["--memory-swap", memorySwap] }
        return args
    }
}

/// dbgbox's user configuration, `~/.config/dbgbox/config.yaml`.
///
/// The file is optional. Its format (YAML):
///
/// ```yaml
/// # Each key is a GPU letter for `dbgbox container create --gpu LETTER`.
/// # A profile given here replaces the built-in profile of that letter entirely;
/// # new letters add profiles. Every field is optional.
/// gpu_profiles:
///   V:  {cpus: 16, memory: 28G, memory_swap: 28G}
///   A:  {cpus: 12, memory: 64G, memory_swap: 64G, model: A100}
/// ```
///
/// - `cpus`: a positive number (`--cpus`).
/// - `memory`, `memory_swap`: a size such as `28G`, `512m` or a byte count (`--memory`, `--memory-swap`).
/// - `model`: part of the GPU name `nvidia-smi` reports (e.g. `V100`); dbgbox warns when the allocated
///   GPU's name does not contain it.
///
/// Letters are letters and digits starting with a letter; `none` is reserved.
/// Built-in: P (P100) `--cpus 8 --memory 28G --memory-swap 28G`, V (V100) `--cpus 16`,
/// G (GTX 1080) and GT (GTX 1080 Ti) `--cpus 5 --memory 28G --memory-swap 28G`.
///
/// Session defaults and named profiles (all keys optional; see `DbgboxSettings`):
///
/// ```yaml
/// defaults:
///   login: alice@login.cluster.example    # --login
///   key: ~/.ssh/id_dbgbox.pub             # --key
///   gpu: none                             # --gpu
///   port: auto                            # --port: auto or 1024-65535
///   ttl: 12h                              # --ttl
///   base: debian:bookworm                 # --base
///   image: alice/ssh:latest               # --image
///   mounts: [/data:/data, /scratch:/scratch:ro]
/// profiles:
///   v100:
///     node: gpu07                         # --node
///     gpu: V
///   big: {node: gpu12, gpu: A, ttl: 2d}
/// ```
///
/// `settings(profile:)` gives `defaults:` overlaid with the profile's keys; the command line then
/// overrides that, and what is still unset falls to ~/.ssh/config (for the login host) and then to
/// built-in defaults. Unknown keys are errors naming the file and the key.
public struct DbgboxConfig: Sendable, Equatable {
    public var gpuProfiles: [String: GPUProfile]
    /// `defaults:`.
    public var defaults: DbgboxSettings
    /// `profiles:`, by name.
    public var profiles: [String: DbgboxSettings]
    /// The file this was read from, for errors; nil for the built-in configuration.
    public var sourcePath: String?

    public init(gpuProfiles: [String: GPUProfile] = DbgboxConfig.builtinGPUProfiles,
                defaults: DbgboxSettings = DbgboxSettings(), profiles: [String: DbgboxSettings] = [:],
                sourcePath: String? = nil) {
        self.gpuProfiles = gpuProfiles
        self.defaults = defaults
        self.profiles = profiles
        self.sourcePath = sourcePath
    }

    /// The top-level keys of the file.
    public static let topLevelKeys = ["defaults", "gpu_profiles", "profiles"]

    /// `defaults:` overlaid with `profiles.NAME` (nil: the defaults alone).
    public func settings(profile: String?) throws -> DbgboxSettings {
        guard let profile else { return defaults }
        guard let chosen = profiles[profile] else {
            throw ConfigError.unknownProfile(profile, path: sourcePath, known: profiles.keys.sorted())
        }
        return chosen.filling(from: defaults)
    }

    /// The original scripts' profiles, kept as they were.
    public static let builtinGPUProfiles: [String: GPUProfile] = [
        "P": GPUProfile(cpus: "8", memory: "28G", memorySwap: "28G", model: "P100"),
        "V": GPUProfile(cpus: "16", model: "V100"),
        "G": GPUProfile(cpus: "5", memory: "28G", memorySwap: "28G", model: "1080"),
        "GT": GPUProfile(cpus: "5", memory: "28G", memorySwap: "28G", model: "1080 Ti"),
    ]

    public static func defaultPath(home: String) -> String { "\(home)/.config/dbgbox/config.yaml" }

    /// Reads the config at `path`; a missing file gives the built-in configuration.
    public static func load(path: String, fs: FileSystem = LocalFileSystem()) throws -> DbgboxConfig {
        guard fs.exists(path) else { return DbgboxConfig() }
        let data = try fs.read(path, as: .config)
        return try parse(String(decoding: data, as: UTF8.self), path: path)
    }

    /// The most values (scalars, mappings, sequences, counting each alias as the nodes it stands
    /// for) a config may hold; a real one has a few dozen.
    public static let maxValues = 10_000

    /// Counts `node`'s values against `budget`; false as soon as it runs out (never walks more
    /// than `budget` nodes, however far aliases would expand).
    static func fitsBudget(_ node: Yams.Node, _ budget: inout Int) -> Bool {
        budget -= 1
        guard budget >= 0 else { return false }
        switch node {
        case .scalar, .alias:
            return true
        case .mapping(let mapping):
            for (key, value) in mapping where !fitsBudget(key, &budget) || !fitsBudget(value, &budget) { return false }
            return true
        case .sequence(let sequence):
            for item in sequence where !fitsBudget(item, &budget) { return false }
            return true
        }
    }

    /// Parses config text; `path` only names the file in errors.
    public static func parse(_ text: String, path: String) throws -> DbgboxConfig {
        let root: Any?
        do {
            // Composed first: aliases share their anchor's nodes, so this stays as small as the
            // text. Only a tree of at most `maxValues` values (aliases counted as expanded) is
            // turned into values: "billion laughs" (nested aliases) is refused, not expanded.
            let node = try Yams.compose(yaml: text)
            if let node {
                var budget = maxValues
                guard fitsBudget(node, &budget) else {
                    throw ConfigError.malformed(path: path, why: "more than \(maxValues) values once YAML aliases are expanded: write the profiles out, without nested aliases")
                }
            }
            root = node?.any
        } catch let error as ConfigError {
            throw error
        } catch {
            throw ConfigError.malformed(path: path, why: condense("\(error)"))
        }
        var config = DbgboxConfig()
        guard let root else { return config }
        config.sourcePath = path
        guard let top = root as? [String: Any] else {
            throw ConfigError.malformed(path: path, why: "the top level must be a mapping such as `gpu_profiles: {...}`")
        }
        for key in top.keys.sorted() where !topLevelKeys.contains(key) {
            throw ConfigError.malformed(path: path, why: "unknown key `\(key)` (known: \(topLevelKeys.joined(separator: ", ")))")
        }
        if let rawDefaults = top["defaults"] {
            config.defaults = try DbgboxSettings.parse(rawDefaults, context: "defaults", path: path)
        }
        if let rawNamed = top["profiles"], !(rawNamed is NSNull) {
            guard let named = rawNamed as? [String: Any] else {
                throw ConfigError.malformed(path: path, why: "profiles must map names to settings, e.g. `v100: {node: gpu07, gpu: V}`")
            }
            for (name, raw) in named {
                guard isValidProfileName(name) else {
                    throw ConfigError.malformed(path: path, why: "profile name `\(name)` must be letters, digits, '-' and '_'")
                }
                config.profiles[name] = try DbgboxSettings.parse(raw, context: "profiles.\(name)", path: path)
            }
        }
        guard let rawProfiles = top["gpu_profiles"] else { return config }
        if rawProfiles is NSNull { return config }
        guard let profiles = rawProfiles as? [String: Any] else {
            throw ConfigError.malformed(path: path, why: "gpu_profiles must map letters to profiles, e.g. `V: {cpus: 16}`")
        }
        for (letter, rawProfile) in profiles {
            guard isValidLetter(letter) else {
                throw ConfigError.malformed(path: path, why: "gpu_profiles key `\(letter)` must be letters and digits starting with a letter (and not `none`)")
            }
            var profile = GPUProfile()
            if rawProfile is NSNull { config.gpuProfiles[letter] = profile; continue }
            guard let fields = rawProfile as? [String: Any] else {
                throw ConfigError.malformed(path: path, why: "gpu_profiles.\(letter) must be a mapping such as `{cpus: 16, memory: 28G}`")
            }
            for (field, value) in fields {
                let text = scalarText(value)
                switch field {
                case "cpus":
                    guard let text, let n = Double(text), n > 0, n.isFinite else {
                        throw ConfigError.malformed(path: path, why: "gpu_profiles.\(letter).cpus must be a positive number, not `\(text ?? "\(value)")`")
                    }
                    profile.cpus = text
                case "memory", "memory_swap":
                    guard let text, isValidSize(text) else {
                        throw ConfigError.malformed(path: path, why: "gpu_profiles.\(letter).\(field) must be a size such as 28G or 512m, not `\(text ?? "\(value)")`")
                    }
                    if field == "memory" { profile.memory = text } else { profile.memorySwap = text }
                case "model":
                    guard let text, !text.isEmpty else {
                        throw ConfigError.malformed(path: path, why: "gpu_profiles.\(letter).model must be text such as V100")
                    }
                    profile.model = text
                default:
                    throw ConfigError.malformed(path: path, why: "gpu_profiles.\(letter) has unknown field `\(field)` (known: cpus, memory, memory_swap, model)")
                }
            }
            config.gpuProfiles[letter] = profile
        }
        return config
    }

    static func isValidLetter(_ s: String) -> Bool {
        guard let first = s.unicodeScalars.first, CharacterSet.letters.contains(first), s.lowercased() != "none" else { return false }
        return s.unicodeScalars.allSatisfy { $0.isASCII && CharacterSet.alphanumerics.contains($0) }
    }

    static func isValidProfileName(_ s: String) -> Bool {
        !s.isEmpty && s.unicodeScalars.allSatisfy { $0.isASCII && (CharacterSet.alphanumerics.contains($0) || $0 == "-" || $0 == "_") }
    }

    static func isValidSize(_ s: String) -> Bool {
        s.range(of: #"^[0-9]+(\.[0-9]+)?[bkmgBKMG]?$"#, options: .regularExpression) != nil
    }

    static func scalarText(_ value: Any) -> String? {
        switch value {
        case let s as String: return s
        case let i as Int: return String(i)
        case let d as Double: return d == d.rounded() && abs(d) < 1e15 ? String(Int(d)) : String(d)
        default: return nil
        }
    }
}

public enum ConfigError: UserFacingError, Equatable {
    case malformed(path: String, why: String)
    /// `--profile NAME` names no profile; `path` is nil when there is no config file.
    case unknownProfile(String, path: String?, known: [String])

    public var description: String {
        switch self {
        case .malformed(let path, let why):
            return "config file \(path) is malformed: \(why): fix or remove it"
        case .unknownProfile(let name, let path, let known):
            let file = path ?? "~/.config/dbgbox/config.yaml (which does not exist)"
            let choices = known.isEmpty ? "it defines no profiles" : "known: \(known.joined(separator: ", "))"
            return "no profile `\(name)` in \(file) (\(choices)): use one of those, or add it under `profiles:`"
        }
    }
}

/// Squeezes multi-line text (docker's stderr, YAML errors) into one line.
func condense(_ text: String, limit: Int = 300) -> String {
    let line = text.split(whereSeparator: \.isNewline)
        .map { $0.trimmingCharacters(in: .whitespaces) }
        .filter { !$0.isEmpty }
        .joined(separator: " | ")
    return line.count > limit ? String(line.prefix(limit)) + "…" : line
}
