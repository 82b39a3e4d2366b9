import Crypto
import Foundation
import XCTest
@testable import DbgboxKit
import SSH

/// The tunnel engine end to end on loopback: two throwaway sshd ("login" and "node"), a target
/// TCP server, and the engine in this process authenticating as the test user.
final class TunnelEngineTests: TunnelRigTestCase {
    override var rigLabel: String { "tunnel" }

    private func hop(_ sshd: TestSSHD, label: String, key: String? = nil) -> TunnelHop {
        TunnelHop(host: "127.0.0.1", port: Int(sshd.port), user: IT.testUser,
                  credentials: [.keyFile(path: key ?? keyPath, passphrase: nil)], label: label)
    }

    private func configuration(nodeVia: NodeRoute = .direct, loginKey: String? = nil, nodeKey: String? = nil,
                               nodePort: Int? = nil, localPort: Int = 0) -> TunnelConfiguration {
        var nodeHop = hop(node, label: "node", key: nodeKey)
        if let nodePort { nodeHop.port = nodePort }
        return TunnelConfiguration(login: hop(login, label: "login host", key: loginKey), node: nodeHop, nodeVia: nodeVia,
                                   targetPort: Int(target.port), localPort: localPort, keepaliveInterval: 5, connectTimeout: 10)
    }

    // (1) One echo round trip through both hops.
    func testEchoRoundTrip() throws {
        let d = delegate()
        let (tunnel, stop) = try startTunnel(configuration(), delegate: d)
        defer { stop() }
        try assertEcho(port: tunnel.localPort, payload: Array("hello through two hops\n".utf8))
        XCTAssertTrue(d.events.contains(.hopUp(.login, label: "login host", endpoint: "127.0.0.1:\(login.port)")))
        XCTAssertTrue(d.events.contains(.hopUp(.node, label: "node", endpoint: "127.0.0.1:\(node.port)")))
        XCTAssertEqual(d.verified, ["login host", "node"])
        let stats = tunnel.stats
        XCTAssertTrue(stats.loginUp && stats.nodeUp)
    }

    // (1a) The node's sshd is asked for TCP_NODELAY on its side of the connection: it sets it
    // when a session channel runs a command (FlowPolicy.nodeNoDelayCommand), which its log says
    // at LogLevel VERBOSE. Nothing runs on the login host.
    func testNodeSshdRunsTheNoDelayCommandAndTheLoginHostNothing() throws {
        let (tunnel, stop) = try startTunnel(configuration(), delegate: delegate())
        defer { stop() }
        try assertEcho(port: tunnel.localPort, payload: Array("hello\n".utf8))
        let deadline = Date().addingTimeInterval(10)
        func sessions(_ sshd: TestSSHD) -> Int {
            let log = (try? String(contentsOfFile: "\(sshd.dir)/sshd.log", encoding: .utf8)) ?? ""
            return log.components(separatedBy: "Starting session: command for \(IT.testUser)").count - 1
        }
        while sessions(node) == 0 && Date() < deadline { usleep(50_000) }
        XCTAssertEqual(sessions(node), 1, "the node's sshd ran no command session")
        XCTAssertEqual(sessions(login), 0, "something ran on the login host")
        try assertEcho(port: tunnel.localPort, payload: Array("still forwarding\n".utf8))
    }

