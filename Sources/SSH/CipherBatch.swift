import CLibSSH2Batch

/// AES-CTR in batches for libssh2 1.10 (Sources/CLibSSH2Batch/libssh2_batch.c).
///
/// libssh2 1.10 makes one OpenSSL call per 16-byte block of every packet; for its AES-CTR
/// contexts the keystream is made 8 KiB at a time instead and each call XORs the next bytes of
/// it. Nothing to call: the dynamic linker binds libssh2's calls to it. `DBGBOX_LIBSSH2_BATCH=0`
/// turns it off (for comparison; scripts/bench.sh).
public enum CipherBatch {
    /// Whether libssh2's AES-CTR calls are batched in this process.
    public static var isEnabled: Bool { dbgbox_batch_enabled() != 0 }

    /// How many libssh2 cipher contexts have been batched so far.
    public static var contexts: UInt64 { dbgbox_batch_contexts() }

    /// Compares the batched path with OpenSSL's AES-CTR (all key sizes) over `rounds` calls of
    /// libssh2's sizes and odd ones. Returns 0 when every byte matches, else which check failed.
    public static func selfTest(rounds: Int) -> Int32 { dbgbox_batch_selftest(rounds) }
}
