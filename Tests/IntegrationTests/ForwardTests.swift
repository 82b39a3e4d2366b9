import Foundation
import XCTest
@testable import DbgboxKit

/// Forwarded ports (issue 15) on the netns testbed, through a real container made by `up`:
/// `--forward` to a server bound to 127.0.0.1 in the container, 32 connections at once, a reconnect
/// of the tunnel under it, `--reverse`, `dbgbox forward` on the running session, `--remove`, `down`,
/// and the bad inputs.
final class ForwardTests: XCTestCase {
    nonisolated(unsafe) static var containers: [String] = []
    nonisolated(unsafe) static var homes: [String] = []
    static let pythonImage = IT.ClassImage(
        label: "forward-py",
        append: "RUN apt-get update && apt-get install -y --no-install-recommends python3 && rm -rf /var/lib/apt/lists/*\n")

    override class func tearDown() {
        for name in containers { _ = try? IT.runner.run(["docker", "rm", "-f", name]) }
        pythonImage.remove()
        for home in homes { try? FileManager.default.removeItem(atPath: home) }
        containers = []
        homes = []
        Testbed.downIfStartedHere()
        super.tearDown()
    }

    func run(_ bed: Testbed, home: String, _ args: [String]) throws -> ProcessResult {
        try bed.inLaptop([try IT.requireBinary()] + args, home: home, extraEnv: ["XDG_STATE_HOME": "\(home)/state"])
    }

    func sh(_ bed: Testbed, home: String, _ script: String) throws -> ProcessResult {
        try bed.inLaptop(["bash", "-c", script], home: home)
    }

    /// Whether something listens on 127.0.0.1:port in the laptop namespace.
    func listening(_ bed: Testbed, _ port: Int) throws -> Bool {
        let r = try bed.inLaptop(["ss", "-Htln", "sport = :\(port)"], asUser: false)
        return !r.stdoutText.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty
    }

    func freePort(_ bed: Testbed) throws -> Int {
        var port = Int.random(in: 20000...29000)
        while try listening(bed, port) { port = Int.random(in: 20000...29000) }
        return port
    }

