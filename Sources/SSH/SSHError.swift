import CLibSSH2

/// A libssh2 failure: the call that failed, libssh2's code and message, and (when known)
/// which hop it concerns. The domain layer turns these into user-facing advice.
public struct SSHError: Error, CustomStringConvertible, Equatable {
    public enum Kind: Equatable, Sendable {
        /// TCP connect or name resolution failed.
        case connect
        /// Key exchange / handshake failed.
        case handshake
        /// The server refused every offered credential.
        case authentication
        /// A key file could not be read or decrypted.
        case keyFile
        /// The peer closed the connection.
        case disconnected
        case timeout
        case other
    }

    public var kind: Kind
    /// libssh2's error code (negative), or 0 for failures outside libssh2 (e.g. connect).
    public var code: Int32
    /// libssh2's message, copied at once (libssh2 reuses its buffer).
    public var message: String
    /// The libssh2 function that failed, e.g. "libssh2_session_handshake".
    public var call: String

    public init(kind: Kind, code: Int32, message: String, call: String) {
        self.kind = kind
        self.code = code
        self.message = message
        self.call = call
    }

    public var description: String {
        code == 0 ? "\(call): \(message)" : "\(call): \(message) (libssh2 error \(code))"
    }

    static func kind(for code: Int32) -> Kind {
        switch code {
        case LIBSSH2_ERROR_KEX_FAILURE, LIBSSH2_ERROR_HOSTKEY_INIT, LIBSSH2_ERROR_HOSTKEY_SIGN,
             LIBSSH2_ERROR_BANNER_RECV, LIBSSH2_ERROR_BANNER_SEND, LIBSSH2_ERROR_METHOD_NOT_SUPPORTED:
            return .handshake
        case LIBSSH2_ERROR_AUTHENTICATION_FAILED, LIBSSH2_ERROR_PUBLICKEY_UNVERIFIED:
            return .authentication
        case LIBSSH2_ERROR_FILE:
            return .keyFile
        case LIBSSH2_ERROR_SOCKET_DISCONNECT, LIBSSH2_ERROR_SOCKET_RECV, LIBSSH2_ERROR_SOCKET_SEND,
             LIBSSH2_ERROR_CHANNEL_CLOSED:
            return .disconnected
        case LIBSSH2_ERROR_TIMEOUT, LIBSSH2_ERROR_SOCKET_TIMEOUT:
            return .timeout
        default:
            return .other
        }
    }

    /// Builds an error from the session's last error, copying the message immediately.
    static func last(_ session: OpaquePointer, call: String, code: Int32? = nil) -> SSHError {
        var messagePointer: UnsafeMutablePointer<CChar>?
        var length: Int32 = 0
        let last = libssh2_session_last_error(session, &messagePointer, &length, 0)
        let message = messagePointer.map { String(cString: $0) } ?? "unknown error"
        let finalCode = code ?? last
        return SSHError(kind: kind(for: finalCode), code: finalCode, message: message, call: call)
    }
}
