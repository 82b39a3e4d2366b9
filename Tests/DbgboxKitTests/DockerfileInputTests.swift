import Foundation
import XCTest
@testable import DbgboxKit

/// Image names, base references and the templates location: checks before anything runs.
final class DockerfileInputTests: XCTestCase {
    func testValidBuildNames() {
        for name in ["alice/ssh:latest", "ssh", "a.b/ssh:v1.2", "a_b/ssh", "a__b/x-y", "localhost:5000/me/ssh:1",
                     "registry.example.com/team/ssh", "dbgbox-it/ssh-1a2b:latest", "x:A_b-1.0"] {
            XCTAssertNil(ImageReference.problem(withTag: name), name)
        }
    }

    func testInvalidBuildNames() {
        for name in ["", "Alice/ssh", "alice/SSH:latest", "alice/ssh:", "alice//ssh", "-t", "alice/ssh:lat est",
                     "alice/ssh:-x", "alice_/ssh", "alice/ssh@sha256:" + String(repeating: "a", count: 64),
                     "alice/ssh:latest\nRUN x", ":latest", "a/ssh:" + String(repeating: "t", count: 129)] {
            XCTAssertNotNil(ImageReference.problem(withTag: name), name)
            XCTAssertThrowsError(try ImageReference.validateBuildName(name), name) { error in
                XCTAssertFalse("\(error)".contains("\n"))
            }
        }
    }

    func testBases() {
        for base in ["debian:bookworm", "dbgbox-base/debian:bookworm", "nvcr.io/nvidia/pytorch:24.05-py3",
                     "ubuntu@sha256:" + String(repeating: "0", count: 64), "8a922f9aea5f",
                     "sha256:" + String(repeating: "a", count: 64)] {
            XCTAssertNoThrow(try ImageReference.validateBase(base), base)
        }
        for base in ["", "--privileged", "Ubuntu", "debian bookworm", "debian:bookworm\nRUN id", "a\"b"] {
            XCTAssertThrowsError(try ImageReference.validateBase(base), base)
        }
    }

    func testDefaultName() {
        XCTAssertEqual(ImageReference.defaultName(for: "alice"), "alice/ssh:latest")
        XCTAssertEqual(ImageReference.defaultName(for: "John.Doe"), "john.doe/ssh:latest")
        XCTAssertNil(ImageReference.defaultName(for: "_svc"))
    }

    func testFamilyNames() {
        XCTAssertEqual(DistroFamily(rawValue: "apt"), .apt)
        XCTAssertEqual(Set(DistroFamily.allCases.map(\.rawValue)), ["apt", "dnf", "microdnf", "yum", "apk"])
    }

    // MARK: templates location

    struct FakeFS: FileSystem {
        var files: Set<String>
        func read(_ path: String, as kind: FileKind) throws -> Data { throw FileSystemError.io(path: path, operation: "read", errno: ENOENT) }
        func exists(_ path: String) -> Bool { files.contains(path) }
        func isDirectory(_ path: String) -> Bool { false }
        func writeAtomically(_ data: Data, to path: String, mode: mode_t?) throws {}
        func append(_ data: Data, to path: String, mode: mode_t) throws {}
        func createDirectory(_ path: String, mode: mode_t) throws {}
        func remove(_ path: String) throws {}
        func mode(of path: String) throws -> mode_t { 0 }
        func setMode(_ mode: mode_t, of path: String) throws {}
        func withExclusiveLock<T>(_ lockPath: String, _ body: () throws -> T) throws -> T { try body() }
    }

    func testTemplatesFromEnvironment() throws {
        let fs = FakeFS(files: ["/opt/t/Dockerfile.mustache", "/usr/share/dbgbox/templates/Dockerfile.mustache"])
        XCTAssertEqual(try Templates.directory(environment: ["DBGBOX_TEMPLATES": "/opt/t"], executablePath: "/usr/bin/dbgbox", fileSystem: fs), "/opt/t")
        XCTAssertThrowsError(try Templates.directory(environment: ["DBGBOX_TEMPLATES": "/nowhere"], executablePath: "/usr/bin/dbgbox", fileSystem: fs))
    }

    func testTemplatesBesideTheInstalledBinary() throws {
        let fs = FakeFS(files: ["/home/a/.local/share/dbgbox/templates/Dockerfile.mustache", "/home/a/templates/Dockerfile.mustache"])
        XCTAssertEqual(try Templates.directory(environment: [:], executablePath: "/home/a/.local/bin/dbgbox", fileSystem: fs),
                       "/home/a/.local/share/dbgbox/templates")
    }

    func testTemplatesInACheckout() throws {
        let fs = FakeFS(files: ["/src/dbgbox/templates/Dockerfile.mustache"])
        XCTAssertEqual(try Templates.directory(environment: [:], executablePath: "/src/dbgbox/.build/debug/dbgbox", fileSystem: fs),
                       "/src/dbgbox/templates")
    }

    func testTemplatesMissing() {
        XCTAssertThrowsError(try Templates.directory(environment: [:], executablePath: "/usr/bin/dbgbox", fileSystem: FakeFS(files: []))) { error in
            let text = "\(error)"
            XCTAssertFalse(text.contains("\n"))
            XCTAssertTrue(text.contains("DBGBOX_TEMPLATES"), text)
        }
    }

    /// The real lookup, from this test binary inside the checkout, finds the repository's templates/.
    func testRealLookupFindsTheRepositoryTemplates() throws {
        let dir = try Templates.directory(environment: [:])
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/Dockerfile.mustache"))
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/sshd_config.mustache"))
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/entrypoint.sh.mustache"))
    }
}
