import CLibSSH2
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// One SSH connection over TCP, in blocking mode. Owns the libssh2 session and the socket;
/// `close()` ends both, `deinit` is the fallback. Not thread-safe: one thread per session.
public final class SSHSession {
    let raw: OpaquePointer
    let socket: Int32
    private var closed = false

    /// Host key algorithms in order of preference. ed25519 first: a known_hosts entry of another
    /// type than the negotiated one reads as "not found", not "mismatch" (libssh2.md).
    public static let hostKeyPreference = "ssh-ed25519,ecdsa-sha2-nistp256,ecdsa-sha2-nistp384,ecdsa-sha2-nistp521,ssh-rsa"

    /// Connects and completes the handshake. The host key is NOT verified here: the caller must
    /// check `hostKey` before authenticating.
    public init(host: String, port: UInt16 = 22, timeout: Double = 10) throws {
        LibSSH2.ensureInitialized()
        socket = try TCPSocket.connect(host: host, port: port, timeout: timeout)
        guard let session = libssh2_session_init_ex(nil, nil, nil, nil) else {
            Glibc.close(socket)
            throw SSHError(kind: .other, code: 0, message: "out of memory", call: "libssh2_session_init_ex")
        }
        raw = session
        libssh2_session_set_blocking(raw, 1)
        libssh2_session_set_timeout(raw, Int(timeout * 1000))
        libssh2_session_method_pref(raw, LIBSSH2_METHOD_HOSTKEY, Self.hostKeyPreference)
        let rc = libssh2_session_handshake(raw, socket)
        if rc != 0 {
            let error = SSHError.last(raw, call: "libssh2_session_handshake", code: rc)
            libssh2_session_free(raw)
            MACFastPath.forget()
            Glibc.close(socket)
            closed = true
            throw error
        }
    }

    deinit { close() }

    /// The host key the server presented in the handshake.
    public var hostKey: HostKey? {
        var length = 0
        var type: Int32 = 0
        guard let pointer = libssh2_session_hostkey(raw, &length, &type) else { return nil }
        let blob = Data(bytes: pointer, count: length)
        return HostKey(typeName: HostKey.typeName(for: type), blob: blob)
    }

    public var isAuthenticated: Bool { libssh2_userauth_authenticated(raw) != 0 }

    // Authentication: `SSHUserAuth` (UserAuth.swift).

    /// Runs `command` in an exec channel; returns its exit status, stdout and stderr.
    /// For small outputs (the blocking reads take stdout first, then stderr).
    public func exec(_ command: String) throws -> (status: Int32, stdout: Data, stderr: Data) {
        guard let channel = libssh2_channel_open_ex(raw, "session", 7, 2 * 1024 * 1024 /* LIBSSH2_CHANNEL_WINDOW_DEFAULT */,
                                                    UInt32(LIBSSH2_CHANNEL_PACKET_DEFAULT), nil, 0) else {
            throw SSHError.last(raw, call: "libssh2_channel_open_ex")
        }
        defer { libssh2_channel_free(channel) }
        let rc = libssh2_channel_process_startup(channel, "exec", 4, command, UInt32(command.utf8.count))
        if rc != 0 { throw SSHError.last(raw, call: "libssh2_channel_process_startup", code: rc) }
        let out = try readAll(channel, stream: 0)
        let err = try readAll(channel, stream: Int32(SSH_EXTENDED_DATA_STDERR))
        libssh2_channel_close(channel)
        libssh2_channel_wait_closed(channel)
        return (libssh2_channel_get_exit_status(channel), out, err)
    }

    private func readAll(_ channel: OpaquePointer, stream: Int32) throws -> Data {
        var data = Data()
        var buffer = [CChar](repeating: 0, count: 65536)
        while true {
            let n = libssh2_channel_read_ex(channel, stream, &buffer, buffer.count)
            if n > 0 {
                buffer.withUnsafeBytes { data.append(contentsOf: $0.prefix(n)) }
            } else if n == 0 {
                if libssh2_channel_eof(channel) != 0 { break }
            } else {
                throw SSHError.last(raw, call: "libssh2_channel_read_ex", code: Int32(n))
            }
        }
        return data
    }

    /// Says goodbye to the server and frees everything. Safe to call twice.
    public func close() {
        guard !closed else { return }
        closed = true
        libssh2_session_disconnect_ex(raw, SSH_DISCONNECT_BY_APPLICATION, "dbgbox closing", "")
        libssh2_session_free(raw)
        MACFastPath.forget()
        Glibc.close(socket)
    }
}
