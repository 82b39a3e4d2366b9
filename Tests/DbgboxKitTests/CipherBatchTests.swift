import XCTest
import SSH

/// The batched AES-CTR keystream for libssh2 (Sources/CLibSSH2FastPath/aes_ctr.c): byte for byte OpenSSL's.
/// TunnelEngineTests.testHundredMiBBothDirections shows it in use on real sessions.
final class CipherBatchTests: XCTestCase {
    func testEnabledInThisProcess() {
        XCTAssertTrue(CipherBatch.isEnabled, "the fast path is off: \(FastPath.status.summary)")
    }

    func testKeystreamMatchesOpenSSLForEveryKeySize() {
        // 0: every byte equal; otherwise the number says which check failed (aes_ctr.c).
        XCTAssertEqual(CipherBatch.selfTest(rounds: 5_000), 0)
    }
}

/// libssh2's HMACs and padding without OpenSSL 3's per-call setup (Sources/CLibSSH2FastPath/hmac_padding.c):
/// byte for byte OpenSSL's HMAC. TunnelEngineTests.testHundredMiBBothDirections shows it in use.
final class MACFastPathTests: XCTestCase {
    func testEnabledInThisProcess() {
        XCTAssertTrue(MACFastPath.isEnabled, "the fast path is off: \(FastPath.status.summary)")
    }

    func testHMACMatchesOpenSSLForEveryDigest() {
        // 0: every byte equal; otherwise the number says which check failed (hmac_padding.c).
        XCTAssertEqual(MACFastPath.selfTest(rounds: 3_000), 0)
    }
}
