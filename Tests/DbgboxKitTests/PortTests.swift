import Foundation
import XCTest
#if canImport(Glibc)
import Glibc
#endif
@testable import DbgboxKit

final class PortTests: XCTestCase {
    func testParse() throws {
        XCTAssertEqual(try PortRequest.parse("auto"), .auto)
        XCTAssertEqual(try PortRequest.parse("1024"), .fixed(1024))
        XCTAssertEqual(try PortRequest.parse("65535"), .fixed(65535))
        assertOneLineError(try PortRequest.parse("22a"), contains: "digits only")
        assertOneLineError(try PortRequest.parse("80"), contains: "1024-65535")
        assertOneLineError(try PortRequest.parse("70000"), contains: "1024-65535")
        assertOneLineError(try PortRequest.parse("-5"))
        assertOneLineError(try PortRequest.parse(""))
        assertOneLineError(try PortRequest.parse("+2222"))
    }

    /// A real listening socket makes the bind probe report the port busy.
    func testBindProbeSeesAListener() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = 0
        addr.sin_addr = in_addr(s_addr: UInt32(0x7f00_0001).bigEndian)
        _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        XCTAssertEqual(listen(fd, 1), 0)
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        let port = UInt16(bigEndian: addr.sin_port)
        XCTAssertFalse(BindPortProbe().isFree(port))
        close(fd)
        XCTAssertTrue(BindPortProbe().isFree(port))
    }

    func inspectJSON(name: String, hostPort: String, status: String = "created", labels: [String: String] = [:]) -> String {
        let labelJSON = String(decoding: try! JSONSerialization.data(withJSONObject: labels), as: UTF8.self)
        return """
        [{"Id":"abc\(name)","Name":"/\(name)","State":{"Status":"\(status)","ExitCode":0},"Config":{"Labels":\(labelJSON)},
          "HostConfig":{"PortBindings":{"22/tcp":[{"HostIp":"127.0.0.1","HostPort":"\(hostPort)"}]}}}]
        """
    }

    /// A port a stopped or created container publishes counts as taken.
    func testPortPublishedByAnotherContainerIsRefused() throws {
        let runner = ContainerFakeRunner { argv in
            if argv.starts(with: ["docker", "ps"]) { return ok("abcother\n") }
            if argv.starts(with: ["docker", "container", "inspect"]) { return ok(self.inspectJSON(name: "other", hostPort: "2222")) }
            return fail("unexpected")
        }
        let service = ContainerService(docker: DockerClient(runner: runner), portProbe: FakePortProbe())
        assertOneLineError(try service.checkPortFree(2222), contains: "published by container other")
        XCTAssertNoThrow(try service.checkPortFree(2223))
        let busy = ContainerService(docker: DockerClient(runner: runner), portProbe: FakePortProbe(busy: [2223]))
        assertOneLineError(try busy.checkPortFree(2223), contains: "in use on this node")
    }

    func testParseInspectPortBindings() throws {
        let json = try JSONSerialization.jsonObject(with: Data(inspectJSON(name: "x", hostPort: "4000", labels: ["dbgbox.owner": "u"]).utf8)) as! [[String: Any]]
        let c = DockerClient.container(from: json[0])
        XCTAssertEqual(c.name, "x")
        XCTAssertEqual(c.boundHostPorts, [4000])
        XCTAssertEqual(c.labels["dbgbox.owner"], "u")
        XCTAssertEqual(c.status, "created")
    }
}
