import Foundation

/// What a finished program left behind.
public struct ProcessResult: Sendable, Equatable {
    public var exitCode: Int32
    public var stdout: Data
    public var stderr: Data

    public init(exitCode: Int32, stdout: Data = Data(), stderr: Data = Data()) {
        self.exitCode = exitCode
        self.stdout = stdout
        self.stderr = stderr
    }

    public var stdoutText: String { String(decoding: stdout, as: UTF8.self) }
    public var stderrText: String { String(decoding: stderr, as: UTF8.self) }
    public var succeeded: Bool { exitCode == 0 }
}

/// Where a streamed program's output goes, chunk by chunk, as it arrives.
public protocol OutputSink: Sendable {
    func write(_ data: Data)
}

/// Runs external programs from argv arrays; never through a shell string.
///
/// The local implementation uses `Process`; a remote one (a later issue) runs the same argv
/// on another host. Domain code depends only on this protocol.
public protocol ProcessRunner: Sendable {
    /// Runs `argv` to completion with `input` on its stdin, capturing stdout and stderr.
    func run(_ argv: [String], input: Data?) throws -> ProcessResult
    /// Runs `argv`, passing its output to `sink` live; stdout is still captured and returned,
    /// stderr goes to the sink only.
    func stream(_ argv: [String], input: Data?, to sink: OutputSink) throws -> ProcessResult
}

extension ProcessRunner {
    public func run(_ argv: [String]) throws -> ProcessResult { try run(argv, input: nil) }
}

/// Errors starting a program (not its own non-zero exit, which is a `ProcessResult`).
public enum ProcessError: UserFacingError, Equatable {
    case notFound(String)
    case launchFailed(String, String)

    public var description: String {
        switch self {
        case .notFound(let name):
            return "\(name) not found on PATH: install it (scripts/bootstrap.sh installs everything dbgbox needs)"
        case .launchFailed(let name, let why):
            return "could not start \(name): \(why)"
        }
    }
}

/// Writes to one of this process's standard streams.
public struct StandardStreamSink: OutputSink {
    public enum Stream: Sendable { case stdout, stderr }
    let stream: Stream
    public init(_ stream: Stream) { self.stream = stream }
    public func write(_ data: Data) {
        switch stream {
        case .stdout: FileHandle.standardOutput.write(data)
        case .stderr: FileHandle.standardError.write(data)
        }
    }
}

/// Runs programs on this machine with Foundation's `Process`.
public struct LocalProcessRunner: ProcessRunner {
    public var environment: [String: String]?

    public init(environment: [String: String]? = nil) {
        self.environment = environment
    }

    /// Finds `name` on PATH as execvp would; a name with a slash is taken as is.
    public static func resolve(_ name: String, path: String? = ProcessInfo.processInfo.environment["PATH"]) -> String? {
        if name.contains("/") {
            return FileManager.default.isExecutableFile(atPath: name) ? name : nil
        }
        for dir in (path ?? "/usr/local/bin:/usr/bin:/bin").split(separator: ":") {
            let candidate = "\(dir)/\(name)"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return nil
    }

    public func run(_ argv: [String], input: Data?) throws -> ProcessResult {
        try execute(argv, input: input, sink: nil)
    }

    public func stream(_ argv: [String], input: Data?, to sink: OutputSink) throws -> ProcessResult {
        try execute(argv, input: input, sink: sink)
    }

    private func execute(_ argv: [String], input: Data?, sink: OutputSink?) throws -> ProcessResult {
        precondition(!argv.isEmpty, "empty argv")
        guard let exe = Self.resolve(argv[0]) else { throw ProcessError.notFound(argv[0]) }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: exe)
        process.arguments = Array(argv.dropFirst())
        if let environment { process.environment = environment }

        let outPipe = Pipe()
        let errPipe = Pipe()
        process.standardOutput = outPipe
        process.standardError = errPipe
        let inPipe: Pipe? = input == nil ? nil : Pipe()
        if let inPipe { process.standardInput = inPipe } else { process.standardInput = FileHandle.nullDevice }

        let collected = Collected()
        let group = DispatchGroup()
        func drain(_ handle: FileHandle, isStdout: Bool) {
            group.enter()
            DispatchQueue.global().async {
                while true {
                    let chunk = handle.availableData
                    if chunk.isEmpty { break }
                    collected.append(chunk, isStdout: isStdout)
                    if let sink { sink.write(chunk) }
                }
                group.leave()
            }
        }
        do {
            try process.run()
        } catch {
            throw ProcessError.launchFailed(argv[0], "\(error.localizedDescription)")
        }
        drain(outPipe.fileHandleForReading, isStdout: true)
        drain(errPipe.fileHandleForReading, isStdout: false)
        if let inPipe, let input {
            // A program that exits without reading all of stdin must not kill us with SIGPIPE.
            signal(SIGPIPE, SIG_IGN)
            try? inPipe.fileHandleForWriting.write(contentsOf: input)
            try? inPipe.fileHandleForWriting.close()
        }
        process.waitUntilExit()
        group.wait()
        let (out, err) = collected.snapshot()
        let code: Int32 = process.terminationReason == .uncaughtSignal ? 128 + process.terminationStatus : process.terminationStatus
        return ProcessResult(exitCode: code, stdout: out, stderr: err)
    }
}

private final class Collected: @unchecked Sendable {
    private let lock = NSLock()
    private var out = Data()
    private var err = Data()
    func append(_ data: Data, isStdout: Bool) {
        lock.lock(); defer { lock.unlock() }
        if isStdout { out.append(data) } else { err.append(data) }
    }
    func snapshot() -> (Data, Data) {
        lock.lock(); defer { lock.unlock() }
        return (out, err)
    }
}
