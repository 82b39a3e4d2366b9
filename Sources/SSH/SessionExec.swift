import CLibSSH2
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// How a remote command ended.
public struct SSHExecStatus: Sendable, Equatable {
    /// The exit status; for a signal exit, 128 + the signal's number (as a shell reports it).
    public var code: Int32
    /// The signal's name without "SIG" ("TERM"), when the command was killed by one.
    public var signal: String?

    public init(code: Int32, signal: String? = nil) {
        self.code = code
        self.signal = signal
    }

    /// Killed by `signal` (its RFC 4254 name, "TERM"): code 128 + its number, as a shell reports it.
    public init(signal: String) {
        self.init(code: 128 + (SSHSession.signalNumbers[signal] ?? 0), signal: signal)
    }
}

extension SSHSession {
    /// Runs `command` in an exec channel, streaming: `input` is written to its stdin (then EOF),
    /// stdout and stderr chunks go to `onStdout` / `onStderr` as they arrive. Returns when the
    /// channel is closed, with the exit status. The session runs non-blocking meanwhile (so stdin,
    /// stdout and stderr progress together without deadlock) and is blocking again afterwards.
    public func execStreaming(_ command: String, input: Data?, onStdout: (Data) -> Void,
                              onStderr: (Data) -> Void) throws -> SSHExecStatus {
        guard let channel = libssh2_channel_open_ex(raw, "session", 7, 2 * 1024 * 1024,
                                                    UInt32(LIBSSH2_CHANNEL_PACKET_DEFAULT), nil, 0) else {
            throw SSHError.last(raw, call: "libssh2_channel_open_ex")
        }
        var freed = false
        defer { if !freed { libssh2_session_set_blocking(raw, 1); libssh2_channel_free(channel) } }
        let rc = libssh2_channel_process_startup(channel, "exec", 4, command, UInt32(command.utf8.count))
        if rc != 0 { throw SSHError.last(raw, call: "libssh2_channel_process_startup", code: rc) }

        libssh2_session_set_blocking(raw, 0)
        defer { libssh2_session_set_blocking(raw, 1) }
        let again = Int(LIBSSH2_ERROR_EAGAIN)
        let pending = input ?? Data()
        var offset = 0
        var eofSent = false
        var buffer = [UInt8](repeating: 0, count: 65536)
        var outDone = false, errDone = false

        while true {
            var progressed = false
            // stdin, at most one packet's worth per call.
            if offset < pending.count {
                let count = min(pending.count - offset, 32_700)
                let n = pending.withUnsafeBytes { bytes in
                    libssh2_channel_write_ex(channel, 0, bytes.baseAddress!.assumingMemoryBound(to: CChar.self) + offset, count)
                }
                // A full remote window sends nothing (no half-sent packet): reading is then safe
                // even after EAGAIN, and must happen for the window adjust or the program's end.
                let windowFull = n <= 0 && libssh2_channel_window_write_ex(channel, nil) == 0
                if n > 0 {
                    offset += n
                    progressed = true
                } else if n == 0 || (n == again && windowFull) {
                    // The program finished its output without reading all of its input: that is
                    // its business (as EPIPE is locally).
                    if libssh2_channel_eof(channel) != 0 { offset = pending.count }
                } else if n == again {
                    // The socket: repeat the same write before any other call on the session.
                    try waitSocket(timeoutMS: 1000)
                    continue
                } else {
                    // The channel is closed: the rest of the input has nowhere to go.
                    offset = pending.count
                }
            }
            if offset >= pending.count && !eofSent {
                let e = libssh2_channel_send_eof(channel)
                if e == LIBSSH2_ERROR_EAGAIN {
                    try waitSocket(timeoutMS: 1000)
                    continue
                }
                eofSent = true // an error here means the channel is closing anyway
                progressed = true
            }
            for (stream, isOut) in [(Int32(0), true), (Int32(SSH_EXTENDED_DATA_STDERR), false)] {
                let n = libssh2_channel_read_ex(channel, stream, &buffer, buffer.count)
                if n > 0 {
                    let chunk = Data(buffer[0..<n])
                    if isOut { onStdout(chunk) } else { onStderr(chunk) }
                    progressed = true
                    if isOut { outDone = false } else { errDone = false }
                } else if n == again {
                    if isOut { outDone = false } else { errDone = false }
                } else if n == 0 {
                    if isOut { outDone = true } else { errDone = true }
                } else {
                    throw SSHError.last(raw, call: "libssh2_channel_read_ex", code: Int32(n))
                }
            }
            if libssh2_channel_eof(channel) != 0 && outDone && errDone && eofSent { break }
            if !progressed { try waitSocket(timeoutMS: 1000) }
        }
        while true {
            let c = libssh2_channel_close(channel)
            if c == LIBSSH2_ERROR_EAGAIN { try waitSocket(timeoutMS: 1000); continue }
            break
        }
        while true {
            let c = libssh2_channel_wait_closed(channel)
            if c == LIBSSH2_ERROR_EAGAIN { try waitSocket(timeoutMS: 1000); continue }
            break
        }
        var status = SSHExecStatus(code: libssh2_channel_get_exit_status(channel), signal: nil)
        var signalName: UnsafeMutablePointer<CChar>?
        var signalLength = 0
        if libssh2_channel_get_exit_signal(channel, &signalName, &signalLength, nil, nil, nil, nil) == 0,
           let signalName, signalLength > 0 {
            let name = String(decoding: UnsafeRawBufferPointer(start: signalName, count: signalLength), as: UTF8.self)
            libssh2_free(raw, signalName)
            status = SSHExecStatus(signal: name)
        }
        libssh2_session_set_blocking(raw, 1)
        libssh2_channel_free(channel)
        freed = true
        return status
    }

    /// Signal names as RFC 4254 sends them, to their Linux numbers.
    static let signalNumbers: [String: Int32] = [
        "HUP": 1, "INT": 2, "QUIT": 3, "ILL": 4, "ABRT": 6, "FPE": 8, "KILL": 9, "USR1": 10,
        "SEGV": 11, "USR2": 12, "PIPE": 13, "ALRM": 14, "TERM": 15,
    ]

    /// Waits until the socket is ready in the direction libssh2 is blocked on (no busy loop).
    private func waitSocket(timeoutMS: Int32) throws {
        let directions = libssh2_session_block_directions(raw)
        var events: Int16 = 0
        if directions & LIBSSH2_SESSION_BLOCK_INBOUND != 0 { events |= Int16(POLLIN) }
        if directions & LIBSSH2_SESSION_BLOCK_OUTBOUND != 0 { events |= Int16(POLLOUT) }
        if events == 0 { events = Int16(POLLIN) }
        var fd = pollfd(fd: socket, events: events, revents: 0)
        if poll(&fd, 1, timeoutMS) < 0 && errno != EINTR {
            throw SSHError(kind: .other, code: 0, message: String(cString: strerror(errno)), call: "poll")
        }
    }
}
