import Foundation
import XCTest

/// Compares `rendered` byte for byte with the golden file `Fixtures/<relativePath>` (in the source
/// tree, beside this file). With DBGBOX_RECORD_GOLDENS=1 it writes the golden file instead.
func assertGolden(_ rendered: String, _ relativePath: String, file: StaticString = #filePath, line: UInt = #line) throws {
    let path = URL(fileURLWithPath: "\(#filePath)").deletingLastPathComponent()
        .appendingPathComponent("Fixtures/\(relativePath)").path
    if ProcessInfo.processInfo.environment["DBGBOX_RECORD_GOLDENS"] == "1" {
        try Data(rendered.utf8).write(to: URL(fileURLWithPath: path))
        return
    }
    guard let expected = FileManager.default.contents(atPath: path) else {
        return XCTFail("missing golden \(path): record it with DBGBOX_RECORD_GOLDENS=1", file: file, line: line)
    }
    guard Data(rendered.utf8) != expected else { return }
    let want = String(decoding: expected, as: UTF8.self).components(separatedBy: "\n")
    let got = rendered.components(separatedBy: "\n")
    let first = (0..<min(want.count, got.count)).first(where: { want[$0] != got[$0] }) ?? min(want.count, got.count)
    XCTFail("""
        \(relativePath) differs at line \(first + 1):
          golden:   \(first < want.count ? want[first] : "<end>")
          rendered: \(first < got.count ? got[first] : "<end>")
        re-record with DBGBOX_RECORD_GOLDENS=1 if the change is intended
        """, file: file, line: line)
}
