import Foundation

/// What `--gpu` asked for.
public enum GPURequest: Sendable, Equatable {
    /// No GPU flags at all.
    case none
    /// A profile letter: the devices come from the scheduler's allocation.
    case profile(String)
    /// Explicit device indexes or UUIDs (no CPU/memory profile).
    case ids([String])

    /// Parses `--gpu`: `none`, a profile letter (case-insensitive), or ids such as `0,2` or `GPU-…`.
    public static func parse(_ text: String, profiles: [String: GPUProfile]) throws -> GPURequest {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        if trimmed.lowercased() == "none" { return .none }
        if let letter = profiles.keys.first(where: { $0 == trimmed }) ?? profiles.keys.first(where: { $0.lowercased() == trimmed.lowercased() }) {
            return .profile(letter)
        }
        let parts = trimmed.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
        if !trimmed.isEmpty, parts.allSatisfy(GPURequest.isDeviceID) {
            var seen = Set<String>()
            return .ids(parts.filter { seen.insert($0).inserted })
        }
        throw GPUError.unknownRequest(text, letters: profiles.keys.sorted())
    }

    /// A GPU index (digits) or an NVIDIA UUID (`GPU-` or `MIG-` followed by hex and dashes).
    static func isDeviceID(_ s: String) -> Bool {
        if !s.isEmpty, s.allSatisfy({ $0.isASCII && $0.isNumber }) { return s.count <= 3 }
        for prefix in ["GPU-", "MIG-"] where s.hasPrefix(prefix) {
            let rest = s.dropFirst(prefix.count)
            return !rest.isEmpty && rest.allSatisfy { $0.isHexDigit || $0 == "-" || $0 == "/" }
        }
        return false
    }
}

/// How the devices reach docker.
public enum GPURuntime: String, Sendable, Equatable, CaseIterable {
    /// `--gpus "device=…"` (docker ≥ 19.03 with the NVIDIA container toolkit).
    case gpus
    /// `--runtime nvidia -e NVIDIA_VISIBLE_DEVICES=…` (the older nvidia-docker2 runtime).
    case nvidia

    /// The docker flags that give a container the devices in `list` (comma-separated ids).
    public func deviceArguments(_ list: String) -> [String] {
        switch self {
        case .gpus: return ["--gpus", "\"device=\(list)\""]
        case .nvidia: return ["--runtime", "nvidia", "-e", "NVIDIA_VISIBLE_DEVICES=\(list)"]
        }
    }
}

/// One GPU as `nvidia-smi --query-gpu=index,uuid,name --format=csv,noheader` lists it.
public struct GPUInfo: Sendable, Equatable {
    public var index: String
    public var uuid: String
    public var name: String

    public init(index: String, uuid: String, name: String) {
        self.index = index
        self.uuid = uuid
        self.name = name
    }

    public static let queryArguments = ["nvidia-smi", "--query-gpu=index,uuid,name", "--format=csv,noheader"]

    /// Parses nvidia-smi's CSV (`0, GPU-…, Tesla V100-SXM2-16GB`); blank lines are skipped.
    public static func parseList(_ text: String) throws -> [GPUInfo] {
        var gpus: [GPUInfo] = []
        for raw in text.split(whereSeparator: \.isNewline) {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.isEmpty { continue }
            let fields = line.split(separator: ",", maxSplits: 2).map { $0.trimmingCharacters(in: .whitespaces) }
            guard fields.count == 3, !fields[0].isEmpty, fields[0].allSatisfy(\.isNumber) else {
                throw GPUError.nvidiaSMIOutput(condense(line, limit: 120))
            }
            gpus.append(GPUInfo(index: fields[0], uuid: fields[1], name: fields[2]))
        }
        return gpus
    }
}

/// The GPUs the batch scheduler gave this job.
public struct GPUAllocation: Sendable, Equatable {
    public var ids: [String]
    /// Where they came from, e.g. "PBS_GPUFILE=/var/spool/pbs/aux/123.gpu".
    public var source: String

    public init(ids: [String], source: String) {
        self.ids = ids
        self.source = source
    }

