import Foundation
import XCTest
@testable import DbgboxKit
@testable import SSH

/// The forwarder's per-connection buffers and the tunnel process's memory hand-back.
final class TunnelBufferTests: XCTestCase {
    func testChunkBufferKeepsOnlyWhatWasNotSentAndFreesItWhenSent() {
        let scratch = UnsafeMutableRawPointer.allocate(byteCount: 64, alignment: 16)
        defer { scratch.deallocate() }
        var buffer = ChunkBuffer()
        XCTAssertTrue(buffer.isEmpty)

        // A read of 10 bytes into the scratch; 4 go out at once.
        let space = buffer.space(scratch)
        XCTAssertEqual(space, scratch)
        for i in 0..<10 { space.storeBytes(of: UInt8(i), toByteOffset: i, as: UInt8.self) }
        buffer.filled(10)
        buffer.consumed(4)
        XCTAssertEqual(buffer.front, scratch + 4, "before settling, the bytes are still the scratch's")

        // Settled: the 6 left move to storage of their own; the scratch may be reused.
        buffer.settle()
        XCTAssertNotEqual(buffer.front, scratch + 4)
        XCTAssertEqual(buffer.pending, 6)
        memset(scratch, 0xff, 64)
        XCTAssertEqual((0..<6).map { buffer.front.load(fromByteOffset: $0, as: UInt8.self) }, [4, 5, 6, 7, 8, 9])

        // Settling again copies nothing; sending the rest empties (and frees) it.
        let front = buffer.front
        buffer.settle()
        XCTAssertEqual(buffer.front, front)
        buffer.consumed(2)
        buffer.consumed(4)
        XCTAssertTrue(buffer.isEmpty)
        buffer.settle()
        XCTAssertTrue(buffer.isEmpty)
    }

    func testChunkBufferSentWholeNeedsNoStorage() {
        let scratch = UnsafeMutableRawPointer.allocate(byteCount: 8, alignment: 16)
        defer { scratch.deallocate() }
        var buffer = ChunkBuffer()
        _ = buffer.space(scratch)
        buffer.filled(8)
        buffer.consumed(8)
        buffer.settle()
        XCTAssertTrue(buffer.isEmpty)
        buffer.clear()
    }

