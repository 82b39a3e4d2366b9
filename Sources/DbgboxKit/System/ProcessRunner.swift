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
    /// Runs `argv`, passing its stdout and stderr to `sink` live as they arrive; both are also
    /// captured in the result (so errors can quote the program's own words).
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

    /// Writing to a pipe whose reader has gone must give EPIPE, not kill dbgbox.
    private static let ignoreSIGPIPE: Void = { signal(SIGPIPE, SIG_IGN) }()

    private func execute(_ argv: [String], input: Data?, sink: OutputSink?) throws -> ProcessResult {
        Self.ignoreSIGPIPE
        let child = try ChildProcess(argv, environment: environment, stdin: input == nil ? .null : .pipe)
        var out = Data()
        var err = Data()
        var pending = input ?? Data()
        var offset = 0
        if let fd = child.stdinFD {
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            if pending.isEmpty { child.closeStdin() }
        }
        var openReaders: [Int32] = [child.stdoutFD, child.stderrFD].compactMap { $0 }
        var buffer = [UInt8](repeating: 0, count: 65536)
        while !openReaders.isEmpty || child.stdinFD != nil {
            var fds = openReaders.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
            if let fd = child.stdinFD { fds.append(pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)) }
            if poll(&fds, nfds_t(fds.count), -1) < 0 {
                if errno == EINTR { continue }
                throw ProcessError.launchFailed(argv[0], "poll: \(String(cString: strerror(errno)))")
            }
            for p in fds where p.revents != 0 {
                if p.fd == child.stdinFD {
                    let n = pending.withUnsafeBytes { raw in
                        Glibc.write(p.fd, raw.baseAddress! + offset, min(raw.count - offset, 65536))
                    }
                    if n > 0 { offset += n }
                    // EPIPE: the program exited without reading all of its input; that is its business.
                    if offset >= pending.count || (n < 0 && errno != EAGAIN && errno != EINTR) {
                        child.closeStdin()
                        pending = Data()
                    }
                    continue
                }
                let n = read(p.fd, &buffer, buffer.count)
                if n > 0 {
                    let chunk = Data(buffer[0..<n])
                    if p.fd == child.stdoutFD { out.append(chunk) } else { err.append(chunk) }
                    if let sink { sink.write(chunk) }
                } else if n == 0 || (errno != EINTR && errno != EAGAIN) {
                    openReaders.removeAll { $0 == p.fd }
                }
            }
        }
        let code = child.wait()
        return ProcessResult(exitCode: code, stdout: out, stderr: err)
    }
}

