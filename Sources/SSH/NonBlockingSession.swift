import CLibSSH2
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// One non-blocking libssh2 session over a `SessionTransport`.
///
/// Owned by one thread at a time (it may be handed over, e.g. after a join). The "blocking" style
/// methods (handshake, authentication, channel open for setup) call `waiter` whenever libssh2
/// says EAGAIN and then repeat the same call, as libssh2 1.10 requires; the waiter decides what
/// to wait for and throws to give up (deadline, stop request, carrier gone).
public final class NonBlockingSSHSession {
    public let raw: OpaquePointer
    public let transport: SessionTransport
    /// Called on EAGAIN; must wait for progress (or throw).
    public var waiter: (NonBlockingSSHSession) throws -> Void
    private var freed = false

    /// libssh2's EAGAIN code (as functions return it; not errno's).
    public static let again = Int32(LIBSSH2_ERROR_EAGAIN)

    /// Cipher and MAC preferences: the fastest 1.10 offers on this hardware first (libssh2.md:
    /// aes128-ctr; hmac-sha1 ~10% faster than hmac-sha2-256). The server still decides among
    /// what both sides allow.
    public static let cipherPreference = "aes128-ctr,aes256-ctr,aes192-ctr"
    public static let macPreference = "hmac-sha1,hmac-sha2-256,hmac-sha2-512"

    public init(transport: SessionTransport, waiter: @escaping (NonBlockingSSHSession) throws -> Void) throws {
        LibSSH2.ensureInitialized()
        self.transport = transport
        self.waiter = waiter
        let abstract = Unmanaged.passUnretained(transport).toOpaque()
        guard let session = libssh2_session_init_ex(nil, nil, nil, abstract) else {
            throw SSHError(kind: .other, code: 0, message: "out of memory", call: "libssh2_session_init_ex")
        }
        raw = session
        libssh2_session_callback_set(raw, LIBSSH2_CALLBACK_SEND, unsafeBitCast(SessionTransport.sendCallback, to: UnsafeMutableRawPointer.self))
        libssh2_session_callback_set(raw, LIBSSH2_CALLBACK_RECV, unsafeBitCast(SessionTransport.recvCallback, to: UnsafeMutableRawPointer.self))
        libssh2_session_set_blocking(raw, 0)
        libssh2_session_method_pref(raw, LIBSSH2_METHOD_HOSTKEY, SSHSession.hostKeyPreference)
        libssh2_session_method_pref(raw, LIBSSH2_METHOD_CRYPT_CS, Self.cipherPreference)
        libssh2_session_method_pref(raw, LIBSSH2_METHOD_CRYPT_SC, Self.cipherPreference)
        libssh2_session_method_pref(raw, LIBSSH2_METHOD_MAC_CS, Self.macPreference)
        libssh2_session_method_pref(raw, LIBSSH2_METHOD_MAC_SC, Self.macPreference)
    }

    deinit { free() }

    /// The last error, message copied at once.
    public func lastError(_ call: String, code: Int32? = nil) -> SSHError {
        SSHError.last(raw, call: call, code: code)
    }

    /// What libssh2 waits for after EAGAIN.
    public var blockDirections: (inbound: Bool, outbound: Bool) {
        let d = libssh2_session_block_directions(raw)
        return (d & LIBSSH2_SESSION_BLOCK_INBOUND != 0, d & LIBSSH2_SESSION_BLOCK_OUTBOUND != 0)
    }

    /// Runs `op` until it stops saying EAGAIN, waiting in between. Returns its final code.
    @discardableResult
    public func drive(_ op: () -> Int32) throws -> Int32 {
        while true {
            let rc = op()
            if rc != Self.again { return rc }
            try waiter(self)
        }
    }

    public func handshake() throws {
        let rc = try drive { libssh2_session_handshake(raw, transport.fd) }
        if rc != 0 { throw lastError("libssh2_session_handshake", code: rc) }
    }

    /// The host key the server presented in the handshake.
    public var hostKey: HostKey? {
        var length = 0
        var type: Int32 = 0
        guard let pointer = libssh2_session_hostkey(raw, &length, &type) else { return nil }
        return HostKey(typeName: HostKey.typeName(for: type), blob: Data(bytes: pointer, count: length))
    }

