import Foundation

/// What the process table says about a pid, so liveness logic is testable without processes.
public protocol ProcessInspector: Sendable {
    /// The process's start time in clock ticks since boot; nil when there is no such process
    /// (or only a zombie).
    func startTime(of pid: Int32) -> UInt64?
    /// The process's argv, NUL-separated as in /proc/PID/cmdline; nil when unreadable.
    func commandLine(of pid: Int32) -> Data?
}

/// Reads /proc (or a directory laid out like it).
public struct ProcFSInspector: ProcessInspector {
    public let procRoot: String
    let fs: FileSystem

    public init(procRoot: String = "/proc", fs: FileSystem = LocalFileSystem()) {
        self.procRoot = procRoot
        self.fs = fs
    }

    /// Field 22 (starttime) of /proc/PID/stat. The command name (field 2) may hold spaces and
    /// parentheses, so fields are counted from the last ')'.
    public func startTime(of pid: Int32) -> UInt64? {
        guard pid > 0, let data = try? fs.read("\(procRoot)/\(pid)/stat", as: .procFile) else { return nil }
        let text = String(decoding: data, as: UTF8.self)
        guard let close = text.lastIndex(of: ")") else { return nil }
        let fields = text[text.index(after: close)...].split(separator: " ", omittingEmptySubsequences: true)
        // fields[0] is field 3 (state), so field 22 is fields[19].
        guard fields.count > 19, fields[0] != "Z", fields[0] != "X" else { return nil }
        return UInt64(fields[19].trimmingCharacters(in: .whitespacesAndNewlines))
    }

    public func commandLine(of pid: Int32) -> Data? {
        guard pid > 0 else { return nil }
        return try? fs.read("\(procRoot)/\(pid)/cmdline", as: .procFile)
    }
}

/// Whether a session's background tunnel still runs.
public enum TunnelState: String, Sendable, Equatable, Codable {
    /// The recorded pid runs, started when recorded, and is a dbgbox process.
    case alive
    /// The record has no pid or no start time (foreground tunnel, or `up` did not finish).
    case notRecorded
    /// No process has that pid.
    case gone
    /// A process has the pid but started at another time: the tunnel died and the pid was reused.
    case pidReused
    /// The process started at the recorded time but is not dbgbox (should not happen; never signal it).
    case notDbgbox
}

public struct TunnelLiveness: Sendable {
    let inspector: ProcessInspector

    public init(inspector: ProcessInspector = ProcFSInspector()) {
        self.inspector = inspector
    }

    /// The tunnel's state. Only `.alive` means the pid may be signalled.
    public func state(of record: SessionRecord) -> TunnelState {
        guard let pid = record.tunnelPID, let recorded = record.tunnelStartTime else { return .notRecorded }
        guard let started = inspector.startTime(of: pid) else { return .gone }
        guard started == recorded else { return .pidReused }
        guard let argv = inspector.commandLine(of: pid), argv.range(of: Data("dbgbox".utf8)) != nil else {
            return .notDbgbox
        }
        return .alive
    }

    /// True when the pid exists, its start time matches the record and its command line
    /// contains "dbgbox".
    public func isTunnelAlive(_ record: SessionRecord) -> Bool { state(of: record) == .alive }
}
