import Foundation
import XCTest
@testable import DbgboxKit

final class ConfigTests: XCTestCase {
    func testMissingFileGivesBuiltins() throws {
        let dir = try containerTempDir(self)
        XCTAssertEqual(try DbgboxConfig.load(path: "\(dir)/config.yaml"), DbgboxConfig())
        XCTAssertEqual(DbgboxConfig.builtinGPUProfiles["P"]?.dockerArguments, ["--cpus", "8", "--memory", "28G", "--memory-swap", "28G"])
        XCTAssertEqual(DbgboxConfig.builtinGPUProfiles["V"]?.dockerArguments, ["--cpus", "16"])
    }

    func testOverrideAndAdd() throws {
        let dir = try containerTempDir(self)
        let path = "\(dir)/config.yaml"
        try "gpu_profiles: {V: {cpus: 16, memory: 28G, memory_swap: 28G}, A: {cpus: 4.5, memory: 512m, model: A100}}\n"
            .write(toFile: path, atomically: true, encoding: .utf8)
        let config = try DbgboxConfig.load(path: path)
        XCTAssertEqual(config.gpuProfiles["V"]?.dockerArguments, ["--cpus", "16", "--memory", "28G", "--memory-swap", "28G"])
        XCTAssertEqual(config.gpuProfiles["A"]?.dockerArguments, ["--cpus", "4.5", "--memory", "512m"])
        XCTAssertEqual(config.gpuProfiles["G"], DbgboxConfig.builtinGPUProfiles["G"])
        XCTAssertEqual(try GPURequest.parse("A", profiles: config.gpuProfiles), .profile("A"))
    }

    func testMalformedConfigNamesTheFile() throws {
        let bad = [
            "gpu_profiles: [V",
            "- just a list",
            "gpu_profile: {V: {cpus: 1}}",
            "gpu_profiles: {V: {cpus: lots}}",
            "gpu_profiles: {V: {cpus: -2}}",
            "gpu_profiles: {V: {memory: 28 GB}}",
            "gpu_profiles: {V: {gpus: 2}}",
            "gpu_profiles: {none: {cpus: 2}}",
            "gpu_profiles: {V: 16}",
        ]
        for text in bad {
            assertOneLineError(try DbgboxConfig.parse(text, path: "/home/u/.config/dbgbox/config.yaml"),
                               contains: "config file /home/u/.config/dbgbox/config.yaml is malformed")
        }
    }
}