    // (1b) Small messages: the thread that receives one does the other hop's pass itself while
    // that hop's thread sleeps (one wake-up per direction, not two). 200 round trips of 64 bytes
    // make about 400 such passes (one each way); a pass the other thread was busy with is not
    // counted, so the test asks for half.
    func testSmallMessagesAreHandedOverBetweenHops() throws {
        let (tunnel, stop) = try startTunnel(configuration(), delegate: delegate())
        defer { stop() }
        let fd = try Self.connect(port: tunnel.localPort)
        defer { close(fd) }
        try Self.sendAll(fd, [UInt8(ascii: "E")])
        let before = tunnel.stats.handOvers
        var message = [UInt8](repeating: 0, count: 64)
        for round in 0..<200 {
            for i in message.indices { message[i] = UInt8(truncatingIfNeeded: round &+ i) }
            try Self.sendAll(fd, message)
            var back = [UInt8](repeating: 0, count: 64)
            var got = 0
            while got < 64 {
                let n = back.withUnsafeMutableBytes { recv(fd, $0.baseAddress! + got, 64 - got, 0) }
                guard n > 0 else { throw DbgboxError("echo \(round): recv returned \(n) (\(String(cString: strerror(errno))))") }
                got += n
            }
            XCTAssertEqual(back, message, "echo \(round)")
        }
        let handOvers = tunnel.stats.handOvers - before
        XCTAssertGreaterThanOrEqual(handOvers, 200, "passes done by the other hop's thread over 200 round trips")
        print("hand-overs: \(handOvers) passes over 200 round trips")
    }

    // (1c) The fast path off (a test-only self-test fault) when the tunnel starts: every context and
    // MAC goes to plain OpenSSL and the bytes arrive. Then on and off again while it runs: the
    // sessions' plain AES-CTR contexts take a keystream from their current counter, and once off,
    // keep it to their end while new MACs go back to OpenSSL; the echoes still arrive.
    func testEchoWhileTheFastPathTurnsOffAndOn() throws {
        defer { FastPath.testRedecide(.none) }
        XCTAssertFalse(FastPath.testRedecide(.aesVector).isEnabled)
        var contexts = CipherBatch.contexts, macs = MACFastPath.count
        let (tunnel, stop) = try startTunnel(configuration(), delegate: delegate())
        defer { stop() }
        try assertEcho(port: tunnel.localPort, payload: Array("on plain OpenSSL\n".utf8))
        XCTAssertEqual(CipherBatch.contexts, contexts, "a context was batched while the fast path was off")
        XCTAssertEqual(MACFastPath.count, macs, "a MAC took the fast path while it was off")

        XCTAssertTrue(FastPath.testRedecide(.none).isEnabled)
        contexts = CipherBatch.contexts
        macs = MACFastPath.count
        try assertEcho(port: tunnel.localPort, payload: Array("on the fast path again\n".utf8))
        // Each of the four contexts is batched at its next call; under a sanitizer a direction
        // may not have had one yet after a single echo, so echo on for a moment.
        for _ in 0..<20 where CipherBatch.contexts - contexts < 4 {
            try assertEcho(port: tunnel.localPort, payload: Array("again\n".utf8))
        }
        XCTAssertGreaterThanOrEqual(CipherBatch.contexts - contexts, 4, "the running sessions' contexts were not batched")
        XCTAssertGreaterThan(MACFastPath.count, macs)

        XCTAssertFalse(FastPath.testRedecide(.hmacVector).isEnabled)
        try assertEcho(port: tunnel.localPort, payload: Array("off again mid-session\n".utf8))
    }

