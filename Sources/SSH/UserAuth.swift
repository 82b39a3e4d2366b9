import CLibSSH2
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// User authentication, the same for every session type (the blocking `SSHSession` and the
/// tunnel's `NonBlockingSSHSession`), so that one authenticator (DbgboxKit's `HopAuthenticator`)
/// serves every hop. Each method does one libssh2 exchange; a non-blocking session waits with
/// its waiter and repeats the same call after EAGAIN, as libssh2 1.10 requires.
public protocol SSHUserAuth: AnyObject {
    var isAuthenticated: Bool { get }
    /// The methods the server offers for `user` (asks the server; empty when "none" succeeded).
    func offeredMethods(user: String) throws -> [String]
    /// Tries every identity of the ssh-agent at `socketPath` (nil: SSH_AUTH_SOCK). Returns the
    /// comments of the identities offered; throws when the agent cannot be used at all; on
    /// success `isAuthenticated` is true.
    func agentLogin(user: String, socketPath: String?) throws -> [String]
    /// Public-key authentication from a private key file (public half derived by libssh2).
    func authenticate(user: String, privateKeyPath: String, passphrase: String?) throws
    /// Password authentication.
    func authenticate(user: String, password: String) throws
    /// Keyboard-interactive authentication (RFC 4256): the server asks, `respond` answers each
    /// round's prompts in order. Returning nil (or a wrong number of answers) gives up: empty
    /// answers are sent and this throws. This module asks nobody itself; the caller's closure does.
    func authenticate(user: String, keyboardInteractive respond: (KeyboardInteractiveChallenge) -> [String]?) throws
}

/// The libssh2 side of `SSHUserAuth`, shared by both session types: `drive` runs a call until it
/// stops saying EAGAIN (a blocking session's runs it once).
enum LibSSH2Auth {
    typealias Drive = (() -> Int32) throws -> Int32

    static func offeredMethods(_ raw: OpaquePointer, user: String, drive: Drive) throws -> [String] {
        var methods: [String] = []
        let rc = try drive {
            if let list = libssh2_userauth_list(raw, user, UInt32(user.utf8.count)) {
                methods = String(cString: list).split(separator: ",").map(String.init)
                return 0
            }
            if libssh2_userauth_authenticated(raw) != 0 { return 0 }
            return libssh2_session_last_errno(raw)
        }
        if rc != 0 { throw SSHError.last(raw, call: "libssh2_userauth_list", code: rc) }
        return methods
    }

    static func agent(_ raw: OpaquePointer, user: String, socketPath: String?, drive: Drive) throws -> [String] {
        guard let agent = libssh2_agent_init(raw) else { throw SSHError.last(raw, call: "libssh2_agent_init") }
        defer { libssh2_agent_free(agent) }
        if let socketPath { libssh2_agent_set_identity_path(agent, socketPath) }
        var rc = try drive { libssh2_agent_connect(agent) }
        if rc != 0 { throw SSHError.last(raw, call: "libssh2_agent_connect", code: rc) }
        defer { libssh2_agent_disconnect(agent) }
        rc = try drive { libssh2_agent_list_identities(agent) }
        if rc != 0 { throw SSHError.last(raw, call: "libssh2_agent_list_identities", code: rc) }
        var offered: [String] = []
        var previous: UnsafeMutablePointer<libssh2_agent_publickey>?
        while true {
            var identity: UnsafeMutablePointer<libssh2_agent_publickey>?
            let next = libssh2_agent_get_identity(agent, &identity, previous)
            if next != 0 { break } // 1: no more; < 0: error. Either way, stop offering.
            guard let identity else { break }
            offered.append(identity.pointee.comment.map { String(cString: $0) } ?? "?")
            let auth = try drive { libssh2_agent_userauth(agent, user, identity) }
            if auth == 0 { return offered }
            previous = identity
        }
        return offered
    }

    static func keyFile(_ raw: OpaquePointer, user: String, path: String, passphrase: String?, drive: Drive) throws {
        let rc = try drive {
            libssh2_userauth_publickey_fromfile_ex(raw, user, UInt32(user.utf8.count), nil, path, passphrase)
        }
        if rc != 0 { throw SSHError.last(raw, call: "libssh2_userauth_publickey_fromfile_ex", code: rc) }
    }

    static func password(_ raw: OpaquePointer, user: String, password: String, drive: Drive) throws {
        let rc = try drive {
            libssh2_userauth_password_ex(raw, user, UInt32(user.utf8.count), password, UInt32(password.utf8.count), nil)
        }
        if rc != 0 { throw SSHError.last(raw, call: "libssh2_userauth_password_ex", code: rc) }
    }

