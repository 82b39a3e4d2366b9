import Foundation
import XCTest
@testable import DbgboxKit

/// `defaults:` and `profiles:` of config.yaml, their merging and their errors.
final class ConfigSettingsTests: XCTestCase {
    static let path = "/home/u/.config/dbgbox/config.yaml"

    static let full = """
        gpu_profiles:
          A: {cpus: 12, model: A100}
        defaults:
          login: alice@login.example
          key: ~/.ssh/id_dbgbox.pub
          gpu: none
          port: auto
          ttl: 12h
          base: debian:bookworm
          mounts: [/data:/data, "/scratch:/scratch:ro"]
        profiles:
          v100:
            node: gpu07
            gpu: V
            port: 2222
          big: {node: 12, gpu: A, ttl: 2d, mounts: /big:/big, image: alice/ml:latest}
          bare:
        """

    func testDefaultsAloneAndProfilesOverlayThem() throws {
        let config = try DbgboxConfig.parse(Self.full, path: Self.path)
        XCTAssertEqual(config.gpuProfiles["A"]?.cpus, "12")
        XCTAssertEqual(config.gpuProfiles["V"], DbgboxConfig.builtinGPUProfiles["V"], "gpu_profiles behave as before")
        let defaults = try config.settings(profile: nil)
        XCTAssertEqual(defaults, DbgboxSettings(login: "alice@login.example", key: "~/.ssh/id_dbgbox.pub", base: "debian:bookworm",
                                                gpu: "none", mounts: ["/data:/data", "/scratch:/scratch:ro"], port: "auto", ttl: "12h"))
        let v100 = try config.settings(profile: "v100")
        XCTAssertEqual(v100.node, "gpu07")
        XCTAssertEqual(v100.gpu, "V", "the profile wins over defaults")
        XCTAssertEqual(v100.port, "2222")
        XCTAssertEqual(v100.login, "alice@login.example", "unset in the profile: from defaults")
        XCTAssertEqual(v100.mounts, ["/data:/data", "/scratch:/scratch:ro"])
        let big = try config.settings(profile: "big")
        XCTAssertEqual(big.node, "12", "numbers are read as text")
        XCTAssertEqual(big.mounts, ["/big:/big"], "a profile's mounts replace the defaults' list; one string is a list of one")
        XCTAssertEqual(big.ttl, "2d")
        XCTAssertEqual(big.image, "alice/ml:latest")
        XCTAssertEqual(try config.settings(profile: "bare"), defaults, "an empty profile is the defaults")
    }

    /// Command line, then config file, then what is left falls through (ssh config, built-ins).
    func testPrecedenceCommandLineOverConfigOverLowerLayers() throws {
        let config = try DbgboxConfig.parse(Self.full, path: Self.path)
        let commandLine = DbgboxSettings(gpu: "P", ttl: "1h")
        let fromSSHConfigAndBuiltins = DbgboxSettings(login: "ssh-config-login", node: "builtin-node", key: "builtin-key",
                                                      image: "alice/ssh:latest", port: "22")
        let merged = commandLine.filling(from: try config.settings(profile: "v100")).filling(from: fromSSHConfigAndBuiltins)
        XCTAssertEqual(merged.gpu, "P")
        XCTAssertEqual(merged.ttl, "1h")
        XCTAssertEqual(merged.node, "gpu07")
        XCTAssertEqual(merged.port, "2222")
        XCTAssertEqual(merged.login, "alice@login.example")
        XCTAssertEqual(merged.image, "alice/ssh:latest", "not in the config file: from the lower layer")
    }

    func testMissingFileHasNoDefaultsOrProfiles() throws {
        let dir = try containerTempDir(self)
        let config = try DbgboxConfig.load(path: "\(dir)/config.yaml")
        XCTAssertEqual(try config.settings(profile: nil), DbgboxSettings())
        let text = assertOneLineError(try config.settings(profile: "v100"), contains: "no profile `v100`")
        XCTAssertTrue(text.contains("does not exist"), text)
    }

    func testUnknownProfileListsTheKnownOnes() throws {
        let config = try DbgboxConfig.parse(Self.full, path: Self.path)
        let text = assertOneLineError(try config.settings(profile: "a100"), contains: "no profile `a100` in \(Self.path)")
        XCTAssertTrue(text.contains("known: bare, big, v100"), text)
    }

    func testUnknownKeysAndBadValuesNameFileAndKey() {
        let cases: [(String, String)] = [
            ("defaults: {nodes: gpu01}", "unknown key `defaults.nodes`"),
            ("profiles: {v100: {gpu_count: V}}", "unknown key `profiles.v100.gpu_count`"),
            ("profiles: {v100: {gpus: V}}", "profiles.v100.gpus must be a number of GPUs, 1 or more, not `V`"),
            ("profile: {v100: {gpu: V}}", "unknown key `profile`"),
            ("defaults: {port: 22}", "defaults.port must be auto or a port 1024-65535"),
            ("defaults: {port: lots}", "defaults.port must be auto"),
            ("profiles: {x: {ttl: forever}}", "profiles.x.ttl must be a duration"),
            ("defaults: {mounts: [nocolon]}", "defaults.mounts must list SRC:DST"),
            ("defaults: {login: [a, b]}", "defaults.login must be a single value"),
            ("defaults: [a]", "defaults must be a mapping"),
            ("profiles: [a]", "profiles must map names"),
            ("profiles: {\"bad name\": {gpu: V}}", "profile name `bad name`"),
        ]
        for (text, needle) in cases {
            let message = assertOneLineError(try DbgboxConfig.parse(text, path: Self.path), contains: needle)
            XCTAssertTrue(message.hasPrefix("config file \(Self.path) is malformed"), message)
        }
    }
}