    public var isAuthenticated: Bool { libssh2_userauth_authenticated(raw) != 0 }

    // Authentication: `SSHUserAuth` (UserAuth.swift).

    /// Opens a channel, waiting as needed (for setup: the carrier). `message` is the channel
    /// type's extra data, e.g. `DirectTCPIP.openMessage`.
    public func openChannel(type: String, window: UInt32, packetSize: UInt32, message: [UInt8]) throws -> SSHChannel {
        while true {
            switch tryOpenChannel(type: type, window: window, packetSize: packetSize, message: message) {
            case .opened(let channel): return channel
            case .failed(let error): throw error
            case .wouldBlock: try waiter(self)
            }
        }
    }

    public enum OpenResult {
        case opened(SSHChannel)
        /// Repeat the same call (same arguments) later, before opening any other channel.
        case wouldBlock
        case failed(SSHError)
    }

    /// One non-blocking attempt at opening a channel.
    public func tryOpenChannel(type: String, window: UInt32, packetSize: UInt32, message: [UInt8]) -> OpenResult {
        let channel = message.withUnsafeBufferPointer { m in
            m.withMemoryRebound(to: CChar.self) { c in
                libssh2_channel_open_ex(raw, type, UInt32(type.utf8.count), window, packetSize,
                                        c.baseAddress, UInt32(message.count))
            }
        }
        if let channel { return .opened(SSHChannel(raw: channel, session: self)) }
        let code = libssh2_session_last_errno(raw)
        if code == Self.again { return .wouldBlock }
        return .failed(lastError("libssh2_channel_open_ex", code: code))
    }

    /// Enables keepalive messages every `interval` seconds (want_reply=0: replies would leak,
    /// #623). Call only after authentication (#1810); then call `sendKeepalive()` regularly.
    public func configureKeepalive(interval: Int) {
        libssh2_keepalive_config(raw, 0, UInt32(max(0, interval)))
    }

    /// Sends a keepalive if one is due. Returns the seconds until the next one is due.
    public func sendKeepalive() throws -> Int {
        var next: Int32 = 0
        let rc = libssh2_keepalive_send(raw, &next)
        if rc != 0 && rc != Self.again { throw lastError("libssh2_keepalive_send", code: rc) }
        return Int(next)
    }

    /// Queues a disconnect message (never waits: the SEND callback always accepts). The TCP
    /// transport's owner should `flush()` afterwards.
    public func disconnect(_ description: String = "dbgbox closing") {
        _ = libssh2_session_disconnect_ex(raw, SSH_DISCONNECT_BY_APPLICATION, description, "")
    }

    /// Frees the session (retrying EAGAIN a bounded number of times). Idempotent.
    public func free() {
        guard !freed else { return }
        freed = true
        var attempts = 0
        while libssh2_session_free(raw) == Self.again && attempts < 100 { attempts += 1 }
        MACFastPath.forget()
    }
}

/// A channel of a `NonBlockingSSHSession`. Methods return libssh2's raw results so the hot loop
/// allocates nothing: `> 0` bytes, `0` (read: EOF only if `isEOF`; write: window full), or a
/// negative libssh2 code (`NonBlockingSSHSession.again` = try later).
public final class SSHChannel {
    public let raw: OpaquePointer
    /// Keeps the session alive as long as the channel.
    public let session: NonBlockingSSHSession
    public private(set) var isFreed = false

    /// libssh2 1.10 sends at most this much per channel_write call.
    public static let maxWrite = 32_700

    init(raw: OpaquePointer, session: NonBlockingSSHSession) {
        self.raw = raw
        self.session = session
    }

    @inline(__always)
    public func read(into buffer: UnsafeMutableRawPointer, count: Int, stream: Int32 = 0) -> Int {
        libssh2_channel_read_ex(raw, stream, buffer.assumingMemoryBound(to: CChar.self), count)
    }

    @inline(__always)
    public func write(_ bytes: UnsafeRawPointer, count: Int, stream: Int32 = 0) -> Int {
        libssh2_channel_write_ex(raw, stream, bytes.assumingMemoryBound(to: CChar.self), Swift.min(count, Self.maxWrite))
    }

