import Foundation
import XCTest
@testable import DbgboxKit

/// Throwaway keys made by the real `ssh-keygen` at test time (none are stored in the repository),
/// with ssh-keygen's own `-y` and `-l` outputs beside them: `NAME`, `NAME.pub`, `NAME.y`, `NAME.l`.
///
/// - `ed25519_c`, `ed25519_nocomment`, `ed25519_utf8`, `ed25519_wrap70` (comments: `c`, empty, UTF-8
///   with spaces, and 80 × `x` so that the base64 ends exactly on a 70-column line);
/// - `ecdsa_mpint31/32/33`: P-256 keys whose private scalar is encoded in 31, 32 and 33 bytes;
/// - `encrypted_ed25519` (passphrase `secret`), `rsa_openssh`, `rsa_pem` (`-m PEM`).
enum ThrowawayKeys {
    private static let made: Result<String, Error> = Result { try makeAll() }

    /// The directory holding all of them (made once per test process).
    static func directory() throws -> String {
        try made.get()
    }

    static func path(_ name: String) throws -> String { "\(try directory())/\(name)" }
    static func data(_ name: String) throws -> Data { try Data(contentsOf: URL(fileURLWithPath: try path(name))) }
    static func text(_ name: String) throws -> String { String(decoding: try data(name), as: UTF8.self) }

    private static func makeAll() throws -> String {
        let runner = LocalProcessRunner()
        guard LocalProcessRunner.resolve("ssh-keygen") != nil else {
            throw DbgboxError("ssh-keygen (openssh-client) is needed to make throwaway test keys: run scripts/bootstrap.sh")
        }
        let dir = NSTemporaryDirectory() + "dbgbox-keys-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)

        func keygen(_ name: String, _ args: [String]) throws {
            let r = try runner.run(["ssh-keygen", "-q"] + args + ["-f", "\(dir)/\(name)"])
            guard r.succeeded else { throw DbgboxError("ssh-keygen \(args): \(r.stderrText)") }
        }
        func record(_ name: String) throws {
            let y = try runner.run(["ssh-keygen", "-y", "-f", "\(dir)/\(name)"])
            let l = try runner.run(["ssh-keygen", "-l", "-f", "\(dir)/\(name).pub"])
            guard y.succeeded, l.succeeded else { throw DbgboxError("ssh-keygen -y/-l \(name) failed") }
            try y.stdout.write(to: URL(fileURLWithPath: "\(dir)/\(name).y"))
            try l.stdout.write(to: URL(fileURLWithPath: "\(dir)/\(name).l"))
        }

        let ed25519: [(String, String)] = [("ed25519_c", "c"), ("ed25519_nocomment", ""),
                                           ("ed25519_utf8", "André Souza@gpu-07 dbgbox"), ("ed25519_wrap70", String(repeating: "x", count: 80))]
        for (name, comment) in ed25519 {
            try keygen(name, ["-t", "ed25519", "-N", "", "-C", comment])
            try record(name)
        }
        // P-256 scalars: a leading zero byte is dropped (31 bytes, 1 key in 256), a high bit gets a
        // zero byte prepended (33 bytes, 1 in 2). Keep making keys until each length has one.
        var wanted: Set<Int> = [31, 32, 33]
        for attempt in 0..<4000 where !wanted.isEmpty {
            let candidate = "ecdsa_try\(attempt)"
            try keygen(candidate, ["-t", "ecdsa", "-b", "256", "-N", "", "-C", "c"])
            let key = try OpenSSHPrivateKey(fileContents: try Data(contentsOf: URL(fileURLWithPath: "\(dir)/\(candidate)")))
            guard case .ecdsaP256(let p256) = key.material else { continue }
            let first = p256.rawRepresentation.first ?? 1
            let length = first == 0 ? 31 : first >= 0x80 ? 33 : 32
            if wanted.remove(length) != nil {
                for suffix in ["", ".pub"] {
                    try FileManager.default.moveItem(atPath: "\(dir)/\(candidate)\(suffix)", toPath: "\(dir)/ecdsa_mpint\(length)\(suffix)")
                }
                try record("ecdsa_mpint\(length)")
            } else {
                try? FileManager.default.removeItem(atPath: "\(dir)/\(candidate)")
                try? FileManager.default.removeItem(atPath: "\(dir)/\(candidate).pub")
            }
        }
        guard wanted.isEmpty else { throw DbgboxError("no P-256 key with a \(wanted) byte scalar in 4000 tries") }

        try keygen("encrypted_ed25519", ["-t", "ed25519", "-N", "secret", "-C", "c"])
        try keygen("rsa_openssh", ["-t", "rsa", "-b", "2048", "-N", "", "-C", "rsa"])
        try keygen("rsa_pem", ["-t", "rsa", "-b", "2048", "-N", "", "-m", "PEM", "-C", "rsa"])
        return dir
    }
}
