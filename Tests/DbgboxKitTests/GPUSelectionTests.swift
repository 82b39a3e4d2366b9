import Foundation
import XCTest
@testable import DbgboxKit

final class GPUSelectionTests: XCTestCase {
    let profiles = DbgboxConfig.builtinGPUProfiles

    func nvidiaSMI(_ fixture: String) -> ContainerFakeRunner {
        ContainerFakeRunner { argv in
            XCTAssertEqual(argv, GPUInfo.queryArguments)
            return ok(GPUFixtures.text(fixture))
        }
    }

    func resolve(_ gpu: String, env: [String: String], smi: String, runtime: GPURuntime = .gpus) throws -> GPUSelection {
        let request = try GPURequest.parse(gpu, profiles: profiles)
        return try GPUResolver(profiles: profiles, environment: env, runner: nvidiaSMI(smi), fs: LocalFileSystem())
            .resolve(request, runtime: runtime)
    }

    func testParseRequests() throws {
        XCTAssertEqual(try GPURequest.parse("none", profiles: profiles), .none)
        XCTAssertEqual(try GPURequest.parse("V", profiles: profiles), .profile("V"))
        XCTAssertEqual(try GPURequest.parse("gt", profiles: profiles), .profile("GT"))
        XCTAssertEqual(try GPURequest.parse("0,2", profiles: profiles), .ids(["0", "2"]))
        XCTAssertEqual(try GPURequest.parse("2,2,0", profiles: profiles), .ids(["2", "0"]))
        XCTAssertEqual(try GPURequest.parse("GPU-1f9a3c2e-5b7d-4e8f-9a0b-1c2d3e4f5a6b", profiles: profiles),
                       .ids(["GPU-1f9a3c2e-5b7d-4e8f-9a0b-1c2d3e4f5a6b"]))
    }

    func testPBSGPUFileGivesEveryGPUNotJustTheFirst() throws {
        let env = ["PBS_GPUFILE": GPUFixtures.url("pbs_gpufile-0-3").path, "SLURM_JOB_GPUS": "1", "CUDA_VISIBLE_DEVICES": "2"]
        let allocation = try GPUAllocation.fromEnvironment(env, fs: LocalFileSystem())
        XCTAssertEqual(allocation?.ids, ["0", "3"])
        XCTAssertEqual(try GPUAllocation.fromEnvironment(["PBS_GPUFILE": GPUFixtures.url("pbs_gpufile-dashed-host").path],
                                                         fs: LocalFileSystem())?.ids, ["2", "0"])
    }

    func testSlurmThenCuda() throws {
        XCTAssertEqual(try GPUAllocation.fromEnvironment(["SLURM_JOB_GPUS": "0,1", "CUDA_VISIBLE_DEVICES": "3"], fs: LocalFileSystem())?.ids, ["0", "1"])
        XCTAssertEqual(try GPUAllocation.fromEnvironment(["CUDA_VISIBLE_DEVICES": "3,1"], fs: LocalFileSystem())?.ids, ["3", "1"])
        XCTAssertNil(try GPUAllocation.fromEnvironment(["CUDA_VISIBLE_DEVICES": ""], fs: LocalFileSystem()))
        XCTAssertNil(try GPUAllocation.fromEnvironment([:], fs: LocalFileSystem()))
    }

    /// The exact docker flags for each letter and runtime, from recorded nvidia-smi output.
    func testLetterArgvForEachProfileAndRuntime() throws {
        let pbs = ["PBS_GPUFILE": GPUFixtures.url("pbs_gpufile-0-3").path]
        let cases: [(String, String, GPURuntime, [String])] = [
            ("V", "nvidia-smi-4xV100.csv", .gpus, ["--gpus", "\"device=0,3\"", "--cpus", "16"]),
            ("V", "nvidia-smi-4xV100.csv", .nvidia, ["--runtime", "nvidia", "-e", "NVIDIA_VISIBLE_DEVICES=0,3", "--cpus", "16"]),
            ("GT", "nvidia-smi-4x1080Ti.csv", .gpus, ["--gpus", "\"device=0,3\"", "--cpus", "5", "--memory", "28G", "--memory-swap", "28G"]),
            ("GT", "nvidia-smi-4x1080Ti.csv", .nvidia, ["--runtime", "nvidia", "-e", "NVIDIA_VISIBLE_DEVICES=0,3", "--cpus", "5", "--memory", "28G", "--memory-swap", "28G"]),
        ]
        for (letter, smi, runtime, expected) in cases {
            let sel = try resolve(letter, env: pbs, smi: smi, runtime: runtime)
            XCTAssertEqual(sel.dockerArguments, expected, "\(letter) \(runtime)")
            XCTAssertEqual(sel.warnings, [], "\(letter) on \(smi)")
        }
        let slurm = ["SLURM_JOB_GPUS": "1"]
        XCTAssertEqual(try resolve("P", env: slurm, smi: "nvidia-smi-2xP100.csv").dockerArguments,
                       ["--gpus", "\"device=1\"", "--cpus", "8", "--memory", "28G", "--memory-swap", "28G"])
        XCTAssertEqual(try resolve("P", env: slurm, smi: "nvidia-smi-2xP100.csv", runtime: .nvidia).dockerArguments,
                       ["--runtime", "nvidia", "-e", "NVIDIA_VISIBLE_DEVICES=1", "--cpus", "8", "--memory", "28G", "--memory-swap", "28G"])
        let cuda = ["CUDA_VISIBLE_DEVICES": "0,1"]
        XCTAssertEqual(try resolve("G", env: cuda, smi: "nvidia-smi-2x1080.csv").dockerArguments,
                       ["--gpus", "\"device=0,1\"", "--cpus", "5", "--memory", "28G", "--memory-swap", "28G"])
        XCTAssertEqual(try resolve("G", env: cuda, smi: "nvidia-smi-2x1080.csv", runtime: .nvidia).dockerArguments,
                       ["--runtime", "nvidia", "-e", "NVIDIA_VISIBLE_DEVICES=0,1", "--cpus", "5", "--memory", "28G", "--memory-swap", "28G"])
    }

