import Foundation
import XCTest
@testable import DbgboxKit

final class MountTests: XCTestCase {
    func testParseOriginalFormatAndVolumes() throws {
        let dir = try containerTempDir(self)
        try FileManager.default.createDirectory(atPath: "\(dir)/with space", withIntermediateDirectories: true)
        let mounts = try BindMount.parseList("\(dir):/data;\(dir)/with space/:/work space", fs: LocalFileSystem())
        XCTAssertEqual(mounts, [BindMount(source: dir, target: "/data"), BindMount(source: "\(dir)/with space", target: "/work space")])
        XCTAssertEqual(mounts[1].dockerArguments, ["--mount", "type=bind,source=\(dir)/with space,target=/work space"])
        let ro = try BindMount.parseVolume("\(dir):/ref:ro", fs: LocalFileSystem())
        XCTAssertEqual(ro.dockerArguments, ["--mount", "type=bind,source=\(dir),target=/ref,readonly"])
        XCTAssertEqual(try BindMount.parseList("\(dir):/data;", fs: LocalFileSystem()).count, 1)
    }

    func testBadMounts() throws {
        let dir = try containerTempDir(self)
        let fs = LocalFileSystem()
        assertOneLineError(try BindMount.parseList("\(dir)", fs: fs), contains: "malformed")
        assertOneLineError(try BindMount.parseList("\(dir):/a;;\(dir):/b", fs: fs), contains: "empty part")
        assertOneLineError(try BindMount.parseList(";", fs: fs), contains: "empty part")
        assertOneLineError(try BindMount.parseList("data:/data", fs: fs), contains: "not an absolute path")
        assertOneLineError(try BindMount.parseList("\(dir):data", fs: fs), contains: "not an absolute path")
        assertOneLineError(try BindMount.parseList("\(dir):", fs: fs), contains: "both parts")
        assertOneLineError(try BindMount.parseList("\(dir)/nope:/data", fs: fs), contains: "does not exist")
        assertOneLineError(try BindMount.parseList("\(dir):/", fs: fs), contains: "system directory")
        assertOneLineError(try BindMount.parseList("\(dir):/etc", fs: fs), contains: "system directory")
        assertOneLineError(try BindMount.parseList("\(dir):/usr/", fs: fs), contains: "system directory")
        assertOneLineError(try BindMount.parseList("\(dir):/proc", fs: fs), contains: "system directory")
        assertOneLineError(try BindMount.parseList("\(dir):/a,b", fs: fs), contains: "comma")
        assertOneLineError(try BindMount.parseList("\(dir)/../x:/a", fs: fs), contains: "..")
        assertOneLineError(try BindMount.parseVolume("\(dir):/a:rx", fs: fs), contains: "SRC:DST:ro")
        assertOneLineError(try ContainerSpec.checkMountTargets([BindMount(source: dir, target: "/home/u")], home: "/home/u"), contains: "share the target")
        assertOneLineError(try ContainerSpec.checkMountTargets([BindMount(source: dir, target: "/d"), BindMount(source: dir, target: "/d")], home: "/home/u"))
    }
}
