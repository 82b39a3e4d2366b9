import Foundation
import SSH

/// Where a runner's exec channels open: a logged-in blocking `SSHSession`, or the tunnel engine's
/// node session (`NodeChannel`).
protocol ExecChannels: AnyObject {
    /// Runs `command` in one exec channel: `input` to its stdin (then EOF), its output to the
    /// closures as it arrives; returns how it ended.
    func exec(_ command: String, input: Data?, onStdout: (Data) -> Void, onStderr: (Data) -> Void) throws -> SSHExecStatus
    func close()
}

extension SSHSession: ExecChannels {
    func exec(_ command: String, input: Data?, onStdout: (Data) -> Void, onStderr: (Data) -> Void) throws -> SSHExecStatus {
        try execStreaming(command, input: input, onStdout: onStdout, onStderr: onStderr)
    }
}

/// Runs argv arrays as exec channels: each argv is one channel (shell-quoted into the one command
/// string an exec request carries), one at a time. Subclasses open the channels' session
/// (`RemoteProcessRunner`: the engine's node session; `ContainerSessionRunner`: a blocking session
/// into a session's container through its tunnel) and say how failures read.
public class SSHSessionRunner: ProcessRunner, @unchecked Sendable {
    let channels: ExecChannels
    private let lock = NSLock()
    private var closed = false

    init(session: SSHSession) {
        self.channels = session
    }

    init(channels: ExecChannels) {
        self.channels = channels
    }

    deinit { close() }

    public func run(_ argv: [String], input: Data?) throws -> ProcessResult {
        try execute(argv, input: input, sink: nil)
    }

    public func stream(_ argv: [String], input: Data?, to sink: OutputSink) throws -> ProcessResult {
        try execute(argv, input: input, sink: sink)
    }

    /// The error for `argv` when the session failed under it (not the command's own exit), or when
    /// it is closed (`error` nil).
    func sessionError(_ argv: [String], _ error: Error?) -> Error { error ?? DbgboxError("the ssh session is closed") }

    /// Checks a finished command's result (e.g. the remote shell's "not found").
    func check(_ argv: [String], _ result: ProcessResult) throws {}

    /// Called once, after the session is closed. A subclass that overrides it closes in its own
    /// deinit too (its properties are gone by the time this class's deinit runs).
    func didClose() {}

    private func execute(_ argv: [String], input: Data?, sink: OutputSink?) throws -> ProcessResult {
        lock.lock(); defer { lock.unlock() }
        guard !closed else { throw sessionError(argv, nil) }
        var out = Data()
        var err = Data()
        let status: SSHExecStatus
        do {
            status = try channels.exec(shellQuote(argv), input: input,
                                               onStdout: { out.append($0); sink?.write($0) },
                                               onStderr: { err.append($0); sink?.write($0) })
        } catch {
            throw sessionError(argv, error)
        }
        let result = ProcessResult(exitCode: status.code, stdout: out, stderr: err)
        try check(argv, result)
        return result
    }

    /// Ends the session. Safe to call twice.
    public func close() {
        lock.lock()
        let wasClosed = closed
        closed = true
        lock.unlock()
        guard !wasClosed else { return }
        channels.close()
        didClose()
    }
}