    // (2) 100 MiB up and 100 MiB down at the same time, SHA-256 on both ends.
    // Both sessions' AES-CTR contexts go through the batched keystream (CipherBatch) and their
    // MACs through the fast path (MACFastPath), so the checksums and OpenSSH's MAC checks also
    // prove their bytes on a real transfer.
    func testHundredMiBBothDirections() throws {
        XCTAssertTrue(CipherBatch.isEnabled, "libssh2's AES-CTR calls are not batched in this process")
        XCTAssertTrue(MACFastPath.isEnabled, "libssh2's HMAC calls do not take the fast path in this process")
        let contextsBefore = CipherBatch.contexts
        let macsBefore = MACFastPath.count
        let (tunnel, stop) = try startTunnel(configuration(), delegate: delegate())
        defer { stop() }
        let size = 100 << 20
        let group = DispatchGroup()
        let results = Results(count: 2)
        let seconds = Results(count: 2)
        Thread {
            let t0 = Date()
            results.set(0, (try? Self.upload(port: tunnel.localPort, size: size, seed: 7)) ?? false)
            seconds.setTime(0, Date().timeIntervalSince(t0))
            group.leave()
        }.start(with: group)
        Thread {
            let t0 = Date()
            results.set(1, (try? Self.download(port: tunnel.localPort, size: size, seed: 9)) ?? false)
            seconds.setTime(1, Date().timeIntervalSince(t0))
            group.leave()
        }.start(with: group)
        XCTAssertEqual(group.wait(timeout: .now() + 90), .success)
        XCTAssertEqual(results.failures, [], "0: upload checksum, 1: download checksum")
        let upSeconds = seconds.time(0), downSeconds = seconds.time(1)
        print("tunnel: 100 MiB up \(String(format: "%.2f", upSeconds)) s, 100 MiB down \(String(format: "%.2f", downSeconds)) s (concurrent, debug build)")
        XCTAssertEqual(tunnel.stats.bytesUp >= UInt64(size), true)
        // Login and node sessions: a context each way, each.
        XCTAssertGreaterThanOrEqual(CipherBatch.contexts - contextsBefore, 4, "the tunnel's sessions did not use the batched keystream")
        // 200 MiB in packets of at most 32 KiB, each MACed by both sessions (sent or checked).
        XCTAssertGreaterThanOrEqual(MACFastPath.count - macsBefore, 2 * 6400, "the tunnel's sessions did not use the fast MAC path")
    }

    // (3) 64 concurrent connections, each checksummed (half upload, half download).
    func testSixtyFourConcurrentConnections() throws {
        let d = delegate()
        let (tunnel, stop) = try startTunnel(configuration(), delegate: d)
        defer { stop() }
        let count = 64
        let results = Results(count: count)
        let group = DispatchGroup()
        let go = DispatchSemaphore(value: 0)
        for i in 0..<count {
            Thread {
                go.wait()
                let size = (1 << 20) + i * 4099
                let ok = i % 2 == 0 ? (try? Self.upload(port: tunnel.localPort, size: size, seed: UInt64(i))) ?? false
                                    : (try? Self.download(port: tunnel.localPort, size: size, seed: UInt64(i))) ?? false
                results.set(i, ok)
                group.leave()
            }.start(with: group)
        }
        for _ in 0..<count { go.signal() }
        XCTAssertEqual(group.wait(timeout: .now() + 60), .success)
        XCTAssertEqual(results.failures, [], "connections with a wrong checksum")
        XCTAssertEqual(tunnel.stats.totalConnections, count)
        let opened = d.events.filter { if case .connectionOpened = $0 { return true } else { return false } }.count
        XCTAssertEqual(opened, count)
    }

    // (4) --node-via exec: the login host runs ssh -W to reach the node's sshd.
    func testNodeViaExec() throws {
        // The test user's own copy of the key and a known_hosts for the node (ssh is strict).
        let userKey = "\(dir)/user_key"
        try FileManager.default.copyItem(atPath: keyPath, toPath: userKey)
        let knownHosts = "\(dir)/known_hosts"
        try (node.knownHostsLine + "\n").write(toFile: knownHosts, atomically: true, encoding: .utf8)
        _ = try IT.runner.run(["chown", "\(IT.user.uid):\(IT.user.gid)", userKey, knownHosts])
        _ = try IT.runner.run(["chmod", "600", userKey])
        let argv = ["ssh", "-F", "/dev/null", "-i", userKey, "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
                    "-o", "StrictHostKeyChecking=yes", "-o", "UserKnownHostsFile=\(knownHosts)",
                    "-p", String(node.port), "-W", "127.0.0.1:\(node.port)", "\(IT.testUser)@127.0.0.1"]
        let (tunnel, stop) = try startTunnel(configuration(nodeVia: .exec(command: argv)), delegate: delegate())
        defer { stop() }
        try assertEcho(port: tunnel.localPort, payload: Array(repeating: 0x5a, count: 100_000))
        XCTAssertTrue(try Self.download(port: tunnel.localPort, size: 8 << 20, seed: 3))
    }

