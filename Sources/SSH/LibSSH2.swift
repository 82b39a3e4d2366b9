import CLibSSH2

/// libssh2's global state. `libssh2_init` is not thread-safe, so it runs exactly once,
/// through a Swift global's lazy, thread-safe initializer. The fast path decides right after it,
/// before any session (`FastPath`).
public enum LibSSH2 {
    private static let initialized: Int32 = {
        let rc = libssh2_init(0)
        _ = FastPath.status
        return rc
    }()

    /// Makes sure libssh2 is initialized; returns its init result (0 on success).
    @discardableResult
    public static func ensureInitialized() -> Int32 { initialized }

    /// The runtime libssh2 version string, e.g. "1.10.0".
    public static var version: String {
        guard let v = libssh2_version(0) else { return "unknown" }
        return String(cString: v)
    }
}
