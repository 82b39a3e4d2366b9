import XCTest
@testable import DbgboxKit
import SSH

/// The tunnel engine's pure pieces: the direct-tcpip message, the bounded byte queue, the
/// reconnect schedule, exec-route quoting and error lines.
final class TunnelUnitTests: XCTestCase {
    func testDirectTCPIPMessageEncoding() {
        let m = DirectTCPIP.openMessage(host: "127.0.0.1", port: 2222, originatorHost: "::1", originatorPort: 65535)
        XCTAssertEqual(m, [0, 0, 0, 9] + Array("127.0.0.1".utf8) + [0, 0, 0x08, 0xae]
                          + [0, 0, 0, 3] + Array("::1".utf8) + [0, 0, 0xff, 0xff])
        XCTAssertEqual(DirectTCPIP.openMessage(host: "", port: 0, originatorHost: "", originatorPort: 0), Array(repeating: 0, count: 16))
    }

    func testByteQueueKeepsOrderAcrossGrowthAndCompaction() {
        let q = ByteQueue(highWater: 1000, initialCapacity: 8)
        var expected: [UInt8] = []
        var got: [UInt8] = []
        var next: UInt8 = 0
        var buffer = [UInt8](repeating: 0, count: 64)
        for round in 0..<200 {
            let chunk = (0..<(round % 37 + 1)).map { _ -> UInt8 in next &+= 1; return next }
            expected += chunk
            _ = q.append(chunk)
            let (n, _) = buffer.withUnsafeMutableBytes { q.take(into: $0.baseAddress!, max: round % 29 + 1) }
            got += buffer[0..<n]
        }
        while true {
            let (n, _) = buffer.withUnsafeMutableBytes { q.take(into: $0.baseAddress!, max: 64) }
            if n == 0 { break }
            got += buffer[0..<n]
        }
        XCTAssertEqual(got, expected)
    }

    func testByteQueueSignalsEmptyAndHighWaterCrossings() {
        let q = ByteQueue(highWater: 100)
        XCTAssertTrue(q.append([UInt8](repeating: 1, count: 60)), "empty → non-empty wakes the consumer")
        XCTAssertFalse(q.append([UInt8](repeating: 1, count: 60)), "already non-empty: no wake")
        XCTAssertTrue(q.isAboveHighWater, "producers must hold back at 120 ≥ 100")
        var sink = [UInt8](repeating: 0, count: 200)
        let first = sink.withUnsafeMutableBytes { q.take(into: $0.baseAddress!, max: 10) }
        XCTAssertEqual(first.count, 10)
        XCTAssertFalse(first.resumed, "110 is still above the mark")
        let second = sink.withUnsafeMutableBytes { q.take(into: $0.baseAddress!, max: 20) }
        XCTAssertTrue(second.resumed, "110 → 90 crosses the mark: wake the producer")
        XCTAssertFalse(q.isAboveHighWater)
        _ = sink.withUnsafeMutableBytes { q.take(into: $0.baseAddress!, max: 200) }
        XCTAssertTrue(q.isEmpty)
        q.close()
        XCTAssertTrue(q.isClosedAndEmpty)
    }

    func testByteQueueStaysBoundedWhenProducersRespectTheMark() {
        // A producer that appends 32 KiB steps only while below the mark, a slower consumer.
        let q = ByteQueue(highWater: 4 << 20)
        let step = [UInt8](repeating: 7, count: 32 << 10)
        var sink = [UInt8](repeating: 0, count: 16 << 10)
        var peak = 0
        for _ in 0..<2000 {
            if !q.isAboveHighWater { _ = q.append(step) }
            _ = sink.withUnsafeMutableBytes { q.take(into: $0.baseAddress!, max: $0.count) }
            peak = max(peak, q.count)
        }
        XCTAssertLessThanOrEqual(peak, (4 << 20) + step.count)
        XCTAssertLessThanOrEqual(q.allocatedCapacity, 8 << 20)
    }

    func testBackoffSchedule() {
        var b = Backoff()
        XCTAssertEqual((0..<7).map { _ in b.next() }, [0.25, 0.5, 1, 2, 2, 2, 2])
        b.reset()
        XCTAssertEqual(b.next(), 0.25)
    }

    func testExecRouteQuoting() {
        XCTAssertEqual(shellQuote(["ssh", "-o", "UserKnownHostsFile=/tmp/a b", "-W", "node1:22", "it's"]),
                       "ssh -o 'UserKnownHostsFile=/tmp/a b' -W node1:22 'it'\\''s'")
        XCTAssertEqual(shellQuote(["", "$HOME", "a;b"]), "'' '$HOME' 'a;b'")
        let node = TunnelHop(host: "node7", port: 2200, user: "bob", credentials: [], label: "node")
        XCTAssertEqual(NodeRoute.sshW(to: node), .exec(command: ["ssh", "-o", "BatchMode=yes", "-W", "node7:2200", "-p", "2200", "bob@node7"]))
    }

    func testErrorLineNamesTheHop() {
        let hop = TunnelHop(host: "198.18.0.2", user: "bob", credentials: [], label: "login host")
        let e = TunnelError(.authentication, .login, hop, "authentication failed for user bob with ~/.ssh/id_dbgbox")
        XCTAssertEqual(e.description, "login host 198.18.0.2:22: authentication failed for user bob with ~/.ssh/id_dbgbox")
        XCTAssertEqual(TunnelHop(host: "::1", port: 22, user: "u", credentials: [], label: "node").endpoint, "[::1]:22")
        XCTAssertFalse(TunnelError(kind: .localPort, role: nil, hopName: nil, detail: "a\nb").description.contains("\n"))
    }
}