    // (5) The login sshd's connection dies mid-run: hop down, back within 5 s, new connections work.
    func testReconnectsAfterLoginConnectionIsKilled() throws {
        let d = delegate()
        let (tunnel, stop) = try startTunnel(configuration(), delegate: d)
        defer { stop() }
        try assertEcho(port: tunnel.localPort, payload: Array("before\n".utf8))
        // A connection that is open when the hop dies must be closed, not hang.
        let held = try Self.connect(port: tunnel.localPort)
        defer { close(held) }
        try Self.sendAll(held, [UInt8(ascii: "E"), 1, 2, 3])
        var three = [UInt8](repeating: 0, count: 3)
        XCTAssertEqual(recv(held, &three, 3, Int32(MSG_WAITALL)), 3)

        let children = try Self.sshdChildren(of: login)
        XCTAssertFalse(children.isEmpty, "no per-connection sshd child found")
        let killed = Date()
        for pid in children { kill(pid, SIGKILL) }

        XCTAssertTrue(d.waitFor(timeout: 5) { events in
            events.contains { if case .hopDown(.login, _, _, _) = $0 { return true } else { return false } }
        }, "no hop-down event: \(d.events)")
        XCTAssertTrue(d.waitFor(timeout: 5) { events in
            events.filter { if case .ready = $0 { return true } else { return false } }.count >= 2
        }, "not reconnected: \(d.events)")
        let back = Date().timeIntervalSince(killed)
        print("tunnel: reconnected \(String(format: "%.2f", back)) s after the login connection was killed")
        XCTAssertLessThan(back, 5)
        var buffer = [UInt8](repeating: 0, count: 16)
        XCTAssertLessThanOrEqual(recv(held, &buffer, 16, 0), 0, "the old connection should be closed")
        try assertEcho(port: tunnel.localPort, payload: Array("after\n".utf8))
        XCTAssertEqual(tunnel.stats.reconnects, 1)
    }

    // (6) Errors name the hop.
    func testWrongKeyNamesTheHop() throws {
        let other = "\(dir)/other"
        _ = try IT.runner.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", other])
        for (role, config) in [(TunnelHopRole.login, configuration(loginKey: other)), (.node, configuration(nodeKey: other))] {
            let tunnel = try Tunnel(configuration: config, delegate: delegate())
            XCTAssertThrowsError(try tunnel.start()) { error in
                let e = error as? TunnelError
                XCTAssertEqual(e?.kind, .authentication, "\(error)")
                XCTAssertEqual(e?.role, role)
                let name = role == .login ? "login host 127.0.0.1:\(login.port)" : "node 127.0.0.1:\(node.port)"
                XCTAssertTrue("\(error)".hasPrefix("\(name): authentication failed for user \(IT.testUser) with \(other)"), "\(error)")
            }
        }
    }

    func testRSAKeyRefusalSaysWhy() throws {
        let rsa = "\(dir)/rsa"
        _ = try IT.runner.run(["ssh-keygen", "-q", "-t", "rsa", "-b", "2048", "-N", "", "-f", rsa])
        let pub = try String(contentsOfFile: rsa + ".pub", encoding: .utf8)
        let rsaLogin = try TestSSHD(user: IT.testUser, authorizedKeys: pub)
        defer { rsaLogin.stop() }
        var config = configuration()
        config.login = TunnelHop(host: "127.0.0.1", port: Int(rsaLogin.port), user: IT.testUser,
                                 credentials: [.keyFile(path: rsa, passphrase: nil)], label: "login host")
        let d = RecordingDelegate(expected: ["login host": rsaLogin.hostKeyLine, "node": node.hostKeyLine])
        XCTAssertThrowsError(try Tunnel(configuration: config, delegate: d).start()) { error in
            XCTAssertEqual((error as? TunnelError)?.kind, .authentication, "\(error)")
            let text = "\(error)"
            XCTAssertTrue(text.contains("rsa-sha2"), text)
            XCTAssertTrue(text.contains("dbgbox keygen"), text)
        }
    }

