import SSH

/// dbgbox's version, and what `--version` and `status` say about libssh2 and its fast path.
public enum DbgboxVersion {
    public static let current = "0.1.0"

    /// What `dbgbox --version` prints: dbgbox's version, the libssh2 and OpenSSL loaded (their
    /// run-time versions, not the headers'), and the fast-path line.
    public static var report: String {
        let status = FastPath.status
        return """
        dbgbox \(current)
        libssh2 \(status.libssh2Version), \(status.openSSLVersion)
        \(fastPathLine(status))
        """
    }

    /// The one line `dbgbox --version` and `dbgbox status` give about the libssh2 fast path.
    public static func fastPathLine(_ status: FastPath.Status = FastPath.status) -> String {
        "libssh2 fast path: \(status.summary)"
    }
}