    static func keyboardInteractive(_ raw: OpaquePointer, user: String,
                                    respond: (KeyboardInteractiveChallenge) -> [String]?, drive: Drive) throws {
        try withoutActuallyEscaping(respond) { respond in
            let responder = KeyboardInteractiveResponder(respond)
            // libssh2's callback gets only the session's abstract pointer, which the non-blocking
            // session's transport callbacks use: the callback finds the responder through a
            // per-thread slot instead (libssh2 calls it on the thread that made the call).
            let previous = pthread_getspecific(responderSlot)
            pthread_setspecific(responderSlot, Unmanaged.passUnretained(responder).toOpaque())
            defer { pthread_setspecific(responderSlot, previous) }
            let rc = try drive {
                libssh2_userauth_keyboard_interactive_ex(raw, user, UInt32(user.utf8.count)) {
                    name, nameLength, instruction, instructionLength, count, prompts, responses, _ in
                    guard let context = pthread_getspecific(responderSlot) else { return }
                    let responder = Unmanaged<KeyboardInteractiveResponder>.fromOpaque(context).takeUnretainedValue()
                    responder.answer(name: LibSSH2Auth.text(name, Int(nameLength)),
                                     instruction: LibSSH2Auth.text(instruction, Int(instructionLength)),
                                     count: Int(count), prompts: prompts, responses: responses)
                }
            }
            if rc != 0 {
                if responder.gaveUp {
                    throw SSHError(kind: .authentication, code: rc, message: "no answer to the server's prompts",
                                   call: "libssh2_userauth_keyboard_interactive_ex")
                }
                throw SSHError.last(raw, call: "libssh2_userauth_keyboard_interactive_ex", code: rc)
            }
        }
    }

    /// Text libssh2 hands over with a length (not necessarily NUL-terminated).
    static func text(_ pointer: UnsafePointer<CChar>?, _ length: Int) -> String {
        guard let pointer, length > 0 else { return "" }
        return String(decoding: UnsafeRawBufferPointer(start: pointer, count: length), as: UTF8.self)
    }
}

/// The keyboard-interactive responder of the call in progress on this thread.
private let responderSlot: pthread_key_t = {
    var key = pthread_key_t()
    pthread_key_create(&key, nil)
    return key
}()

extension SSHSession: SSHUserAuth {
    private func once(_ op: () -> Int32) -> Int32 { op() }

    public func offeredMethods(user: String) throws -> [String] {
        try LibSSH2Auth.offeredMethods(raw, user: user, drive: once)
    }

    /// The methods the server offers for `user` (empty when "none" succeeded, or on an error).
    public func authMethods(user: String) -> [String] { (try? offeredMethods(user: user)) ?? [] }

    public func agentLogin(user: String, socketPath: String?) throws -> [String] {
        try LibSSH2Auth.agent(raw, user: user, socketPath: socketPath, drive: once)
    }

    public func authenticate(user: String, privateKeyPath: String, passphrase: String? = nil) throws {
        try LibSSH2Auth.keyFile(raw, user: user, path: privateKeyPath, passphrase: passphrase, drive: once)
    }

    public func authenticate(user: String, password: String) throws {
        try LibSSH2Auth.password(raw, user: user, password: password, drive: once)
    }

    public func authenticate(user: String, keyboardInteractive respond: (KeyboardInteractiveChallenge) -> [String]?) throws {
        try LibSSH2Auth.keyboardInteractive(raw, user: user, respond: respond, drive: once)
    }
}

extension NonBlockingSSHSession: SSHUserAuth {
    public func offeredMethods(user: String) throws -> [String] {
        try LibSSH2Auth.offeredMethods(raw, user: user, drive: drive)
    }

    public func agentLogin(user: String, socketPath: String?) throws -> [String] {
        try LibSSH2Auth.agent(raw, user: user, socketPath: socketPath, drive: drive)
    }

    public func authenticate(user: String, privateKeyPath: String, passphrase: String?) throws {
        try LibSSH2Auth.keyFile(raw, user: user, path: privateKeyPath, passphrase: passphrase, drive: drive)
    }

    public func authenticate(user: String, password: String) throws {
        try LibSSH2Auth.password(raw, user: user, password: password, drive: drive)
    }

    public func authenticate(user: String, keyboardInteractive respond: (KeyboardInteractiveChallenge) -> [String]?) throws {
        try LibSSH2Auth.keyboardInteractive(raw, user: user, respond: respond, drive: drive)
    }
}
