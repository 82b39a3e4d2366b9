import Foundation

/// Parsers for what Slurm's commands print. Pure; tests feed them recorded outputs.
public enum SlurmOutput {
    /// `sbatch --parsable`: `4711` or `4711;cluster`.
    public static func parseSubmit(_ text: String) throws -> String {
        let line = text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }.last { !$0.isEmpty } ?? ""
        let id = line.split(separator: ";", maxSplits: 1).first.map(String.init) ?? ""
        guard !id.isEmpty, id.count <= 20, id.allSatisfy({ $0.isASCII && $0.isNumber }) else {
            throw SchedulerError.unreadable(program: "sbatch", output: text)
        }
        return id
    }

    /// `squeue -h -t all -j ID -o '%T|%r|%N|%M|%L'`: nil when squeue printed no line for it.
    public static func parseSqueue(_ text: String) -> JobStatus? {
        guard let line = text.split(whereSeparator: \.isNewline).first(where: { !$0.trimmingCharacters(in: .whitespaces).isEmpty }) else {
            return nil
        }
        let fields = line.split(separator: "|", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
        guard fields.count >= 5, !fields[0].isEmpty else { return nil }
        let state = fields[0]
        return JobStatus(phase: JobStatus.slurmPhase(state), state: state, reason: meaningful(fields[1]),
                         node: meaningful(fields[2]), elapsed: meaningful(fields[3]), timeLeft: meaningful(fields[4]))
    }

    /// `scontrol show job ID` (also `-d`): JobState, Reason, NodeList, RunTime, TimeLimit.
    public static func parseScontrolState(_ text: String) -> JobStatus? {
        let fields = keyValues(text)
        guard let state = fields["JobState"] else { return nil }
        return JobStatus(phase: JobStatus.slurmPhase(state), state: state, reason: meaningful(fields["Reason"] ?? ""),
                         node: meaningful(fields["NodeList"] ?? ""), elapsed: meaningful(fields["RunTime"] ?? ""),
                         timeLeft: nil)
    }

    /// `sacct -n -X -P -j ID -o State,Reason,NodeList,Elapsed`: the first line, as an ended job
    /// (sacct answers for jobs squeue has forgotten).
    public static func parseSacct(_ text: String) -> JobStatus? {
        guard let line = text.split(whereSeparator: \.isNewline).first(where: { !$0.trimmingCharacters(in: .whitespaces).isEmpty }) else {
            return nil
        }
        let fields = line.split(separator: "|", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
        guard fields.count >= 4, !fields[0].isEmpty else { return nil }
        return JobStatus(phase: JobStatus.slurmPhase(fields[0]), state: fields[0], reason: meaningful(fields[1]),
                         node: meaningful(fields[2]), elapsed: meaningful(fields[3]))
    }

    /// The GPUs of each node from `scontrol show job -d ID`'s detail lines
    /// (`Nodes=n1 CPU_IDs=0-1 Mem=150 GRES=gpu:2(IDX:0-1)`), host lists expanded.
    public static func parseJobGPUs(_ text: String) throws -> [String: [Int]] {
        var result: [String: [Int]] = [:]
        for raw in text.split(whereSeparator: \.isNewline) {
            let line = raw.trimmingCharacters(in: .whitespaces)
            guard line.hasPrefix("Nodes=") else { continue }
            let fields = keyValues(line)
            guard let nodes = fields["Nodes"] else { continue }
            let gpus = try gresIndices(fields["GRES"] ?? "")
            for node in try expandHostList(nodes) { result[node, default: []] += gpus }
        }
        return result
    }

    /// The GPU indices in a GRES value: `gpu:a100:1(IDX:0)`, `gpu:2(IDX:0-1)`, `gpu(IDX:1)`,
    /// `gpu:3(IDX:0,2-3)`, `gpu:1(IDX:0),mps:100(0)`, or empty.
    public static func gresIndices(_ value: String) throws -> [Int] {
        var indices: [Int] = []
        for item in splitTopLevel(value, separator: ",") {
            let name = item.prefix { $0 != ":" && $0 != "(" }
            guard name == "gpu", let open = item.range(of: "(IDX:") else { continue }
            let rest = item[open.upperBound...]
            guard let close = rest.firstIndex(of: ")") else { throw SchedulerError.unreadable(program: "scontrol", output: value) }
            let list = rest[..<close]
            if list == "N/A" { continue }
            for part in list.split(separator: ",") {
                let bounds = part.split(separator: "-", omittingEmptySubsequences: false)
                guard (1...2).contains(bounds.count), let low = Int(bounds[0]), let high = Int(bounds.last!), low <= high, high - low < 1024 else {
                    throw SchedulerError.unreadable(program: "scontrol", output: value)
                }
                indices += Array(low...high)
            }
        }
        return indices
    }

    /// Slurm host lists: `n1`, `b02r1n[07-08]`, `a[1,3-4]b,c5` → each host name.
    public static func expandHostList(_ text: String) throws -> [String] {
        var hosts: [String] = []
        for item in splitTopLevel(text, separator: ",") where !item.isEmpty {
            hosts += try expandHost(Substring(item))
        }
        return hosts
    }

    private static func expandHost(_ item: Substring) throws -> [String] {
        guard let open = item.firstIndex(of: "[") else { return [String(item)] }
        guard let close = item[open...].firstIndex(of: "]") else { throw SchedulerError.unreadable(program: "scontrol", output: String(item)) }
        let prefix = item[..<open]
        let suffixes = try expandHost(item[item.index(after: close)...])
        var out: [String] = []
        for range in item[item.index(after: open)..<close].split(separator: ",") {
            let bounds = range.split(separator: "-", omittingEmptySubsequences: false)
            guard (1...2).contains(bounds.count), let low = Int(bounds[0]), let high = Int(bounds.last!), low <= high, high - low < 100_000 else {
                throw SchedulerError.unreadable(program: "scontrol", output: String(item))
            }
            let width = bounds[0].count
            for n in low...high {
                let digits = String(n)
                let padded = String(repeating: "0", count: max(0, width - digits.count)) + digits
                for suffix in suffixes { out.append("\(prefix)\(padded)\(suffix)") }
            }
        }
        return out
    }

    /// `scontrol show node NAME`: its NodeAddr (what to connect to), or nil.
    public static func parseNodeAddress(_ text: String) -> String? {
        keyValues(text)["NodeAddr"].flatMap(meaningful)
    }

    /// `squeue -h -o %i` lines: the job ids (array tasks `123_4` kept as printed).
    public static func parseJobIDs(_ text: String) -> Set<String> {
        Set(text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty })
    }

    /// The scheduler's refusal, as one line: `sbatch: error: Batch job submission failed: X` → `X`,
    /// with the lines before it (`invalid partition specified: nope`) kept.
    public static func refusal(_ stderr: String) -> String {
        let lines = stderr.split(whereSeparator: \.isNewline).map { line -> String in
            var text = line.trimmingCharacters(in: .whitespaces)
            for prefix in ["sbatch: error: ", "squeue: error: ", "scancel: error: ", "scontrol: error: ", "srun: error: ", "error: "] where text.hasPrefix(prefix) {
                text.removeFirst(prefix.count)
            }
            if text.hasPrefix("Batch job submission failed: ") { text.removeFirst("Batch job submission failed: ".count) }
            return text
        }.filter { !$0.isEmpty }
        var unique: [String] = []
        for line in lines where !unique.contains(where: { $0.caseInsensitiveCompare(line) == .orderedSame }) { unique.append(line) }
        return condense(unique.joined(separator: "; "), limit: 300)
    }

    /// `Key=Value` words of scontrol's output (values without spaces; `Reason=None`).
    static func keyValues(_ text: String) -> [String: String] {
        var fields: [String: String] = [:]
        for word in text.split(whereSeparator: { $0 == " " || $0 == "\n" || $0 == "\t" }) {
            guard let eq = word.firstIndex(of: "=") else { continue }
            let key = String(word[..<eq])
            if fields[key] == nil { fields[key] = String(word[word.index(after: eq)...]) }
        }
        return fields
    }

    /// Splits at `separator` outside brackets and parentheses.
    static func splitTopLevel(_ text: String, separator: Character) -> [String] {
        var parts: [String] = []
        var current = ""
        var depth = 0
        for c in text {
            if c == "[" || c == "(" { depth += 1 }
            if c == "]" || c == ")" { depth = max(0, depth - 1) }
            if c == separator && depth == 0 { parts.append(current); current = "" } else { current.append(c) }
        }
        if !current.isEmpty || !parts.isEmpty { parts.append(current) }
        return parts.filter { !$0.isEmpty }
    }

    /// Slurm's placeholders for "nothing": empty, `None`, `(null)`, `N/A`, `n/a`.
    static func meaningful(_ text: String) -> String? {
        let t = text.trimmingCharacters(in: .whitespaces)
        if t.isEmpty || t == "None" || t == "(null)" || t == "N/A" || t == "n/a" || t.hasPrefix("(") && t.hasSuffix(")") && t.count <= 2 { return nil }
        return t
    }
}
