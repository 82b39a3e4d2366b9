import CLibSSH2FastPath

/// AES-CTR in batches for libssh2 1.10 (Sources/CLibSSH2FastPath/aes_ctr.c).
///
/// libssh2 1.10 makes one OpenSSL call per 16-byte block of every packet; for its AES-CTR
/// contexts the keystream is made 8 KiB at a time instead and each call XORs the next bytes of
/// it. Nothing to call: the dynamic linker binds libssh2's calls to it. Part of the fast path:
/// on only when `FastPath.status` says so (`DBGBOX_LIBSSH2_BATCH=0`, versions, self-test).
public enum CipherBatch {
    /// Whether libssh2's AES-CTR calls are batched in this process (the fast path is on).
    public static var isEnabled: Bool { dbgbox_batch_enabled() != 0 }

    /// How many libssh2 cipher contexts have been batched so far.
    public static var contexts: UInt64 { dbgbox_batch_contexts() }

    /// Compares the batched path with OpenSSL's AES-CTR (all key sizes) over `rounds` calls of
    /// libssh2's sizes and odd ones. Returns 0 when every byte matches, else which check failed.
    public static func selfTest(rounds: Int) -> Int32 { dbgbox_batch_selftest(rounds) }
}

/// HMAC and padding bytes for libssh2 1.10 without OpenSSL 3's per-call setup
/// (Sources/CLibSSH2FastPath/hmac_padding.c).
///
/// libssh2 1.10 sets up a new OpenSSL HMAC context with its key for every packet and asks
/// RAND_bytes for every packet's padding; for its calls the key's digest states are kept in a
/// small table instead (wiped whenever a session is freed) and the padding comes from a
/// per-thread pool of OpenSSL's random bytes. Nothing to call but `forget`: the dynamic linker
/// binds libssh2's calls to it. Part of the fast path, on and off with the AES-CTR batches.
public enum MACFastPath {
    /// Whether libssh2's HMAC and RAND_bytes calls take the fast path in this process.
    public static var isEnabled: Bool { dbgbox_mac_enabled() != 0 }

    /// How many MACs libssh2 started on the fast path so far.
    public static var count: UInt64 { dbgbox_mac_count() }

    /// Wipes the table of key states (called whenever a session is freed).
    public static func forget() { dbgbox_mac_forget() }

    /// Compares the fast HMAC with OpenSSL's (SHA-1, SHA-256, SHA-512) over `rounds` MACs.
    /// Returns 0 when every byte matches, else which check failed.
    public static func selfTest(rounds: Int) -> Int32 { dbgbox_mac_selftest(rounds) }
}
