import Foundation
import XCTest
@testable import DbgboxKit

/// A throwaway OpenSSH sshd on 127.0.0.1 with its own host key and config (never the system's),
/// letting `user` in with the given authorized keys. `settings` replace or add sshd_config lines
/// (e.g. keyboard-interactive through PAM). Stopped on `stop()` or deinit.
final class TestSSHD {
    let dir: String
    let port: UInt16
    let hostKeyLine: String
    private let process: ChildProcess

    init(user: String, authorizedKeys: String, settings: KeyValuePairs<String, String> = [:]) throws {
        try IT.require(FileManager.default.isExecutableFile(atPath: "/usr/sbin/sshd"), "OpenSSH sshd (openssh-server)")
        dir = "/tmp/dbgbox-sshd-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: "/run/sshd", withIntermediateDirectories: true)
        let keygen = try IT.runner.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "test-host", "-f", "\(dir)/host_ed25519"])
        XCTAssertTrue(keygen.succeeded, keygen.stderrText)
        hostKeyLine = try String(contentsOfFile: "\(dir)/host_ed25519.pub", encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        try authorizedKeys.write(toFile: "\(dir)/authorized_keys", atomically: true, encoding: .utf8)
        port = try Self.freePort()
        var lines: [(String, String)] = [
            ("Port", "\(port)"), ("ListenAddress", "127.0.0.1"), ("HostKey", "\(dir)/host_ed25519"),
            ("PidFile", "\(dir)/sshd.pid"), ("AuthorizedKeysFile", "\(dir)/authorized_keys"), ("StrictModes", "no"),
            ("PasswordAuthentication", "no"), ("KbdInteractiveAuthentication", "no"), ("UsePAM", "no"),
            ("PermitRootLogin", "no"), ("AllowUsers", user), ("LogLevel", "VERBOSE"), ("Subsystem", "sftp internal-sftp"),
        ]
        for (key, value) in settings {
            if let i = lines.firstIndex(where: { $0.0 == key }) { lines[i].1 = value } else { lines.append((key, value)) }
        }
        let config = lines.map { "\($0.0) \($0.1)\n" }.joined()
        try config.write(toFile: "\(dir)/sshd_config", atomically: true, encoding: .utf8)
        process = try ChildProcess(["/usr/sbin/sshd", "-D", "-e", "-f", "\(dir)/sshd_config"],
                                   stdout: .null, stderr: .file("\(dir)/sshd.log"))
        try waitForListening(port: port, timeout: 10)
    }

    deinit { stop() }

    func stop() {
        process.signal(SIGTERM)
        process.wait()
        try? FileManager.default.removeItem(atPath: dir)
    }

    /// A known_hosts line for this sshd as ssh names it: `[127.0.0.1]:PORT TYPE BASE64`.
    var knownHostsLine: String {
        let parts = hostKeyLine.split(separator: " ")
        return "[127.0.0.1]:\(port) \(parts[0]) \(parts[1])"
    }

    static func freePort() throws -> UInt16 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) == 0 && getsockname(fd, $0, &len) == 0 }
        }
        guard ok else { throw DbgboxError("no free port") }
        return UInt16(bigEndian: addr.sin_port)
    }

    func waitForListening(port: UInt16, timeout: TimeInterval) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var addr = sockaddr_in()
            addr.sin_family = sa_family_t(AF_INET)
            addr.sin_addr.s_addr = inet_addr("127.0.0.1")
            addr.sin_port = port.bigEndian
            let connected = withUnsafePointer(to: &addr) { p in
                p.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
            }
            close(fd)
            if connected { return }
            usleep(50_000)
        }
        throw DbgboxError("sshd did not listen on \(port) within \(timeout) s")
    }
}