    func testRefusedHostKeyNamesTheHop() throws {
        let d = delegate()
        d.refuse = "node"
        XCTAssertThrowsError(try Tunnel(configuration: configuration(), delegate: d).start()) { error in
            XCTAssertEqual((error as? TunnelError)?.kind, .hostKey, "\(error)")
            XCTAssertTrue("\(error)".hasPrefix("node 127.0.0.1:\(node.port): host key not accepted: refused by test"), "\(error)")
        }
    }

    func testTakenLocalPort() throws {
        let port = try TestSSHD.freePort()
        let fd = try SocketIO.listen(address: "127.0.0.1", port: port)
        defer { close(fd) }
        XCTAssertThrowsError(try Tunnel(configuration: configuration(localPort: Int(port)), delegate: delegate()).start()) { error in
            XCTAssertEqual((error as? TunnelError)?.kind, .localPort)
            XCTAssertTrue("\(error)".contains("cannot listen on 127.0.0.1:\(port): Address already in use"), "\(error)")
        }
    }

    func testUnreachableNodeNamesTheNode() throws {
        let closed = Int(try TestSSHD.freePort())
        XCTAssertThrowsError(try Tunnel(configuration: configuration(nodePort: closed), delegate: delegate()).start()) { error in
            XCTAssertEqual((error as? TunnelError)?.role, .node, "\(error)")
            XCTAssertTrue("\(error)".hasPrefix("node 127.0.0.1:\(closed): "), "\(error)")
        }
    }

    func testUnreachableLoginHost() throws {
        var config = configuration()
        config.login.port = Int(try TestSSHD.freePort())
        XCTAssertThrowsError(try Tunnel(configuration: config, delegate: delegate()).start()) { error in
            XCTAssertEqual((error as? TunnelError)?.kind, .unreachable, "\(error)")
            XCTAssertTrue("\(error)".hasPrefix("login host 127.0.0.1:\(config.login.port): cannot connect"), "\(error)")
        }
    }

    // MARK: helpers

    /// The per-connection processes of an sshd (its children and their children), not the listener.
    static func sshdChildren(of sshd: TestSSHD) throws -> [pid_t] {
        let listeners = try IT.runner.run(["pgrep", "-f", "\(sshd.dir)/sshd_config"]).stdoutText
            .split(whereSeparator: \.isNewline).compactMap { pid_t($0) }
        var result: [pid_t] = []
        var frontier = listeners
        while let pid = frontier.popLast() {
            let out = try IT.runner.run(["pgrep", "-P", String(pid)]).stdoutText
            let children = out.split(whereSeparator: \.isNewline).compactMap { pid_t($0) }
            result += children
            frontier += children
        }
        return result.filter { !listeners.contains($0) }
    }

    private func assertEcho(port: Int, payload: [UInt8], file: StaticString = #filePath, line: UInt = #line) throws {
        let fd = try Self.connect(port: port)
        defer { close(fd) }
        try Self.sendAll(fd, [UInt8(ascii: "E")] + payload)
        shutdown(fd, Int32(SHUT_WR))
        let back = try Self.readAll(fd)
        XCTAssertEqual(back, payload, file: file, line: line)
    }

