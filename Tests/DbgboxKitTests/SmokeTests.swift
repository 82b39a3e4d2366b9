import XCTest
@testable import DbgboxKit
import SSH

final class SmokeTests: XCTestCase {
    func testLibSSH2Loads() {
        XCTAssertEqual(LibSSH2.ensureInitialized(), 0)
        XCTAssertTrue(LibSSH2.version.hasPrefix("1."))
    }
}