    /// Every GPU in `$PBS_GPUFILE` (lines like `node01-gpu3`), else `$SLURM_JOB_GPUS`, else
    /// `$CUDA_VISIBLE_DEVICES`; nil when none is set (or it names no GPU).
    public static func fromEnvironment(_ env: [String: String], fs: FileSystem) throws -> GPUAllocation? {
        if let path = env["PBS_GPUFILE"], !path.isEmpty {
            guard fs.exists(path) else { throw GPUError.gpuFileUnreadable(path: path, why: "no such file") }
            let text: String
            do { text = String(decoding: try fs.read(path, as: .gpuFile), as: UTF8.self) } catch {
                throw GPUError.gpuFileUnreadable(path: path, why: FileSystemError.reason(error, otherwise: "cannot read it"))
            }
            let ids = try parsePBSGPUFile(text, path: path)
            return ids.isEmpty ? nil : GPUAllocation(ids: ids, source: "PBS_GPUFILE=\(path)")
        }
        for variable in ["SLURM_JOB_GPUS", "CUDA_VISIBLE_DEVICES"] {
            guard let value = env[variable] else { continue }
            let trimmed = value.trimmingCharacters(in: .whitespaces)
            // CUDA's own conventions for "no device".
            if trimmed.isEmpty || trimmed == "NoDevFiles" || trimmed == "-1" { return nil }
            let parts = trimmed.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
            guard parts.allSatisfy(GPURequest.isDeviceID) else {
                throw GPUError.badAllocationVariable(variable: variable, value: value)
            }
            var seen = Set<String>()
            return GPUAllocation(ids: parts.filter { seen.insert($0).inserted }, source: "\(variable)=\(trimmed)")
        }
        return nil
    }

    /// `node01-gpu0` → "0"; every line, in order, duplicates dropped.
    static func parsePBSGPUFile(_ text: String, path: String) throws -> [String] {
        var ids: [String] = []
        for raw in text.split(whereSeparator: \.isNewline) {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.isEmpty { continue }
            guard let range = line.range(of: "-gpu", options: .backwards),
                  case let id = String(line[range.upperBound...]), !id.isEmpty, id.allSatisfy({ $0.isASCII && $0.isNumber }) else {
                throw GPUError.gpuFileUnreadable(path: path, why: "line `\(condense(line, limit: 60))` is not like node01-gpu0")
            }
            if !ids.contains(id) { ids.append(id) }
        }
        return ids
    }
}

/// The resolved GPU part of a container: devices, profile and any warnings for the user.
public struct GPUSelection: Sendable, Equatable {
    public var deviceIDs: [String]
    public var profile: GPUProfile?
    public var letter: String?
    public var runtime: GPURuntime
    /// Things the user should hear about but that do not stop the container (the command prints them).
    public var warnings: [String]

    public init(deviceIDs: [String], profile: GPUProfile?, letter: String?, runtime: GPURuntime, warnings: [String] = []) {
        self.deviceIDs = deviceIDs
        self.profile = profile
        self.letter = letter
        self.runtime = runtime
        self.warnings = warnings
    }

    public static let none = GPUSelection(deviceIDs: [], profile: nil, letter: nil, runtime: .gpus)

    /// The docker flags: devices first, then the profile's CPU/memory.
    ///
    /// docker reads `--gpus` as CSV, so `device=0,3` unquoted becomes device 0 plus `count=3`;
    /// the value must carry its own double quotes: `"device=0,3"` (measured on docker 20.10).
    public var dockerArguments: [String] {
        (deviceIDs.isEmpty ? [] : runtime.deviceArguments(deviceIDs.joined(separator: ","))) + (profile?.dockerArguments ?? [])
    }

    /// The ids as recorded in the `dbgbox.gpus` label.
    public var label: String { deviceIDs.joined(separator: ",") }
}

/// Turns a `GPURequest` into devices, checking them against the node's GPUs.
public struct GPUResolver: Sendable {
    public var profiles: [String: GPUProfile]
    public var environment: [String: String]
    public var runner: ProcessRunner
    public var fs: FileSystem

    public init(profiles: [String: GPUProfile], environment: [String: String], runner: ProcessRunner, fs: FileSystem) {
        self.profiles = profiles
        self.environment = environment
        self.runner = runner
        self.fs = fs
    }