    /// Makes `close` send a reset (SO_LINGER 0) instead of a FIN.
    static func resetOnClose(_ fd: Int32) {
        var option = linger(l_onoff: 1, l_linger: 0)
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &option, socklen_t(MemoryLayout<linger>.size))
    }

    static func connect(port: Int) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = UInt16(port).bigEndian
        let ok = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
        guard ok else { close(fd); throw DbgboxError("connect 127.0.0.1:\(port): \(String(cString: strerror(errno)))") }
        var tv = timeval(tv_sec: 60, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        return fd
    }

    static func sendAll(_ fd: Int32, _ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try sendAll(fd, $0.baseAddress!, $0.count) }
    }

    static func sendAll(_ fd: Int32, _ p: UnsafeRawPointer, _ count: Int) throws {
        var sent = 0
        while sent < count {
            let n = send(fd, p + sent, count - sent, Int32(MSG_NOSIGNAL))
            guard n > 0 else { throw DbgboxError("send: \(String(cString: strerror(errno)))") }
            sent += n
        }
    }

    static func readAll(_ fd: Int32) throws -> [UInt8] {
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = recv(fd, &buffer, buffer.count, 0)
            if n == 0 { return out }
            guard n > 0 else { throw DbgboxError("recv: \(String(cString: strerror(errno)))") }
            out += buffer[0..<n]
        }
    }

    /// Sends `size` pattern bytes to the sink; true when the sink's SHA-256 matches ours.
    static func upload(port: Int, size: Int, seed: UInt64) throws -> Bool {
        let fd = try connect(port: port)
        defer { close(fd) }
        try sendAll(fd, [UInt8(ascii: "S")])
        var hasher = SHA256()
        try Pattern.stream(size: size, seed: seed) { chunk in
            hasher.update(bufferPointer: chunk)
            try sendAll(fd, chunk.baseAddress!, chunk.count)
        }
        shutdown(fd, Int32(SHUT_WR))
        let digest = try readAll(fd)
        return digest == Array(hasher.finalize())
    }

    /// Asks the source for `size` pattern bytes; true when what arrived hashes like the pattern.
    static func download(port: Int, size: Int, seed: UInt64) throws -> Bool {
        let fd = try connect(port: port)
        defer { close(fd) }
        var request = [UInt8(ascii: "G")]
        withUnsafeBytes(of: UInt64(size).bigEndian) { request += $0 }
        withUnsafeBytes(of: seed.bigEndian) { request += $0 }
        try sendAll(fd, request)
        var expected = SHA256()
        try Pattern.stream(size: size, seed: seed) { expected.update(bufferPointer: $0) }
        var got = SHA256()
        var total = 0
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 256 << 10, alignment: 16)
        defer { buffer.deallocate() }
        while true {
            let n = recv(fd, buffer.baseAddress, buffer.count, 0)
            if n == 0 { break }
            guard n > 0 else { throw DbgboxError("recv: \(String(cString: strerror(errno)))") }
            got.update(bufferPointer: UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
            total += n
        }
        return total == size && Array(got.finalize()) == Array(expected.finalize())
    }
}

/// Deterministic test bytes: a 1 MiB random block, rotated by the seed and the offset.
enum Pattern {
    static let block: [UInt8] = {
        var g = SystemRandomNumberGenerator()
        return (0..<(1 << 20)).map { _ in UInt8.random(in: 0...255, using: &g) }
    }()

    static func stream(size: Int, seed: UInt64, _ body: (UnsafeRawBufferPointer) throws -> Void) rethrows {
        var offset = 0
        var index = 0
        try block.withUnsafeBytes { b in
            while offset < size {
                let start = Int((seed &* 7919 &+ UInt64(index) &* 104_729) % UInt64(b.count / 2))
                let n = min(size - offset, b.count - start, 256 << 10)
                try body(UnsafeRawBufferPointer(rebasing: b[start..<(start + n)]))
                offset += n
                index += 1
            }
        }
    }
}

/// A test case on a `TunnelRig` (made per test), with a recording delegate that knows its
/// sshds' host keys and a tunnel run on a background thread.
class TunnelRigTestCase: XCTestCase {
    var rigLabel: String { "rig" }
    private(set) var rig: TunnelRig!
    var dir: String { rig.dir }
    var keyPath: String { rig.keyPath }
    var login: TestSSHD { rig.login }
    var node: TestSSHD { rig.node }
    var target: TargetServer { rig.target }

