import Foundation
import XCTest
@testable import DbgboxKit

/// The key proof for cleanup: on many generated known_hosts files, `KnownHostsFile.remove`
/// leaves exactly the bytes (and .old backup) that the real `ssh-keygen -R HOST -f FILE` leaves.
final class KnownHostsDifferentialTests: XCTestCase {
    static let targets = ["[127.0.0.1]:2201", "[localhost]:2201", "127.0.0.1"]
    var dir = ""
    let fs = LocalFileSystem()

    override func setUpWithError() throws {
        try IT.require(LocalProcessRunner.resolve("ssh-keygen") != nil, "ssh-keygen (openssh-client)")
        dir = NSTemporaryDirectory() + "dbgbox-khdiff-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        if !dir.isEmpty { try? FileManager.default.removeItem(atPath: dir) }
    }

    // MARK: - Building variants

    /// Two host keys (made once with `ssh-keygen -t ed25519` and `-t ecdsa`), fixed so that a seed
    /// replays the same bytes but for the salts of hashed names.
    func publicKeys() throws -> [String] {
        ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMPBYkGB1vsSi0SPG1zQjXT6Bry7KKJacBlE2fEHSNmU",
         "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBGu9sRZV2ugKZB/949BtfonveZMznamz9dQaFU+"
            + "VTM0IfI5HUuCvNfJns9XeJ49SlelrVkX7aJ3fpVYudo/rLK8="]
    }

    /// `ssh-keygen -H` output for each name, two salts each.
    func hashedLines(_ names: [String], key: String) throws -> [String] {
        let path = "\(dir)/tohash"
        let plain = (names + names).map { "\($0) \(key)\n" }.joined()
        try fs.writeAtomically(Data(plain.utf8), to: path, mode: 0o600)
        let r = try IT.runner.run(["ssh-keygen", "-H", "-f", path])
        XCTAssertTrue(r.succeeded, r.stderrText)
        let lines = String(decoding: try fs.read(path), as: UTF8.self).split(separator: "\n").map(String.init)
        XCTAssertEqual(lines.count, names.count * 2)
        XCTAssertTrue(lines.allSatisfy { $0.hasPrefix("|1|") })
        return lines
    }

    /// Every kind of line a user's known_hosts holds that OpenSSH reads as valid.
    func validLinePool(port: Int = 2201) throws -> [String] {
        let keys = try publicKeys()
        let (k1, k2) = (keys[0], keys[1])
        let k1Tab = k1.replacingOccurrences(of: " ", with: "\t")
        let hosts = ["[127.0.0.1]:\(port)", "[localhost]:\(port)", "127.0.0.1", "localhost", "[127.0.0.1]:\(port + 1)",
                     "[localhost]:\(port * 10)", "[127.0.0.1]:\(port / 10)", "127.0.0.2", "gpu-node.example.org", "[LOCALHOST]:\(port)",
                     "[127.0.0.1]:22"]
        var pool: [String] = []
        for host in hosts {
            pool += ["\(host) \(k1)", "\(host) \(k2) with a comment", "  \(host)\t\(k1Tab)", "\(host) \(k1)\r",
                     "@cert-authority \(host) \(k2)", "@revoked \(host) \(k1)", "# \(host) \(k1)"]
        }
        pool += ["[127.0.0.1]:\(port),[localhost]:\(port) \(k1)", "gpu,[127.0.0.1]:\(port) \(k2)", "127.0.0.1,localhost \(k1)",
                 "a,b,[localhost]:\(port),c \(k1)", "[127.0.0.1]:\(port + 1),[localhost]:\(port + 1) \(k2)",
                 "[127.0.0.1]:\(port / 100)* \(k1)", "[127.0.0.1]:\(port / 10)? \(k1)", "* \(k2)", "*.example.org \(k1)",
                 "*,![127.0.0.1]:\(port) \(k1)", "![localhost]:\(port),* \(k1)", "[localhost]:\(port),!* \(k2)",
                 "!127.0.0.1 \(k1)", "127.0.0.? \(k1)", "[127.0.0.1]:\(port),,x \(k1)", "[127.0.0.1]:\(port), \(k1)",
                 "@cert-authority * \(k1)", "@revoked [127.0.0.1]:\(port),[localhost]:\(port) \(k2)",
                 "[127.0.0.1]:\(port) ED25519 \(k1.split(separator: " ")[1])", "[localhost]:\(port) rsa AAAAB3NzaC1yc2E=",
                 "", "   ", "\t", "#", "# comment [127.0.0.1]:\(port)", "#\r", " \t# x"]
        pool += try hashedLines(["[127.0.0.1]:\(port)", "[localhost]:\(port)", "127.0.0.1", "localhost",
                                 "[127.0.0.1]:\(port + 1)", "gpu-node.example.org"], key: k1)
        return pool
    }

    /// Lines ssh-keygen calls invalid (and then refuses to rewrite the file).
    func invalidLinePool(key: String, port: Int = 2201) -> [String] {
        ["[127.0.0.1]:\(port)", "[localhost]:\(port) bogus-type AAAA", "[127.0.0.1]:\(port) ssh-ed25519",
         "[127.0.0.1]:\(port) ssh-ed25519   # gone", "@bogus [127.0.0.1]:\(port) \(key)", "@revoked",
         "|1|notbase64!|xyz= \(key)", "|2|abc|def \(key)", "[localhost]:\(port) 1024 35 12345",
         "@cert-authority @revoked [127.0.0.1]:\(port) \(key)",
         // A lone CR (a CRLF blank line) is a one-byte host field with no key.
         "\r", "\t\r"]
    }

    func variants(count: Int, pool: [String], seed: UInt64, mixIn extra: [String] = []) -> [Data] {
        var rng = SplitMix64(state: seed)
        var files: [Data] = []
        for index in 0..<count {
            let lineCount = 1 + rng.below(14)
            var lines = (0..<lineCount).map { _ in pool[rng.below(pool.count)] }
            if !extra.isEmpty {
                for _ in 0..<(1 + rng.below(3)) { lines.insert(extra[rng.below(extra.count)], at: rng.below(lines.count + 1)) }
            }
            var text = lines.joined(separator: "\n")
            if index % 3 != 0 { text += "\n" }  // a third lack the final newline
            files.append(Data(text.utf8))
        }
        return files
    }

    // MARK: - Running both

    struct Outcome: Equatable {
        var contents: Data
        var backup: Data?
        var mode: mode_t
    }

    func viaSSHKeygen(_ original: Data, hosts: [String], mode: mode_t = 0o600) throws -> Outcome {
        let path = "\(dir)/ref_known_hosts"
        try? fs.remove(path + ".old")
        try fs.writeAtomically(original, to: path, mode: mode)
        for host in hosts { _ = try IT.runner.run(["ssh-keygen", "-R", host, "-f", path]) }
        return Outcome(contents: try fs.read(path), backup: fs.exists(path + ".old") ? try fs.read(path + ".old") : nil,
                       mode: try fs.mode(of: path))
    }

    func viaDbgbox(_ original: Data, hosts: [String], mode: mode_t = 0o600) throws -> Outcome {
        let path = "\(dir)/our_known_hosts"
        try? fs.remove(path + ".old")
        try fs.writeAtomically(original, to: path, mode: mode)
        _ = try KnownHostsFile(path: path).remove(hosts: hosts)
        return Outcome(contents: try fs.read(path), backup: fs.exists(path + ".old") ? try fs.read(path + ".old") : nil,
                       mode: try fs.mode(of: path))
    }

    func show(_ data: Data) -> String { String(decoding: data, as: UTF8.self).debugDescription }

    // MARK: - Tests

    func testSingleHostRemovalMatchesSSHKeygen() throws {
        let files = variants(count: 120, pool: try validLinePool(), seed: 2201)
        var cases = 0, changed = 0
        for (index, original) in files.enumerated() {
            for host in Self.targets {
                let expected = try viaSSHKeygen(original, hosts: [host])
                let actual = try viaDbgbox(original, hosts: [host])
                XCTAssertEqual(actual, expected, "variant \(index), -R \(host), file \(show(original))")
                cases += 1
                if expected.backup != nil { changed += 1 }
            }
        }
        XCTAssertGreaterThan(changed, cases / 4, "the variants must exercise removal")
        XCTAssertLessThan(changed, cases, "the variants must exercise no-match too")
        print("known_hosts differential: \(cases) single-host cases, \(changed) with removals")
    }

    func testAllTargetsAtOnceMatchSuccessiveSSHKeygenRuns() throws {
        let files = variants(count: 60, pool: try validLinePool(), seed: 2202)
        for (index, original) in files.enumerated() {
            let expected = try viaSSHKeygen(original, hosts: Self.targets)
            let actual = try viaDbgbox(original, hosts: Self.targets)
            XCTAssertEqual(actual.contents, expected.contents, "variant \(index), file \(show(original))")
            XCTAssertEqual(actual.mode, expected.mode)
            // ssh-keygen's .old is the file before its last run; ours is the original.
            if expected.backup != nil { XCTAssertEqual(actual.backup, original) }
        }
    }

    func testModeIsMaskedLikeSSHKeygen() throws {
        let original = Data("[127.0.0.1]:2201 \(try publicKeys()[0])\nother \(try publicKeys()[0])\n".utf8)
        for mode: mode_t in [0o600, 0o644, 0o664, 0o640, 0o666, 0o400] {
            let expected = try viaSSHKeygen(original, hosts: ["[127.0.0.1]:2201"], mode: mode)
            let actual = try viaDbgbox(original, hosts: ["[127.0.0.1]:2201"], mode: mode)
            XCTAssertEqual(actual, expected, "mode \(String(mode, radix: 8))")
        }
    }

    /// ssh-keygen refuses a file with any invalid line; dbgbox keeps those lines verbatim and
    /// otherwise does what ssh-keygen does on the file without them.
    func testInvalidLinesAreKeptVerbatimAndTheRestMatches() throws {
        let pool = try validLinePool()
        let key = try publicKeys()[0]
        let invalid = invalidLinePool(key: key)
        let files = variants(count: 40, pool: pool, seed: 2203, mixIn: invalid)
        for (index, original) in files.enumerated() {
            let refusal = try viaSSHKeygen(original, hosts: ["[127.0.0.1]:2201"])
            XCTAssertEqual(refusal.contents, original, "ssh-keygen should refuse variant \(index)")
            // Byte-level lines: Swift's Character view would glue "\r\n" into one.
            let invalidBytes = Set(invalid.map { Array($0.utf8) })
            let lines = byteLines(original)
            let validOnly = Data(lines.filter { !invalidBytes.contains($0) }.joined(separator: [10]))
            let expected = try viaSSHKeygen(validOnly, hosts: ["[127.0.0.1]:2201"])
            let actual = try viaDbgbox(original, hosts: ["[127.0.0.1]:2201"])
            let actualLines = byteLines(actual.contents)
            XCTAssertEqual(actualLines.filter { invalidBytes.contains($0) }, lines.filter { invalidBytes.contains($0) }, "variant \(index)")
            let actualValid = Data(actualLines.filter { !invalidBytes.contains($0) }.joined(separator: [10]))
            XCTAssertEqual(actualValid, expected.contents, "variant \(index): \(show(original))")
        }
    }

    /// The reproducers of what the binary differential found (seeds 0x446074a95c509040 and
    /// 0xffce3d3db40fbb1c): a host field that ends the line's C string, where OpenSSH reads on
    /// past the NUL into the rest of the line or, on a last line without "\n", into what the line
    /// before left in getline's buffer; and successive runs, where the first rewrite cuts a line.
    func testHostFieldEndingTheLineMatchesSSHKeygen() throws {
        let key = try publicKeys()[0]
        let files = ["foo \(key)\n[127.0.0.1]:2201\0 \(key)\nbar \(key)\n", "[localhost]:2201 \(key)\n[127.0.0.1]:2201",
                     "[127.0.0.1]:2201 \(key)\n[localhost]:2201\0\t\(key)\n", "x \(key)\n[localhost]:2201\0 \(key)",
                     "[127.0.0.1]:2201 \(key)\n[127.0.0.1]:2201"]
        for text in files {
            let original = Data(text.utf8)
            let expected = try viaSSHKeygen(original, hosts: ["[127.0.0.1]:2201", "[localhost]:2201"])
            let actual = try viaDbgbox(original, hosts: ["[127.0.0.1]:2201", "[localhost]:2201"])
            XCTAssertEqual(actual.contents, expected.contents, show(original))
            XCTAssertNotEqual(actual.contents, original, show(original))
        }
    }

    func byteLines(_ data: Data) -> [[UInt8]] {
        [UInt8](data).split(separator: 10, omittingEmptySubsequences: false).map(Array.init)
    }

    func testRejectedInvalidLinesReallyAreInvalidForSSHKeygen() throws {
        let key = try publicKeys()[0]
        for line in try invalidLinePool(key: key) + moreInvalidLines(port: 2201) {
            let original = Data("[127.0.0.1]:2201 \(key)\n\(line)\n".utf8)
            let refusal = try viaSSHKeygen(original, hosts: ["[127.0.0.1]:2201"])
            XCTAssertEqual(refusal.contents, original, "ssh-keygen accepted \(line.debugDescription)")
            XCTAssertNil(refusal.backup)
        }
    }

    // MARK: - The installed binary on 1,000 generated files

    /// Lines the binary differential adds to the pools: NUL bytes, marker and pattern quirks.
    func moreValidLines(port: Int) throws -> [String] {
        let key = try publicKeys()[0]
        let keyTab = key.replacingOccurrences(of: " ", with: "\t")
        let host = "[127.0.0.1]:\(port)", other = "[localhost]:\(port)"
        let long = String(repeating: "a", count: 1100), limit = String(repeating: "b", count: 1022)
        let hashed = try hashedLines([host], key: key)[0]
        // The hashed name's salt with another name's hash: valid, and matches nothing.
        let salt = hashed.split(separator: "|", omittingEmptySubsequences: false)[2]
        // A host field that ends at a NUL: OpenSSH reads the key from the bytes after it.
        return ["\(host)\0 \(key)", "\(host)\0\t\(keyTab) # c",
                "\(host) \(key)\0 after a NUL", "\0\(host) \(key)", "# note\0\(host) \(key)", "\(other) \(key)\0",
                "@revoked\t\(host)\t\(keyTab)", "  @cert-authority \(host) \(key)", "\t\(other)\t\t\(key)  # trailing ",
                "\(host),\(long) \(key)", "\(long),\(other) \(key)", "\(host),\(limit) \(key)",
                "[127.0.0.1]:0\(port) \(key)", "|1|\(salt)|AAAAAAAAAAAAAAAAAAAAAAAAAAA= \(key)", "\(host),\(hashed.split(separator: " ")[0]) \(key)",
                "\(host) ssh-ed25519-cert-v01@openssh.com AAAAC3NzaC1lZDI1NTE5", "\(other) ecdsa-sha2-nistp256 AAAA",
                "\(host) \(key) \(key)"]
    }

    /// More lines ssh-keygen calls invalid (`testRejectedInvalidLinesReallyAreInvalidForSSHKeygen` checks them).
    func moreInvalidLines(port: Int) throws -> [String] {
        let key = try publicKeys()[0]
        let host = "[127.0.0.1]:\(port)", other = "[localhost]:\(port)"
        return ["@revoked\t\(host) \(key)", "@REVOKED \(host) \(key)", "\(host), \(other) \(key)",
                "\(host) SSH-ED25519 AAAAC3NzaC1lZDI1NTE5", "|1|AAAAAAAAAAAAAAAAAAAAAA==|AAAA \(key)", "   \r",
                "\(other) x AAAA", "\(host)\t"]
    }

    /// One generated known_hosts file: its lines (without their "\n") and which of them ssh-keygen
    /// calls invalid, the port to clean and the file's mode.
    struct GeneratedFile {
        var lines: [[UInt8]] = []
        var invalid: [Bool] = []
        var finalNewline = true
        var port = 2201
        var mode: mode_t = 0o600

        /// The file, or only its valid lines (what ssh-keygen is run on when the file has invalid ones).
        func bytes(validOnly: Bool = false) -> Data {
            let kept = zip(lines, invalid).filter { !validOnly || !$0.1 }.map(\.0)
            var data = Data(kept.joined(separator: [10]))
            if finalNewline && !kept.isEmpty { data.append(10) }
            return data
        }

        var hasInvalid: Bool { invalid.contains(true) }
        var hosts: [String] { ["[127.0.0.1]:\(port)", "[localhost]:\(port)"] }
    }

    private var pools: [Int: (valid: [String], invalid: [String])] = [:]

    func pool(port: Int) throws -> (valid: [String], invalid: [String]) {
        if let cached = pools[port] { return cached }
        let made = (try validLinePool(port: port) + moreValidLines(port: port),
                    invalidLinePool(key: try publicKeys()[0], port: port) + (try moreInvalidLines(port: port)))
        pools[port] = made
        return made
    }

    /// The file of one seed: 1-16 lines from the pools, a fifth with invalid lines mixed in, a
    /// sixth with CRLF line ends (a CRLF blank line is invalid), a third without a final newline.
    func generatedFile(seed: UInt64) throws -> GeneratedFile {
        var rng = SplitMix64(state: seed)
        var file = GeneratedFile()
        file.port = rng.pick([2201, 1024, 10022, 65535])
        file.mode = rng.pick([0o600, 0o600, 0o644, 0o664, 0o640])
        let (valid, invalid) = try pool(port: file.port)
        for _ in 0..<(1 + rng.below(16)) {
            file.lines.append(Array(rng.pick(valid).utf8))
            file.invalid.append(false)
        }
        if rng.oneIn(5) {
            for _ in 0..<(1 + rng.below(3)) {
                let at = rng.below(file.lines.count + 1)
                file.lines.insert(Array(rng.pick(invalid).utf8), at: at)
                file.invalid.insert(true, at: at)
            }
        }
        if rng.oneIn(6) {
            for i in file.lines.indices {
                // A blank line plus "\r" is a host field "\r" without a key.
                if file.lines[i].allSatisfy({ $0 == 32 || $0 == 9 }) { file.invalid[i] = true }
                file.lines[i].append(13)
            }
        }
        // An invalid last line without "\n" may be valid after all, by what earlier lines left
        // in getline's buffer (below): the tags would not know.
        file.finalNewline = !rng.oneIn(3) || file.invalid.last == true
        if rng.oneIn(12) && !file.hasInvalid {
            // A last line that is only a host field, without "\n", right after an entry whose host
            // field is as long: OpenSSH reads that entry's key type and key from getline's buffer.
            // (Not beside lines tagged invalid: the same bytes there are an invalid line.)
            let key = try publicKeys()[rng.below(2)]
            file.lines += [Array("\(rng.pick(file.hosts)) \(key)".utf8), Array(file.hosts[0].utf8)]
            file.invalid += [false, false]
            file.finalNewline = false
        }
        return file
    }

    /// Whether a run of ssh-keygen on `copy` refused it for an invalid line (its stderr is in COPY.err).
    func refused(_ copy: String) -> Bool {
        String(decoding: (try? fs.read(copy + ".err")) ?? Data(), as: UTF8.self).contains("is not a valid known_hosts file")
    }

    /// `dbgbox cleanup --port N --known-hosts F`, the installed binary run as the test user, on
    /// 1,000 generated files, against `ssh-keygen -R '[127.0.0.1]:N' -f F; ssh-keygen -R
    /// '[localhost]:N' -f F` on copies: the same bytes and mode, and a backup (F.old, which cleanup
    /// documents) exactly when ssh-keygen leaves one, holding the original.
    ///
    /// Where ssh-keygen refuses a run because a line is invalid (it says so on stderr), dbgbox keeps
    /// the lines the generator tagged invalid verbatim and otherwise leaves what ssh-keygen leaves
    /// from the file without them; ssh-keygen must accept that file (so the tags are right).
    ///
    /// cleanup --port also asks docker for the caller's containers on that port, and would remove
    /// them: the binary runs with a stand-in `docker` first on PATH that lists none and fails any
    /// other command, so the test touches no container (other tests' included) and needs no engine.
    func testCleanupBinaryMatchesSSHKeygenOnGeneratedFiles() throws {
        let bin = try IT.requireBinary()
        let started = Date()
        let test = "KnownHostsDifferentialTests/testCleanupBinaryMatchesSSHKeygenOnGeneratedFiles"
        let cases = DiffCase.cases(base: 0x6B68_2201_C1EA_0001, count: 1000)
        let work = try IT.scratchDir("khbin")
        defer { try? FileManager.default.removeItem(atPath: work) }
        let ref = "\(dir)/ref"
        try fs.createDirectory(ref, mode: 0o700)
        try fs.createDirectory("\(work)/bin", mode: 0o755)
        try writeScratch(Data("""
            #!/bin/sh
            # dbgbox's test stand-in for docker: no containers, and nothing else is expected.
            [ "$1" = ps ] && exit 0
            echo "stand-in docker: unexpected: $*" >&2
            exit 1

            """.utf8), to: "\(work)/bin/docker", mode: 0o755)

        var files: [GeneratedFile] = []
        var keygen: [String] = [], cleanup: [String] = []
        let q = ShellBatch.quote
        for (i, c) in cases.enumerated() {
            let file = try generatedFile(seed: c.seed)
            files.append(file)
            try writeScratch(file.bytes(), to: "\(work)/kh\(i)", mode: file.mode)
            cleanup.append("\(q(bin)) cleanup --port \(file.port) --known-hosts \(work)/kh\(i) >\(work)/out\(i) 2>&1; echo $? >\(work)/rc\(i)")
            // ssh-keygen on the file itself; and, where lines are tagged invalid, on the file without them.
            var copies = ["\(ref)/kh\(i)"]
            try writeScratch(file.bytes(), to: copies[0], mode: file.mode)
            if file.hasInvalid {
                copies.append("\(ref)/valid\(i)")
                try writeScratch(file.bytes(validOnly: true), to: copies[1], mode: file.mode)
            }
            for copy in copies {
                keygen.append(file.hosts.map { "ssh-keygen -R \(q($0)) -f \(copy) >/dev/null 2>>\(copy).err" }.joined(separator: "; "))
            }
        }
        _ = try IT.runner.run(["chown", "-R", "\(IT.user.uid):\(IT.user.gid)", work])
        let generated = Date()
        try ShellBatch.run(keygen, in: dir, label: "keygen")
        let referenced = Date()
        try ShellBatch.run(cleanup, in: work, label: "cleanup") {
            try IT.asUser($0, home: work, extraEnv: ["PATH": "\(work)/bin:/usr/local/bin:/usr/bin:/bin"])
        }
        let ran = Date()

        var failures: [String] = []
        var removals = 0, refusals = 0 // refusals: files ssh-keygen refuses
        for (i, c) in cases.enumerated() {
            let file = files[i], original = file.bytes()
            let ours = "\(work)/kh\(i)"
            var problems: [String] = []
            let status = String(decoding: (try? fs.read("\(work)/rc\(i)")) ?? Data(), as: UTF8.self)
            let output = String(decoding: (try? fs.read("\(work)/out\(i)")) ?? Data(), as: UTF8.self)
            if status != "0\n" { problems.append("exit \(status.debugDescription): \(output)") }
            let actual = try fs.read(ours)
            var reference = "\(ref)/kh\(i)"
            if refused(reference) {
                // ssh-keygen refused a run: compare with it on the lines that are not tagged invalid.
                refusals += 1
                guard file.hasInvalid, !refused("\(ref)/valid\(i)") else {
                    failures.append("\(c.label(test)): the generator mis-tags lines: ssh-keygen refuses \(show(original))")
                    continue
                }
                reference = "\(ref)/valid\(i)"
                let expected = try fs.read(reference)
                let invalidLines = Set(zip(file.lines, file.invalid).filter(\.1).map(\.0))
                let actualLines = byteLines(actual)
                if actualLines.filter({ invalidLines.contains($0) }) != byteLines(original).filter({ invalidLines.contains($0) }) {
                    problems.append("invalid lines not kept verbatim and in order")
                }
                let actualValid = Data(actualLines.filter { !invalidLines.contains($0) }.joined(separator: [10]))
                if actualValid != expected { problems.append("valid lines: ssh-keygen \(show(expected)), dbgbox \(show(actualValid))") }
            } else if try actual != fs.read(reference) {
                problems.append("ssh-keygen left \(show(try fs.read(reference))), dbgbox \(show(actual))")
            }
            let theirBackup = fs.exists(reference + ".old")
            let backup = fs.exists(ours + ".old") ? try fs.read(ours + ".old") : nil
            if theirBackup != (backup != nil) { problems.append("backup: ssh-keygen \(theirBackup), dbgbox \(backup != nil)") }
            if let backup, backup != original { problems.append("backup is not the original: \(show(backup))") }
            if try fs.mode(of: ours) != fs.mode(of: reference) {
                problems.append("mode: ssh-keygen \(String(try fs.mode(of: reference), radix: 8)), dbgbox \(String(try fs.mode(of: ours), radix: 8))")
            }
            if backup != nil { removals += 1 }
            if output.contains("nothing removed") == (backup != nil) { problems.append("output disagrees with the edit: \(output)") }
            if !problems.isEmpty {
                failures.append("\(c.label(test)), port \(file.port), "
                                + "file \(show(original)): " + problems.joined(separator: "; "))
            }
        }
        XCTAssertEqual(failures.count, 0, failures.prefix(5).joined(separator: "\n"))
        if cases.count > 1 {
            XCTAssertGreaterThan(removals, cases.count / 3, "the files must exercise removal")
            XCTAssertLessThan(removals, cases.count * 9 / 10, "the files must exercise no-match too")
            XCTAssertGreaterThan(refusals, cases.count / 10, "the files must exercise invalid lines")
        }
        let seconds = { (a: Date, b: Date) in String(format: "%.1f", b.timeIntervalSince(a)) }
        print("known_hosts binary differential: \(cases.count) files, \(removals) with removals, \(refusals) refused by ssh-keygen; "
              + "generate \(seconds(started, generated)) s, ssh-keygen \(seconds(generated, referenced)) s, dbgbox \(seconds(referenced, ran)) s, "
              + "total \(seconds(started, Date())) s")
    }
}