    public func resolve(_ request: GPURequest, runtime: GPURuntime) throws -> GPUSelection {
        let ids: [String]
        var letter: String?
        var profile: GPUProfile?
        switch request {
        case .none:
            return GPUSelection(deviceIDs: [], profile: nil, letter: nil, runtime: runtime)
        case .ids(let given):
            ids = given
        case .profile(let l):
            letter = l
            profile = profiles[l]
            guard let allocation = try GPUAllocation.fromEnvironment(environment, fs: fs) else {
                throw GPUError.noAllocation(letter: l)
            }
            ids = allocation.ids
        }
        let gpus = try queryNodeGPUs()
        var names: [String] = []
        for id in ids {
            guard let gpu = gpus.first(where: { $0.index == id || $0.uuid.lowercased() == id.lowercased() }) else {
                throw GPUError.notOnNode(id: id, available: gpus.map(\.index))
            }
            names.append(gpu.name)
        }
        var warnings: [String] = []
        if let letter, let profile {
            for (id, name) in zip(ids, names) where !Self.nameMatches(name, letter: letter, profiles: profiles) {
                let want = profile.model.map { " (\($0))" } ?? ""
                warnings.append("GPU \(id) is a \(name), not what --gpu \(letter)\(want) stands for: the \(letter) CPU/memory profile applies anyway")
            }
        }
        return GPUSelection(deviceIDs: ids, profile: profile, letter: letter, runtime: runtime, warnings: warnings)
    }

    /// Whether `name` is the model of `letter`: the longest profile model contained in the name must be
    /// this letter's (so a "GTX 1080 Ti" is GT, not G). A profile without a model matches anything.
    static func nameMatches(_ name: String, letter: String, profiles: [String: GPUProfile]) -> Bool {
        guard let model = profiles[letter]?.model?.lowercased() else { return true }
        let lower = name.lowercased()
        guard lower.contains(model) else { return false }
        let longest = profiles.values.compactMap { $0.model?.lowercased() }.filter { lower.contains($0) }.max { $0.count < $1.count }
        return longest == nil || longest!.count <= model.count
    }

    func queryNodeGPUs() throws -> [GPUInfo] {
        let result: ProcessResult
        do {
            result = try runner.run(GPUInfo.queryArguments)
        } catch ProcessError.notFound {
            throw GPUError.noDriver
        }
        guard result.succeeded else {
            throw GPUError.nvidiaSMIFailed(condense(result.stderrText + result.stdoutText, limit: 160))
        }
        let gpus = try GPUInfo.parseList(result.stdoutText)
        if gpus.isEmpty { throw GPUError.noDriver }
        return gpus
    }
}

public enum GPUError: UserFacingError, Equatable {
    case unknownRequest(String, letters: [String])
    case noAllocation(letter: String)
    case gpuFileUnreadable(path: String, why: String)
    case badAllocationVariable(variable: String, value: String)
    case noDriver
    case nvidiaSMIFailed(String)
    case nvidiaSMIOutput(String)
    case notOnNode(id: String, available: [String])

    public var description: String {
        switch self {
        case .unknownRequest(let text, let letters):
            return "unknown --gpu '\(condense(text, limit: 40))': use a profile letter (\(letters.joined(separator: ", "))), none, or GPU ids such as 0,2 or GPU-<uuid>"
        case .noAllocation(let letter):
            return "--gpu \(letter) takes the GPUs your job was given, but none of PBS_GPUFILE, SLURM_JOB_GPUS, CUDA_VISIBLE_DEVICES is set: run inside a GPU job, or pass explicit ids such as --gpu 0"
        case .gpuFileUnreadable(let path, let why):
            return "PBS_GPUFILE \(path): \(why): check the job's GPU allocation, or pass explicit ids such as --gpu 0"
        case .badAllocationVariable(let variable, let value):
            return "\(variable)='\(condense(value, limit: 40))' is not a list of GPU ids: fix it, or pass explicit ids such as --gpu 0"
        case .noDriver:
            return "no NVIDIA driver on this node: use --gpu none"
        case .nvidiaSMIFailed(let why):
            return "nvidia-smi failed (\(why)): check the node's NVIDIA driver, or use --gpu none"
        case .nvidiaSMIOutput(let line):
            return "cannot read nvidia-smi output line '\(line)': check the NVIDIA driver, or pass --gpu none"
        case .notOnNode(let id, let available):
            return "GPU \(id) is not on this node (it has \(available.isEmpty ? "none" : available.joined(separator: ", "))): pass ids that nvidia-smi lists"
        }
    }
}