    public var isEOF: Bool { libssh2_channel_eof(raw) != 0 }

    /// Whether the peer closed the channel (its SSH_MSG_CHANNEL_CLOSE arrived), not only sent
    /// EOF. libssh2 1.10 has no accessor for this; `libssh2_channel_wait_closed` returns 0
    /// exactly when the close has arrived, after reading the transport until it has or until
    /// EAGAIN (which a caller's read bound may give early: ask again later). Its only state across an EAGAIN is a trace flag, so asking again later
    /// (or never, once the channel is freed) leaves nothing half-done. Only meaningful after EOF.
    public var isClosedByPeer: Bool {
        guard isEOF else { return false }
        return libssh2_channel_wait_closed(raw) == 0
    }

    /// Enlarges our receive window by `bytes` (non-blocking; returns a libssh2 code).
    public func adjustReceiveWindow(by bytes: UInt) -> Int32 {
        var window: UInt32 = 0
        return libssh2_channel_receive_window_adjust2(raw, UInt(bytes), 0, &window)
    }

    public func sendEOF() -> Int32 { libssh2_channel_send_eof(raw) }

    /// Starts `command` on a "session" channel (exec request). Waits with the session's waiter.
    public func exec(_ command: String) throws {
        let rc = try session.drive {
            libssh2_channel_process_startup(raw, "exec", 4, command, UInt32(command.utf8.count))
        }
        if rc != 0 { throw session.lastError("libssh2_channel_process_startup", code: rc) }
    }

    /// One non-blocking attempt at starting `command` on a "session" channel (exec request): 0
    /// once started, `NonBlockingSSHSession.again` (repeat the same call later), or a libssh2
    /// error code (the server refused).
    public func tryExec(_ command: String) -> Int32 {
        libssh2_channel_process_startup(raw, "exec", 4, command, UInt32(command.utf8.count))
    }

    public var exitStatus: Int32 { libssh2_channel_get_exit_status(raw) }

    /// How the remote command ended (once the channel closed): its exit status, or the signal
    /// that killed it.
    public var execStatus: SSHExecStatus {
        var signalName: UnsafeMutablePointer<CChar>?
        var signalLength = 0
        guard libssh2_channel_get_exit_signal(raw, &signalName, &signalLength, nil, nil, nil, nil) == 0,
              let signalName, signalLength > 0 else { return SSHExecStatus(code: exitStatus) }
        let name = String(decoding: UnsafeRawBufferPointer(start: signalName, count: signalLength), as: UTF8.self)
        libssh2_free(session.raw, signalName)
        return SSHExecStatus(signal: name)
    }

    public func close() -> Int32 { libssh2_channel_close(raw) }

    /// Frees the channel; returns EAGAIN when libssh2 wants to be called again.
    public func free() -> Int32 {
        guard !isFreed else { return 0 }
        let rc = libssh2_channel_free(raw)
        if rc != NonBlockingSSHSession.again { isFreed = true }
        return rc
    }
}

/// The "direct-tcpip" channel-open message (RFC 4254 7.2), hand-encoded so the channel can be
/// opened with `libssh2_channel_open_ex` and a larger window than direct_tcpip_ex hard-codes.
public enum DirectTCPIP {
    public static let channelType = "direct-tcpip"

    /// string host, uint32 port, string originator address, uint32 originator port.
    public static func openMessage(host: String, port: UInt32, originatorHost: String, originatorPort: UInt32) -> [UInt8] {
        var m: [UInt8] = []
        m.reserveCapacity(host.utf8.count + originatorHost.utf8.count + 16)
        func u32(_ v: UInt32) { m.append(contentsOf: [UInt8(v >> 24), UInt8((v >> 16) & 0xff), UInt8((v >> 8) & 0xff), UInt8(v & 0xff)]) }
        func string(_ s: String) { u32(UInt32(s.utf8.count)); m.append(contentsOf: s.utf8) }
        string(host)
        u32(port)
        string(originatorHost)
        u32(originatorPort)
        return m
    }
}