    /// Unmapping the read-only file pages startup touched lowers this process's file RSS, and
    /// everything still runs (they come back from the page cache when touched).
    func testReleaseStartupPagesLowersFileRSSAndCodeStillRuns() throws {
        func rssFile() throws -> Int {
            let status = try String(contentsOfFile: "/proc/self/status", encoding: .utf8)
            let line = try XCTUnwrap(status.split(separator: "\n").first { $0.hasPrefix("RssFile:") })
            return try XCTUnwrap(Int(line.split(separator: " ", omittingEmptySubsequences: true)[1]))
        }
        let before = try rssFile()
        MemoryTuning.releaseStartupPages()
        let after = try rssFile()
        XCTAssertLessThan(after, before, "RssFile \(before) kB before, \(after) kB after")
        // Code and constants fault back in: Foundation, the stdlib and libssh2's wrapper all work.
        let text = (0..<1000).map { String($0) }.joined(separator: ",")
        XCTAssertEqual(text.split(separator: ",").count, 1000)
        XCTAssertEqual(DirectTCPIP.openMessage(host: "h", port: 1, originatorHost: "o", originatorPort: 2).count, 18)
        XCTAssertEqual(CipherBatch.selfTest(rounds: 100), 0)
    }
    /// The login socket is read ahead: one recv takes what the socket holds, and libssh2's 16 KiB
    /// requests are served from it. A bound (`withReadAllowance`) still stops libssh2 midway, and only an
    /// empty read-ahead asks the socket again.
    func testTCPReadAheadServesLibSSH2FromOneRecv() throws {
        var fds: [Int32] = [0, 0]
        XCTAssertEqual(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &fds), 0)
        defer { close(fds[0]); close(fds[1]) }
        let transport = SessionTransport(tcpSocket: fds[1], outboxHighWater: 512 << 10, readAheadSize: 256 << 10)
        let payload = (0..<40_000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        XCTAssertEqual(payload.withUnsafeBytes { send(fds[0], $0.baseAddress, $0.count, 0) }, 40_000)
        var abstract: UnsafeMutableRawPointer? = Unmanaged.passUnretained(transport).toOpaque()
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: 16384, alignment: 16)
        defer { buffer.deallocate() }
        var got: [UInt8] = []
        func recvOnce() -> Int {
            let n = SessionTransport.recvCallback(fds[1], buffer, 16384, 0, &abstract)
            if n > 0 { got += UnsafeRawBufferPointer(start: buffer, count: n) }
            return n
        }
        transport.withReadAllowance(20_000) {
            XCTAssertEqual(recvOnce(), 16384)
            XCTAssertTrue(transport.hasReadAhead, "one recv took all 40000 bytes")
            XCTAssertEqual(recvOnce(), 16384)
            XCTAssertEqual(recvOnce(), -Int(EAGAIN), "the allowance stops libssh2")
        }
        XCTAssertTrue(transport.allowanceSpent)
        XCTAssertFalse(transport.sawWouldBlock)
        // The bound ended with the call it was set for: the next call reads on.
        XCTAssertTrue(transport.readsUnbounded)
        XCTAssertEqual(recvOnce(), 40_000 - 32768)
        XCTAssertFalse(transport.hasReadAhead)
        XCTAssertEqual(recvOnce(), -Int(EAGAIN))
        XCTAssertTrue(transport.sawWouldBlock, "an empty read-ahead asks the socket, which is empty")
        XCTAssertEqual(transport.received, 40_000)
        XCTAssertEqual(got, payload)
    }

    // A read that drains the login socket acknowledges at once (TCP_QUICKACK): the login host's
    // sshd writes without TCP_NODELAY, and the small last packet of an answer waits for our ACK.
    func testDrainingReadOfATCPSocketAcknowledgesAtOnce() throws {
        let listener = try SocketIO.listen(address: "127.0.0.1", port: 0)
        defer { close(listener) }
        let sender = try SocketIO.connectTCP(host: "127.0.0.1", port: SocketIO.localPort(of: listener), timeout: 5)
        defer { close(sender) }
        var accepted: (fd: Int32, peer: String)?
        for _ in 0..<100 where accepted == nil {
            accepted = SocketIO.accept(listener)
            if accepted == nil { usleep(10_000) }
        }
        let receiver = try XCTUnwrap(accepted).fd
        defer { close(receiver) }
        func quickAck() -> Int32 {
            var value: Int32 = -1
            var length = socklen_t(MemoryLayout<Int32>.size)
            getsockopt(receiver, Int32(IPPROTO_TCP), TCP_QUICKACK, &value, &length)
            return value
        }
        var off: Int32 = 0
        setsockopt(receiver, Int32(IPPROTO_TCP), TCP_QUICKACK, &off, socklen_t(MemoryLayout<Int32>.size))
        XCTAssertEqual(quickAck(), 0, "delayed ACKs (ping-pong mode) before the read")

        let transport = SessionTransport(tcpSocket: receiver, outboxHighWater: 512 << 10, readAheadSize: 256 << 10)
        let payload = [UInt8](repeating: 5, count: 3000)
        XCTAssertEqual(payload.withUnsafeBytes { send(sender, $0.baseAddress, $0.count, 0) }, 3000)
        var abstract: UnsafeMutableRawPointer? = Unmanaged.passUnretained(transport).toOpaque()
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: 16384, alignment: 16)
        defer { buffer.deallocate() }
        var n = 0
        for _ in 0..<100 {
            n = SessionTransport.recvCallback(receiver, buffer, 16384, 0, &abstract)
            if n > 0 { break }
            usleep(10_000)
        }
        XCTAssertEqual(n, 3000)
        XCTAssertEqual(quickAck(), 1, "the read drained the socket: its ACK goes at once")
    }

    // With `waitAfterShortRead` (the login hop's), a recv that emptied the socket is not followed
    // by another (it would say EAGAIN): the transport waits for the owner's poll to say readable.
    func testShortReadWaitsForPollBeforeAskingTheSocketAgain() throws {
        var fds: [Int32] = [0, 0]
        XCTAssertEqual(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &fds), 0)
        defer { close(fds[0]); close(fds[1]) }
        XCTAssertEqual(fcntl(fds[1], F_SETFL, fcntl(fds[1], F_GETFL) | O_NONBLOCK), 0)
        let transport = SessionTransport(tcpSocket: fds[1], outboxHighWater: 512 << 10, readAheadSize: 256 << 10)
        transport.waitAfterShortRead = true
        var abstract: UnsafeMutableRawPointer? = Unmanaged.passUnretained(transport).toOpaque()
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: 16384, alignment: 16)
        defer { buffer.deallocate() }
        func recvOnce() -> Int { SessionTransport.recvCallback(fds[1], buffer, 16384, 0, &abstract) }
        func peer(_ count: Int) -> Int { [UInt8](repeating: 1, count: count).withUnsafeBytes { send(fds[0], $0.baseAddress, count, 0) } }
        XCTAssertEqual(peer(100), 100)
        XCTAssertEqual(recvOnce(), 100, "a short recv: the socket is empty now")
        XCTAssertEqual(peer(50), 50)
        XCTAssertEqual(recvOnce(), -Int(EAGAIN), "no second recv before the owner's poll")
        XCTAssertTrue(transport.sawWouldBlock, "the owner treats the socket as drained")
        transport.socketReadable()
        XCTAssertEqual(recvOnce(), 50, "after poll said readable, the socket is asked again")
        XCTAssertEqual(transport.received, 150)
    }
}
