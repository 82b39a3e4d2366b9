import CLibSSH2FastPath
import Foundation

/// Whether libssh2's OpenSSL calls take the fast path in this process (Sources/CLibSSH2FastPath:
/// AES-CTR keystream in batches, HMAC from kept key states, padding bytes from a pool), and why.
///
/// It is on only when `DBGBOX_LIBSSH2_BATCH` is not `0`, the libssh2 loaded is 1.10.x, the
/// libcrypto loaded is OpenSSL 3.x, the interposed entry points are the ones libssh2 reaches, and
/// a known-answer self-test (NIST and RFC vectors, through those entry points) passes. It decides
/// once per process, at first use: `LibSSH2.ensureInitialized()` (before any session), or the first
/// `status`, or else libssh2's first call to one of them. This module never prints: the command
/// layer says what `status` says, and is told of a failed self-test (`onSelfTestFailure`).
public enum FastPath {
    public enum Cause: Sendable, Equatable {
        case on
        /// `DBGBOX_LIBSSH2_BATCH=0`.
        case switchedOff
        /// The libssh2 or OpenSSL loaded is not the one the fast path was made for.
        case versionMismatch
        /// libssh2's code, an OpenSSL function or the interposing was not found.
        case unavailable
        /// The known-answer self-test failed.
        case selfTestFailed
    }

    public struct Status: Sendable, Equatable {
        public var isEnabled: Bool
        public var cause: Cause
        /// Empty when on, else why off.
        public var reason: String
        /// Of the libssh2 loaded (`libssh2_version(0)`), or "not loaded".
        public var libssh2Version: String
        /// Of the libcrypto loaded (`OpenSSL_version(OPENSSL_VERSION)`), e.g. "OpenSSL 3.0.19 27 Jan 2026".
        public var openSSLVersion: String
        /// How long the self-test took; 0 when it did not run.
        public var selfTestNanoseconds: UInt64
        /// How long OpenSSL's own first-use setup took just before it (libssh2's first key exchange
        /// would pay it anyway); 0 when the self-test did not run.
        public var openSSLSetupNanoseconds: UInt64

        /// One line: "on (…; self-test passed in 40 µs)" or "off: why; libssh2 runs on plain OpenSSL".
        public var summary: String {
            if isEnabled {
                return "on (AES-CTR keystream batches, HMAC key states, padding pool; self-test passed in \(Self.micros(selfTestNanoseconds)))"
            }
            return "off: \(reason); libssh2 runs on plain OpenSSL"
        }

        static func micros(_ nanoseconds: UInt64) -> String {
            nanoseconds < 1000 ? "<1 µs" : "\((nanoseconds + 500) / 1000) µs"
        }
    }

    /// Decides first if need be (once per process), then says what was decided.
    public static var status: Status {
        var report = dbgbox_fastpath_report()
        dbgbox_fastpath_get_report(&report)
        let status = Status(report)
        if status.cause == .selfTestFailed { notice.tell(status) }
        return status
    }

    /// Sets what to call, once per process, when the fast path has turned itself off because its
    /// self-test failed (the command layer prints a warning; this module never prints). Set it
    /// at start, before anything asks for `status` or initializes libssh2.
    public static func onSelfTestFailure(_ handler: @escaping @Sendable (Status) -> Void) {
        notice.set(handler)
    }

    private static let notice = Notice()

    /// The handler, and whether it was called.
    private final class Notice: @unchecked Sendable {
        private let lock = NSLock()
        private var handler: (@Sendable (Status) -> Void)?
        private var told = false

        func set(_ handler: @escaping @Sendable (Status) -> Void) {
            lock.withLock { self.handler = handler }
        }

        func tell(_ status: Status) {
            let handler: (@Sendable (Status) -> Void)? = lock.withLock {
                guard !told, let handler = self.handler else { return nil }
                told = true
                return handler
            }
            handler?(status)
        }
    }

    /// TEST ONLY: what `testRedecide` pretends.
    public enum TestFault: Int32, Sendable {
        case none = 0
        /// One bit of the expected AES-128-CTR bytes flipped.
        case aesVector = 1
        /// One bit of the expected HMAC-SHA-256 bytes flipped.
        case hmacVector = 2
        /// libssh2 says 1.11.0.
        case libssh2Version = 3
        /// OpenSSL says 1.1.1w.
        case openSSLVersion = 4
    }

    /// TEST ONLY: decides again now, as if `fault` were true (`.none`: the real checks again), and
    /// returns the new status. Safe while sessions run: cipher contexts with a keystream keep it,
    /// HMAC contexts stay what they were made as, plain AES-CTR contexts take a keystream when on.
    @discardableResult
    public static func testRedecide(_ fault: TestFault) -> Status {
        _ = dbgbox_fastpath_test_redecide(fault.rawValue)
        return status
    }
}

extension FastPath.Status {
    init(_ r: dbgbox_fastpath_report) {
        let cause: FastPath.Cause
        switch r.cause {
        case Int32(DBGBOX_FASTPATH_ON.rawValue): cause = .on
        case Int32(DBGBOX_FASTPATH_OFF_SWITCH.rawValue): cause = .switchedOff
        case Int32(DBGBOX_FASTPATH_OFF_VERSION.rawValue): cause = .versionMismatch
        case Int32(DBGBOX_FASTPATH_OFF_SELFTEST.rawValue): cause = .selfTestFailed
        default: cause = .unavailable
        }
        self.init(isEnabled: r.enabled != 0, cause: cause, reason: Self.text(r.reason),
                  libssh2Version: Self.text(r.libssh2_version), openSSLVersion: Self.text(r.openssl_version),
                  selfTestNanoseconds: r.selftest_nanoseconds, openSSLSetupNanoseconds: r.openssl_setup_nanoseconds)
    }

    /// A C char array (imported as a tuple) up to its first NUL, or all of it.
    static func text<T>(_ chars: T) -> String {
        withUnsafeBytes(of: chars) { bytes in String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self) }
    }
}
