import Foundation
import XCTest
import SSH

/// The libssh2 fast path's gate (Sources/CLibSSH2FastPath/fastpath.c): on here (libssh2 1.10,
/// OpenSSL 3, the known-answer self-test passes through the interposed entry points), off with the
/// reason when a vector or a version is made wrong (test-only faults). Each test that forces a fault
/// decides again without it before it ends, so the other tests find the fast path on.
final class FastPathTests: XCTestCase {
    override func tearDown() {
        FastPath.testRedecide(.none)
        super.tearDown()
    }

    func testOnHereWithTheSelfTestPassed() {
        let status = FastPath.status
        XCTAssertTrue(status.isEnabled, status.summary)
        XCTAssertEqual(status.cause, .on)
        XCTAssertEqual(status.reason, "")
        XCTAssertTrue(status.libssh2Version.hasPrefix("1.10."), status.libssh2Version)
        XCTAssertTrue(status.openSSLVersion.hasPrefix("OpenSSL 3."), status.openSSLVersion)
        XCTAssertGreaterThan(status.selfTestNanoseconds, 0, "the self-test did not run")
        XCTAssertTrue(status.summary.hasPrefix("on (") && status.summary.contains("self-test passed"), status.summary)
        XCTAssertTrue(CipherBatch.isEnabled)
        XCTAssertTrue(MACFastPath.isEnabled)
        // The latest decision's (the first in this process unless another test decided again since).
        print("fast-path self-test: \(Self.micros(status.selfTestNanoseconds)), after OpenSSL's first-use setup: \(Self.micros(status.openSSLSetupNanoseconds))")
    }

    /// Well under a millisecond; printed, not asserted (the two cores are shared). Warm: OpenSSL's
    /// first-use setup and first fetches are done (dbgbox --version shows a first run in a process).
    func testSelfTestTime() {
        var times: [UInt64] = []
        for _ in 0..<50 {
            let status = FastPath.testRedecide(.none)
            XCTAssertTrue(status.isEnabled, status.summary)
            times.append(status.selfTestNanoseconds)
        }
        times.sort()
        print("fast-path self-test, 50 runs: min \(Self.micros(times[0])), median \(Self.micros(times[25])), max \(Self.micros(times[49]))")
    }

    func testAWrongAESVectorTurnsItOffAndSaysWhich() {
        let contexts = CipherBatch.contexts
        let status = assertOff(.aesVector, cause: .selfTestFailed, reason: "self-test failed: AES-128-CTR (NIST SP 800-38A F.5.1)")
        XCTAssertEqual(status.summary, "off: self-test failed: AES-128-CTR (NIST SP 800-38A F.5.1); libssh2 runs on plain OpenSSL")
        XCTAssertGreaterThan(CipherBatch.contexts, contexts, "the self-test's AES calls did not go through the batched path")
    }

    func testAWrongHMACVectorTurnsItOffAndSaysWhich() {
        let macs = MACFastPath.count
        assertOff(.hmacVector, cause: .selfTestFailed, reason: "self-test failed: HMAC-SHA-256 (RFC 4231 case 2)")
        // SHA-1's two vectors and SHA-256's first passed on the fast path (twice each) before it.
        XCTAssertGreaterThanOrEqual(MACFastPath.count - macs, 6)
    }

    func testAnotherLibSSH2TurnsItOffWithoutTheSelfTest() {
        let status = assertOff(.libssh2Version, cause: .versionMismatch, reason: "libssh2 1.11.0 is not 1.10.x")
        XCTAssertEqual(status.libssh2Version, "1.11.0")
        XCTAssertEqual(status.selfTestNanoseconds, 0)
    }

    func testAnotherOpenSSLTurnsItOffWithoutTheSelfTest() {
        let status = assertOff(.openSSLVersion, cause: .versionMismatch, reason: "OpenSSL 1.1.1w  11 Sep 2023 is not OpenSSL 3.x")
        XCTAssertEqual(status.selfTestNanoseconds, 0)
    }

    /// Decides again with `fault`: off, for that cause and reason, for every part of the fast path.
    @discardableResult
    func assertOff(_ fault: FastPath.TestFault, cause: FastPath.Cause, reason: String,
                   file: StaticString = #filePath, line: UInt = #line) -> FastPath.Status {
        let status = FastPath.testRedecide(fault)
        XCTAssertFalse(status.isEnabled, file: file, line: line)
        XCTAssertEqual(status.cause, cause, file: file, line: line)
        XCTAssertEqual(status.reason, reason, file: file, line: line)
        XCTAssertEqual(FastPath.status, status, file: file, line: line)
        XCTAssertFalse(CipherBatch.isEnabled, file: file, line: line)
        XCTAssertFalse(MACFastPath.isEnabled, file: file, line: line)
        return status
    }

    func testOnAgainAfterAFault() {
        XCTAssertFalse(FastPath.testRedecide(.aesVector).isEnabled)
        let status = FastPath.testRedecide(.none)
        XCTAssertTrue(status.isEnabled, status.summary)
        XCTAssertEqual(status.cause, .on)
        XCTAssertTrue(CipherBatch.isEnabled && MACFastPath.isEnabled)
    }

    static func micros(_ nanoseconds: UInt64) -> String {
        String(format: "%.1f µs", Double(nanoseconds) / 1000)
    }
}
