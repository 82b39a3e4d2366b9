import CLibSSH2

extension SSHSession {
    /// Password authentication (for a first `dbgbox key install`, before any key is authorized).
    public func authenticate(user: String, password: String) throws {
        let rc = libssh2_userauth_password_ex(raw, user, UInt32(user.utf8.count), password,
                                              UInt32(password.utf8.count), nil)
        if rc != 0 { throw SSHError.last(raw, call: "libssh2_userauth_password_ex", code: rc) }
    }
}
