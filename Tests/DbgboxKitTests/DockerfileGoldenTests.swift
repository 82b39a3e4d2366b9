import Foundation
import XCTest
@testable import DbgboxKit

/// The rendered Dockerfile per distro family, compared byte for byte with
/// Fixtures/dockerfiles/*.Dockerfile. Re-record with DBGBOX_RECORD_GOLDENS=1.
final class DockerfileGoldenTests: XCTestCase {
    static let alice = UserIdentity(name: "alice", uid: 1000, gid: 1000, home: "/home/alice")

    static func templates() throws -> ImageTemplates {
        // Found the way the installed binary finds them: from the running executable upwards.
        try ImageTemplates.load(directory: Templates.directory())
    }

    func check(_ golden: String, _ spec: DockerfileSpec, file: StaticString = #filePath, line: UInt = #line) throws {
        try assertGolden(try DockerfileRenderer.render(spec, templates: Self.templates()), "dockerfiles/\(golden)",
                         file: file, line: line)
    }

    func spec(_ base: String, _ family: DistroFamily, bash: Bool, append: String? = nil) -> DockerfileSpec {
        DockerfileSpec(base: base, name: "alice/ssh:latest", facts: BaseImageFacts(family: family, hasBash: bash),
                       identity: Self.alice, append: append, appendName: append == nil ? nil : "extra.Dockerfile")
    }

    func testApt() throws { try check("apt.Dockerfile", spec("debian:bookworm", .apt, bash: true)) }
    func testDnf() throws { try check("dnf.Dockerfile", spec("fedora:40", .dnf, bash: true)) }
    func testMicrodnf() throws {
        try check("microdnf.Dockerfile", spec("registry.access.redhat.com/ubi9/ubi-minimal:9.4", .microdnf, bash: true))
    }
    func testYum() throws { try check("yum.Dockerfile", spec("centos:7", .yum, bash: true)) }
    func testApk() throws { try check("apk.Dockerfile", spec("alpine:3.20", .apk, bash: false)) }
    func testAptWithAppend() throws {
        let extra = "RUN apt-get update && apt-get install -y --no-install-recommends python3 \\\n && rm -rf /var/lib/apt/lists/*\nENV PYTHONUNBUFFERED=1\n"
        try check("apt-append.Dockerfile", spec("debian:bookworm", .apt, bash: true, append: extra))
    }
}
