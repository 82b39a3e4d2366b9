import Foundation
import XCTest
@testable import DbgboxKit

/// A deterministic generator, so a failing case can be reproduced from its seed.
struct SplitMix64 {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
    mutating func pick<T>(_ items: [T]) -> T { items[below(items.count)] }
    /// True once in `n` draws.
    mutating func oneIn(_ n: Int) -> Bool { below(n) == 0 }
}

/// The cases of a randomized differential test: each has its own seed, drawn from the test's
/// base seed, and generates its input from that seed alone. `DBGBOX_DIFF_SEED=0x…` (or decimal)
/// runs only the case of that seed, so a failure message's seed replays it.
struct DiffCase: Sendable {
    var index: Int
    var seed: UInt64

    static let replayVariable = "DBGBOX_DIFF_SEED"

    static func cases(base: UInt64, count: Int) -> [DiffCase] {
        if let text = IT.env[replayVariable] {
            let hex = text.lowercased().hasPrefix("0x")
            guard let seed = hex ? UInt64(text.dropFirst(2), radix: 16) : UInt64(text) else {
                XCTFail("\(replayVariable)=\(text): not a seed (0x… or decimal)")
                return []
            }
            return [DiffCase(index: -1, seed: seed)]
        }
        var master = SplitMix64(state: base)
        return (0..<count).map { DiffCase(index: $0, seed: master.next()) }
    }

    var seedText: String { "0x" + String(seed, radix: 16) }

    /// How to name the case in a failure: its index and how to replay it alone.
    func label(_ test: String) -> String {
        let which = index < 0 ? "replayed case" : "case \(index)"
        return "\(which), seed \(seedText) (replay: \(Self.replayVariable)=\(seedText) swift test --filter \(test))"
    }
}

/// Writes `data` to `path` with `mode`, without the fsync of `writeAtomically`: a differential
/// writes thousands of scratch files.
func writeScratch(_ data: Data, to path: String, mode: mode_t = 0o600) throws {
    try data.write(to: URL(fileURLWithPath: path))
    guard chmod(path, mode) == 0 else { throw FileSystemError.io(path: path, operation: "chmod", errno: errno) }
}

/// Runs many small commands in a few `sh` processes instead of one process each: a differential
/// with thousands of ssh, ssh-keygen and dbgbox runs spends most of its time starting processes.
enum ShellBatch {
    /// `value` as one sh word.
    static func quote(_ value: String) -> String {
        "'" + value.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }

    /// Writes `commands` (one sh command line each, in order within a script) into `parallel`
    /// scripts under `dir` (readable by all, so the test user can run them) and runs them at once
    /// through `launch(["sh", SCRIPT])`. Fails the test when a script does not exit 0; a
    /// command's own status is the caller's business (record it in the command).
    static func run(_ commands: [String], in dir: String, label: String, parallel: Int = 2,
                    launch: @escaping @Sendable ([String]) throws -> ProcessResult = { try IT.runner.run($0) },
                    file: StaticString = #filePath, line: UInt = #line) throws {
        guard !commands.isEmpty else { return }
        let chunks = max(1, min(parallel, commands.count))
        let scripts = try (0..<chunks).map { chunk in
            let path = "\(dir)/\(label)-\(chunk).sh"
            let body = stride(from: chunk, to: commands.count, by: chunks).map { commands[$0] }
            try writeScratch(Data((["set -u"] + body + ["exit 0"]).joined(separator: "\n").utf8 + [10]), to: path, mode: 0o644)
            return path
        }
        let results = Results(count: chunks)
        DispatchQueue.concurrentPerform(iterations: chunks) { chunk in
            results.set(chunk, Result { try launch(["sh", scripts[chunk]]) })
        }
        for (chunk, result) in results.all.enumerated() {
            let r = try result.get()
            XCTAssertEqual(r.exitCode, 0, "\(label) script \(chunk): \(r.stderrText.suffix(2000))", file: file, line: line)
        }
    }

    private final class Results: @unchecked Sendable {
        private let lock = NSLock()
        private var slots: [Result<ProcessResult, Error>?]
        init(count: Int) { slots = Array(repeating: nil, count: count) }
        func set(_ index: Int, _ value: Result<ProcessResult, Error>) { lock.withLock { slots[index] = value } }
        var all: [Result<ProcessResult, Error>] {
            lock.withLock { slots.map { $0 ?? .failure(DbgboxError("no result")) } }
        }
    }
}
