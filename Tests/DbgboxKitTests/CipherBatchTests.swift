import XCTest
import SSH

/// The batched AES-CTR keystream for libssh2 (Sources/CLibSSH2Batch): byte for byte OpenSSL's.
/// TunnelEngineTests.testHundredMiBBothDirections shows it in use on real sessions.
final class CipherBatchTests: XCTestCase {
    func testEnabledInThisProcess() {
        XCTAssertTrue(CipherBatch.isEnabled, "libssh2's code was not found, or DBGBOX_LIBSSH2_BATCH=0 is set")
    }

    func testKeystreamMatchesOpenSSLForEveryKeySize() {
        // 0: every byte equal; otherwise the number says which check failed (libssh2_batch.c).
        XCTAssertEqual(CipherBatch.selfTest(rounds: 5_000), 0)
    }
}

/// libssh2's HMACs and padding without OpenSSL 3's per-call setup (Sources/CLibSSH2Batch/libssh2_mac.c):
/// byte for byte OpenSSL's HMAC. TunnelEngineTests.testHundredMiBBothDirections shows it in use.
final class MACFastPathTests: XCTestCase {
    func testEnabledInThisProcess() {
        XCTAssertTrue(MACFastPath.isEnabled, "libssh2's code was not found, or DBGBOX_LIBSSH2_BATCH=0 is set")
    }

    func testHMACMatchesOpenSSLForEveryDigest() {
        // 0: every byte equal; otherwise the number says which check failed (libssh2_mac.c).
        XCTAssertEqual(MACFastPath.selfTest(rounds: 3_000), 0)
    }
}
