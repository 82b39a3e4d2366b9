import Foundation
import XCTest
@testable import DbgboxKit

/// Records every argv and answers from a script; the container tests' stand-in for docker and nvidia-smi.
final class ContainerFakeRunner: ProcessRunner, @unchecked Sendable {
    private let lock = NSLock()
    private var _calls: [[String]] = []
    var handler: ([String]) throws -> ProcessResult

    init(_ handler: @escaping ([String]) throws -> ProcessResult = { _ in ProcessResult(exitCode: 0) }) {
        self.handler = handler
    }

    var calls: [[String]] { lock.lock(); defer { lock.unlock() }; return _calls }

    func run(_ argv: [String], input: Data?) throws -> ProcessResult {
        lock.lock(); _calls.append(argv); lock.unlock()
        return try handler(argv)
    }

    func stream(_ argv: [String], input: Data?, to sink: OutputSink) throws -> ProcessResult {
        try run(argv, input: input)
    }
}

func ok(_ stdout: String = "") -> ProcessResult { ProcessResult(exitCode: 0, stdout: Data(stdout.utf8)) }
func fail(_ stderr: String, code: Int32 = 1) -> ProcessResult { ProcessResult(exitCode: code, stderr: Data(stderr.utf8)) }

/// Port probe with a fixed set of busy ports.
struct FakePortProbe: PortProbe {
    var busy: Set<UInt16> = []
    func isFree(_ port: UInt16) -> Bool { !busy.contains(port) }
}

enum GPUFixtures {
    static func url(_ name: String) -> URL {
        Bundle.module.resourceURL!.appendingPathComponent("Fixtures/gpu/\(name)")
    }
    static func text(_ name: String) -> String {
        (try? String(contentsOf: url(name), encoding: .utf8)) ?? ""
    }
}

/// A fresh temporary directory per test, removed afterwards.
func containerTempDir(_ test: XCTestCase) throws -> String {
    let dir = NSTemporaryDirectory() + "dbgbox-ctest-\(UUID().uuidString.prefix(8))"
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    test.addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }
    return dir
}

/// Asserts the error is a one-line UserFacingError and returns its text.
@discardableResult
func assertOneLineError(_ body: @autoclosure () throws -> Any, contains needle: String = "",
                        file: StaticString = #filePath, line: UInt = #line) -> String {
    do {
        _ = try body()
        XCTFail("expected an error", file: file, line: line)
        return ""
    } catch let error as UserFacingError {
        let text = error.description
        XCTAssertFalse(text.contains("\n"), "multi-line error: \(text)", file: file, line: line)
        XCTAssertFalse(text.isEmpty, file: file, line: line)
        XCTAssertTrue(text.contains(":"), "error should say what and how: \(text)", file: file, line: line)
        if !needle.isEmpty { XCTAssertTrue(text.contains(needle), "\(text) lacks \(needle)", file: file, line: line) }
        return text
    } catch {
        XCTFail("not a UserFacingError: \(error)", file: file, line: line)
        return ""
    }
}