    override func setUpWithError() throws { rig = try TunnelRig(label: rigLabel) }

    override func tearDown() { rig?.stop() }

    func delegate() -> RecordingDelegate {
        RecordingDelegate(expected: ["login host": login.hostKeyLine, "node": node.hostKeyLine])
    }

    /// Starts a tunnel and runs it on a background thread; returns it and a stopper that waits.
    func startTunnel(_ config: TunnelConfiguration, delegate: RecordingDelegate) throws -> (Tunnel, () -> Void) {
        let tunnel = try Tunnel(configuration: config, delegate: delegate)
        try tunnel.start()
        let finished = DispatchSemaphore(value: 0)
        Thread { tunnel.run(); finished.signal() }.start()
        return (tunnel, {
            tunnel.stop()
            XCTAssertEqual(finished.wait(timeout: .now() + 10), .success, "run() did not return after stop()")
        })
    }
}

/// What the loopback tunnel tests stand on: a key for the test user, two throwaway sshds
/// ("login" and "node") that take it, and a target server behind the node.
struct TunnelRig {
    let dir: String
    let keyPath: String
    let login: TestSSHD
    let node: TestSSHD
    let target: TargetServer

    init(label: String) throws {
        try IT.require(UserIdentity.lookup(name: IT.testUser) != nil, "test user \(IT.testUser)")
        dir = try IT.scratchDir(label)
        keyPath = "\(dir)/id_ed25519"
        let keygen = try IT.runner.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "\(label)-test", "-f", keyPath])
        XCTAssertTrue(keygen.succeeded, keygen.stderrText)
        let pub = try String(contentsOfFile: keyPath + ".pub", encoding: .utf8)
        login = try TestSSHD(user: IT.testUser, authorizedKeys: pub)
        node = try TestSSHD(user: IT.testUser, authorizedKeys: pub)
        target = try TargetServer()
    }

    func stop() {
        target.stop()
        login.stop()
        node.stop()
        try? FileManager.default.removeItem(atPath: dir)
    }
}

/// The target behind the node: "E" echo, "S" sink (replies SHA-256), "G" source (size, seed),
/// "C" closes after N bytes, "R" sends N bytes then resets, "N" never answers.
final class TargetServer: @unchecked Sendable {
    let fd: Int32
    let port: UInt16
    private let state = NSLock()
    private var _stopped = false
    private var stopped: Bool {
        get { state.withLock { _stopped } }
        set { state.withLock { _stopped = newValue } }
    }

    init() throws {
        fd = try SocketIO.listen(address: "127.0.0.1", port: 0)
        port = SocketIO.localPort(of: fd)
        let flags = fcntl(fd, F_GETFL)
        _ = fcntl(fd, F_SETFL, flags & ~O_NONBLOCK)
        Thread { [self] in self.acceptLoop() }.start()
    }

    func stop() {
        stopped = true
        shutdown(fd, Int32(SHUT_RDWR))
        close(fd)
    }