    func testExplicitIdsHaveNoProfileAndNoneHasNoFlags() throws {
        let sel = try resolve("0,2", env: [:], smi: "nvidia-smi-4xV100.csv")
        XCTAssertEqual(sel.dockerArguments, ["--gpus", "\"device=0,2\""])
        XCTAssertNil(sel.profile)
        let uuid = try resolve("GPU-4c6d6f5b-8e0a-4b12-8d3e-4f5a6b7c8d9e", env: [:], smi: "nvidia-smi-4xV100.csv", runtime: .nvidia)
        XCTAssertEqual(uuid.dockerArguments, ["--runtime", "nvidia", "-e", "NVIDIA_VISIBLE_DEVICES=GPU-4c6d6f5b-8e0a-4b12-8d3e-4f5a6b7c8d9e"])
        let runner = ContainerFakeRunner { _ in XCTFail("none must not run nvidia-smi"); return ok() }
        let none = try GPUResolver(profiles: profiles, environment: [:], runner: runner, fs: LocalFileSystem()).resolve(.none, runtime: .gpus)
        XCTAssertEqual(none.dockerArguments, [])
    }

    func testModelMismatchWarns() throws {
        let p = try resolve("V", env: ["SLURM_JOB_GPUS": "0"], smi: "nvidia-smi-2xP100.csv")
        XCTAssertEqual(p.warnings.count, 1)
        XCTAssertTrue(p.warnings[0].contains("Tesla P100-PCIE-16GB"), p.warnings[0])
        // A 1080 Ti is GT, not G.
        XCTAssertEqual(try resolve("G", env: ["SLURM_JOB_GPUS": "0"], smi: "nvidia-smi-4x1080Ti.csv").warnings.count, 1)
        XCTAssertEqual(try resolve("GT", env: ["SLURM_JOB_GPUS": "0"], smi: "nvidia-smi-2x1080.csv").warnings.count, 1)
    }

    func testNoDriverNoAllocationAndUnknownIds() throws {
        let missing = ContainerFakeRunner { argv in throw ProcessError.notFound(argv[0]) }
        assertOneLineError(try GPUResolver(profiles: profiles, environment: [:], runner: missing, fs: LocalFileSystem())
            .resolve(.ids(["0"]), runtime: .gpus), contains: "no NVIDIA driver on this node: use --gpu none")
        assertOneLineError(try resolve("V", env: [:], smi: "nvidia-smi-4xV100.csv"), contains: "--gpu 0")
        assertOneLineError(try resolve("7", env: [:], smi: "nvidia-smi-4xV100.csv"), contains: "0, 1, 2, 3")
        assertOneLineError(try resolve("V", env: ["PBS_GPUFILE": GPUFixtures.url("pbs_gpufile-bad").path], smi: "nvidia-smi-4xV100.csv"),
                           contains: "garbage")
        let broken = ContainerFakeRunner { _ in fail("NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.\nMake sure…", code: 9) }
        assertOneLineError(try GPUResolver(profiles: profiles, environment: [:], runner: broken, fs: LocalFileSystem())
            .resolve(.ids(["0"]), runtime: .gpus), contains: "--gpu none")
    }

    func testParseNvidiaSMIFixture() throws {
        let gpus = try GPUInfo.parseList(GPUFixtures.text("nvidia-smi-4x1080Ti.csv"))
        XCTAssertEqual(gpus.count, 4)
        XCTAssertEqual(gpus[3], GPUInfo(index: "3", uuid: "GPU-0c0dcf1b-4e6a-4b78-8d9e-0f1a2b3c4d5e", name: "NVIDIA GeForce GTX 1080 Ti"))
    }
}
