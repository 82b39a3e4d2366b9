import Foundation

/// Parsers for what PBS Pro / OpenPBS and Torque print. Pure; tests feed them recorded outputs
/// (there is no PBS server in the sandbox).
public enum PBSOutput {
    /// `qsub`: `1234.server` (Torque and PBS Pro alike).
    public static func parseSubmit(_ text: String) throws -> String {
        let line = text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }.last { !$0.isEmpty } ?? ""
        let head = line.split(separator: ".", maxSplits: 1).first ?? ""
        let allowed = CharacterSet(charactersIn: "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_[]")
        guard !head.isEmpty, head.prefix(while: { $0 != "[" }).allSatisfy({ $0.isASCII && $0.isNumber }),
              line.count <= 255, line.unicodeScalars.allSatisfy({ allowed.contains($0) }) else {
            throw SchedulerError.unreadable(program: "qsub", output: text)
        }
        return line
    }

    /// `qstat -f ID`'s attributes (continuation lines joined), keyed as printed
    /// (`job_state`, `exec_host`, `Resource_List.walltime`).
    public static func attributes(_ text: String) -> [String: String] {
        var result: [String: String] = [:]
        var lastKey: String?
        for raw in text.split(whereSeparator: \.isNewline) {
            let line = String(raw)
            if line.hasPrefix("Job Id:") { continue }
            // A continuation line starts with a tab and has no " = " of its own.
            if line.hasPrefix("\t"), let key = lastKey, !line.contains(" = ") {
                result[key, default: ""] += line.trimmingCharacters(in: .whitespaces)
                continue
            }
            guard let eq = line.range(of: " = ") else { continue }
            let key = line[..<eq.lowerBound].trimmingCharacters(in: .whitespaces)
            guard !key.isEmpty else { continue }
            result[key] = line[eq.upperBound...].trimmingCharacters(in: .whitespaces)
            lastKey = key
        }
        return result
    }

    /// `qstat -f ID` (`-x` for finished jobs) as a status: job_state, exec_host/exec_vnode, walltime.
    public static func parseStatus(_ text: String) -> JobStatus? {
        let a = attributes(text)
        guard let state = a["job_state"], !state.isEmpty else { return nil }
        let node = (a["exec_host"] ?? a["exec_vnode"]).flatMap(firstHost)
        let used = a["resources_used.walltime"]
        let limit = a["Resource_List.walltime"]
        var left: String?
        if let used, let limit, let u = seconds(used), let l = seconds(limit) { left = format(max(0, l - u)) }
        let reason = a["comment"]
        return JobStatus(phase: phase(state), state: state, reason: reason, node: node, elapsed: used, timeLeft: left)
    }

    /// PBS job state letters: Q, H, W, T, S (pending or held); R, E (running, exiting); F, X (ended).
    static func phase(_ state: String) -> JobPhase {
        switch state.uppercased() {
        case "R", "U", "S": return .running
        case "E", "F", "X", "C": return .ended
        default: return .pending
        }
    }

    /// `node1/0*8+node2/0` or `(node1:ncpus=8:ngpus=1)+(node2:…)` → `node1`.
    static func firstHost(_ value: String) -> String? {
        var text = Substring(value)
        if text.hasPrefix("(") { text = text.dropFirst() }
        let host = text.prefix { $0 != "/" && $0 != ":" && $0 != "+" && $0 != ")" }
        return host.isEmpty ? nil : String(host)
    }

    static func seconds(_ hms: String) -> Int? {
        let parts = hms.split(separator: ":").map { Int($0) }
        guard parts.count == 3, let h = parts[0], let m = parts[1], let s = parts[2] else { return nil }
        return h * 3600 + m * 60 + s
    }

    static func format(_ seconds: Int) -> String {
        String(format: "%02d:%02d:%02d", seconds / 3600, seconds % 3600 / 60, seconds % 60)
    }

    /// `qstat` (default table) or `qstat -w`: the ids of jobs not finished.
    public static func parseJobList(_ text: String) -> Set<String> {
        var ids = Set<String>()
        var inTable = false
        for raw in text.split(whereSeparator: \.isNewline) {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.hasPrefix("---") { inTable = true; continue }
            guard inTable, !line.isEmpty else { continue }
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard let id = fields.first, fields.count >= 5 else { continue }
            // The state is the fifth column of the default table (Job id, Name, User, Time Use, S, Queue).
            if phase(String(fields[4])) != .ended { ids.insert(String(id)) }
        }
        return ids
    }

    /// Whether qstat's words mean the job is unknown or finished (not a failure of qstat itself).
    public static func isUnknownJob(_ stderr: String) -> Bool {
        let lower = stderr.lowercased()
        return lower.contains("unknown job id") || lower.contains("job has finished")
    }

    /// `qsub: Unknown queue` → `Unknown queue`, one line.
    public static func refusal(_ stderr: String) -> String {
        let lines = stderr.split(whereSeparator: \.isNewline).map { line -> String in
            var text = line.trimmingCharacters(in: .whitespaces)
            for prefix in ["qsub: ", "qstat: ", "qdel: "] where text.hasPrefix(prefix) { text.removeFirst(prefix.count) }
            return text
        }.filter { !$0.isEmpty }
        return condense(lines.joined(separator: "; "), limit: 300)
    }
}