    private func acceptLoop() {
        while !stopped {
            let c = accept(fd, nil, nil)
            if c < 0 { if stopped { return }; continue }
            var one: Int32 = 1
            setsockopt(c, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
            Thread { Self.serve(c) }.start()
        }
    }

    private static func serve(_ c: Int32) {
        defer { close(c) }
        var command: UInt8 = 0
        guard recv(c, &command, 1, Int32(MSG_WAITALL)) == 1 else { return }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 256 << 10, alignment: 16)
        defer { buffer.deallocate() }
        switch command {
        case UInt8(ascii: "E"):
            while true {
                let n = recv(c, buffer.baseAddress, buffer.count, 0)
                if n <= 0 { return }
                guard (try? TunnelEngineTests.sendAll(c, buffer.baseAddress!, n)) != nil else { return }
            }
        case UInt8(ascii: "S"):
            var hasher = SHA256()
            while true {
                let n = recv(c, buffer.baseAddress, buffer.count, 0)
                if n <= 0 { break }
                hasher.update(bufferPointer: UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
            }
            try? TunnelEngineTests.sendAll(c, Array(hasher.finalize()))
        case UInt8(ascii: "G"):
            var header = [UInt8](repeating: 0, count: 16)
            guard recv(c, &header, 16, Int32(MSG_WAITALL)) == 16 else { return }
            let size = header[0..<8].reduce(0) { $0 << 8 | Int($1) }
            let seed = header[8..<16].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            try? Pattern.stream(size: size, seed: seed) { try TunnelEngineTests.sendAll(c, $0.baseAddress!, $0.count) }
        case UInt8(ascii: "C"):
            // Closes after reading N bytes (the far end gives up mid-upload).
            guard let limit = readCount(c) else { return }
            var total = 0
            while total < limit {
                let n = recv(c, buffer.baseAddress, min(buffer.count, limit - total), 0)
                if n <= 0 { return }
                total += n
            }
        case UInt8(ascii: "R"):
            // Sends N bytes, then resets the connection (SO_LINGER 0).
            guard let count = readCount(c) else { return }
            try? Pattern.stream(size: count, seed: 1) { try TunnelEngineTests.sendAll(c, $0.baseAddress!, $0.count) }
            TunnelEngineTests.resetOnClose(c)
        case UInt8(ascii: "N"):
            // Never answers: takes what comes until the client closes.
            while recv(c, buffer.baseAddress, buffer.count, 0) > 0 {}
        default:
            return
        }
    }

    /// A big-endian u32 after the command byte.
    private static func readCount(_ c: Int32) -> Int? {
        var header = [UInt8](repeating: 0, count: 4)
        guard recv(c, &header, 4, Int32(MSG_WAITALL)) == 4 else { return nil }
        return header.reduce(0) { $0 << 8 | Int($1) }
    }
}

/// Records events; checks host keys against each sshd's own; can refuse one hop's key.
final class RecordingDelegate: TunnelDelegate, @unchecked Sendable {
    private let lock = NSCondition()
    private var _events: [TunnelEvent] = []
    private var _verified: [String] = []
    let expected: [String: String]
    var refuse: String?

    init(expected: [String: String]) { self.expected = expected }

    var events: [TunnelEvent] { lock.withLock { _events } }
    var verified: [String] { lock.withLock { _verified } }

    func verifyHostKey(hop: TunnelHop, role: TunnelHopRole, key: HostKey) throws {
        lock.withLock { _verified.append(hop.label) }
        if refuse == hop.label { throw DbgboxError("refused by test") }
        let parts = expected[hop.label]?.split(separator: " ") ?? []
        guard parts.count >= 2, key.typeName == String(parts[0]), key.blob.base64EncodedString() == String(parts[1]) else {
            throw DbgboxError("unexpected host key \(key.typeName)")
        }
    }

    func tunnelEvent(_ event: TunnelEvent) {
        lock.withLock { _events.append(event); lock.broadcast() }
    }

    func waitFor(timeout: Double, _ condition: ([TunnelEvent]) -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        lock.lock()
        defer { lock.unlock() }
        while !condition(_events) {
            if !lock.wait(until: deadline) { return condition(_events) }
        }
        return true
    }
}

final class Results: @unchecked Sendable {
    private let lock = NSLock()
    private var ok: [Bool]
    private var times: [Double]
    init(count: Int) { ok = Array(repeating: false, count: count); times = Array(repeating: 0, count: count) }
    func setTime(_ i: Int, _ value: Double) { lock.withLock { times[i] = value } }
    func time(_ i: Int) -> Double { lock.withLock { times[i] } }
    func set(_ i: Int, _ value: Bool) { lock.withLock { ok[i] = value } }
    var failures: [Int] { lock.withLock { ok.indices.filter { !ok[$0] } } }
}

extension Thread {
    func start(with group: DispatchGroup) {
        group.enter()
        start()
    }
}