    func testForwardReverseReconnectRemoveDownAndBadInput() throws {
        _ = try IT.requireBinary()
        try IT.requireDocker()
        let bed = try Testbed.up()
        let home = try IT.scratchDir("forward")
        Self.homes.append(home)
        let image = try Self.pythonImage.name(home: home)
        let reverseLocal = try freePort(bed)
        let up = try run(bed, home: home, ["up", "--gpu", "none", "--port", "auto", "--ttl", "1h", "--image", image,
                                           "--key", bed.key + ".pub", "--forward", "8000:auto", "--reverse", "\(reverseLocal):9000",
                                           "-F", bed.sshConfig, "--login", Testbed.loginAlias, "--node", Testbed.nodeAlias,
                                           "--known-hosts", bed.knownHosts])
        XCTAssertEqual(up.exitCode, 0, up.stderrText)
        let rows = try XCTUnwrap(try JSONSerialization.jsonObject(with: try run(bed, home: home, ["status", "--json"]).stdout) as? [[String: Any]])
        let row = try XCTUnwrap(rows.first)
        let name = try XCTUnwrap(row["name"] as? String)
        Self.containers.append(name)
        let forwards = try XCTUnwrap(row["forwards"] as? [[String: Any]])
        XCTAssertEqual(forwards.count, 2, "\(forwards)")
        let local = try XCTUnwrap(forwards.first { $0["direction"] as? String == "forward" }?["local"] as? Int)
        XCTAssertNotEqual(local, 0)
        XCTAssertTrue(up.stdoutText.contains("127.0.0.1:\(local) → container 8000"), up.stdoutText)
        XCTAssertTrue(try run(bed, home: home, ["status"]).stdoutText.contains("\(name) forwards: 127.0.0.1:\(local) → container 8000"))

        // A server bound to 127.0.0.1 in the container, serving 4 MB of random bytes.
        let ssh = ["ssh", "-F", "\(home)/.ssh/config", "-o", "BatchMode=yes", "dbgbox-\(name)"]
        let made = try bed.inLaptop(ssh + ["cd /tmp && head -c 4000000 /dev/urandom > big.bin && sha256sum big.bin"], home: home)
        XCTAssertEqual(made.exitCode, 0, made.stderrText)
        let sum = String(made.stdoutText.prefix(64))
        // Detached from the ssh session (which goes down with the login connection below).
        let server = try bed.inLaptop(ssh + ["cd /tmp && (setsid nohup python3 -m http.server --bind 127.0.0.1 8000 >/dev/null 2>&1 &)"],
                                      home: home)
        XCTAssertEqual(server.exitCode, 0, server.stderrText)
        let fetch = "curl -sf --max-time 20 http://127.0.0.1:\(local)/big.bin | sha256sum | cut -c1-64"
        func fetched(within seconds: Double) throws -> String {
            let deadline = Date().addingTimeInterval(seconds)
            var last = ""
            while Date() < deadline {
                last = try sh(bed, home: home, fetch).stdoutText.trimmingCharacters(in: .whitespacesAndNewlines)
                if last == sum { return last }
                Thread.sleep(forTimeInterval: 0.3)
            }
            return last
        }
        XCTAssertEqual(try fetched(within: 20), sum, "a download through the forward arrives whole")

        // 32 connections at once, each checksummed.
        let many = try sh(bed, home: home, "for i in $(seq 32); do (\(fetch)) & done; wait")
        let sums = many.stdoutText.split(separator: "\n").map(String.init)
        XCTAssertEqual(sums.count, 32, many.stderrText)
        XCTAssertTrue(sums.allSatisfy { $0 == sum }, "\(Set(sums))")

        // --reverse: a client in the container reaches a server on the laptop.
        let served = "\(home)/served"
        _ = try IT.runner.run(["install", "-d", "-m", "755", "-o", String(IT.user.uid), served])
        try "hello from the laptop\n".write(toFile: "\(served)/hello.txt", atomically: false, encoding: .utf8)
        let laptopServer = try bed.startInLaptop(["python3", "-m", "http.server", "--bind", "127.0.0.1", "--directory", served,
                                                  String(reverseLocal)], home: home, stdout: .null, stderr: .null)
        defer { laptopServer.signal(SIGTERM); _ = laptopServer.wait() }
        var reached = ""
        for _ in 0..<30 {
            reached = try bed.inLaptop(ssh + ["python3 -c 'import urllib.request;print(urllib.request.urlopen(\"http://127.0.0.1:9000/hello.txt\").read().decode(), end=\"\")'"],
                                       home: home).stdoutText
            if reached == "hello from the laptop\n" { break }
            Thread.sleep(forTimeInterval: 0.3)
        }
        XCTAssertEqual(reached, "hello from the laptop\n")

        // The login connection is killed: the tunnel reconnects and the forward works again.
        try bed.killLoginSessions()
        XCTAssertEqual(try fetched(within: 30), sum, "the forward works after the tunnel reconnected: "
                       + ((try? String(contentsOfFile: "\(home)/state/dbgbox/tunnels/\(name).log", encoding: .utf8)) ?? ""))

        // `forward NAME PORT` on the running session, then --remove: no listener left.
        let extra = try freePort(bed)
        let add = try run(bed, home: home, ["forward", name, "8000:\(extra)", "--reverse", "\(reverseLocal):9001"])
        XCTAssertNotEqual(add.exitCode, 0, "8000 is forwarded already")
        XCTAssertTrue(add.stderrText.contains("clashes with session \(name)'s 127.0.0.1:\(local) → container 8000"), add.stderrText)
        XCTAssertTrue(add.stderrText.contains("(dbgbox forward \(name) --remove 8000)"), add.stderrText)
        XCTAssertFalse(try listening(bed, extra), "nothing half-made")
        let added = try run(bed, home: home, ["forward", name, "8001:\(extra)"])
        XCTAssertEqual(added.exitCode, 0, added.stderrText)
        XCTAssertTrue(try listening(bed, extra))
        let removed = try run(bed, home: home, ["forward", name, "--remove", "8001"])
        XCTAssertEqual(removed.exitCode, 0, removed.stderrText)
        Thread.sleep(forTimeInterval: 0.3)
        XCTAssertFalse(try listening(bed, extra), "--remove leaves no listener")

        // Bad input, one line each, non-zero.
        let taken = try run(bed, home: home, ["forward", name, "8002:\(reverseLocal)"])
        XCTAssertNotEqual(taken.exitCode, 0)
        XCTAssertTrue(taken.stderrText.contains("cannot listen on 127.0.0.1:\(reverseLocal)"), taken.stderrText)
        let range = try run(bed, home: home, ["forward", name, "70000"])
        XCTAssertNotEqual(range.exitCode, 0)
        XCTAssertTrue(range.stderrText.contains("out of range"), range.stderrText)
        for r in [taken, range] { XCTAssertEqual(r.stderrText.split(separator: "\n").count, 1, r.stderrText) }

        // down: no listener left. Then the record put back (its tunnel dead): forward says to up again.
        let record = try Data(contentsOf: URL(fileURLWithPath: "\(home)/state/dbgbox/sessions/\(name).json"))
        let down = try run(bed, home: home, ["down", name])
        XCTAssertEqual(down.exitCode, 0, down.stderrText)
        XCTAssertFalse(try listening(bed, local), "down leaves no listener")
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(home)/state/dbgbox/tunnels/\(name).sock"))
        try record.write(to: URL(fileURLWithPath: "\(home)/state/dbgbox/sessions/\(name).json"))
        let dead = try run(bed, home: home, ["forward", name, "8003"])
        XCTAssertNotEqual(dead.exitCode, 0)
        XCTAssertTrue(dead.stderrText.contains("has no running tunnel") && dead.stderrText.contains("dbgbox up"), dead.stderrText)
        try? FileManager.default.removeItem(atPath: "\(home)/state/dbgbox/sessions/\(name).json")
    }
}
