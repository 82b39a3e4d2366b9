import Foundation
import XCTest
@testable import DbgboxKit

/// The node-side checks of remote operation, on a scripted runner: no ssh, no docker.
final class RemoteOperationUnitTests: XCTestCase {
    static let procNetTCP = """
      sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
       0: 0100007F:55F3 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1076 1 0000 100 0 0 10 0
       1: 010212C6:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 6002 1 0000 100 0 0 10 0
       2: 0100007F:1F90 0100007F:A2B4 01 00000000:00000000 00:00000000 00000000  1001        0 7001 1 0000 20 4 30 10 -1
       3: 00000000:1F91 00000000:0000 06 00000000:00000000 03:00000ABC 00000000     0        0 0 3 0000
    """
    static let procNetTCP6 = """
      sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
       0: 00000000000000000000000000000000:1A0B 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 900 1 0000 100 0 0 10 0
       1: 0000000000000000FFFF00000100007F:2710 0000000000000000FFFF00000100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 901 1 0000 20 4 30 10 -1
    """

    /// LISTEN (0A) sockets on any address, IPv4 and IPv6; established (01) and TIME_WAIT (06) are not listeners.
    func testProcNetParserFindsListenersOnly() {
        let ports = ProcNetPortProbe.listeningPorts(Self.procNetTCP + "\n" + Self.procNetTCP6)
        XCTAssertEqual(ports, [0x55F3, 22, 0x1A0B])
        XCTAssertEqual(ProcNetPortProbe.listeningPorts(""), [])
        XCTAssertEqual(ProcNetPortProbe.listeningPorts("garbage\n  1: nonsense"), [])
    }

    /// The probe reads both files on the node with one `cat`, caches the answer briefly, and treats
    /// an unreadable /proc as "free" (docker's own bind still refuses a taken port).
    func testProcNetProbeRunsCatOnTheNode() {
        let runner = ContainerFakeRunner { argv in
            argv == ["cat", "/proc/net/tcp", "/proc/net/tcp6"] ? ok(Self.procNetTCP) : fail("unexpected")
        }
        let probe = ProcNetPortProbe(runner: runner)
        XCTAssertFalse(probe.isFree(0x55F3))
        XCTAssertFalse(probe.isFree(22))
        XCTAssertTrue(probe.isFree(0x1F90)) // only a connection, no listener
        XCTAssertEqual(runner.calls.count, 1)
        let broken = ProcNetPortProbe(runner: ContainerFakeRunner { _ in throw DbgboxError("lost: x") })
        XCTAssertTrue(broken.isFree(22))
    }

    /// The remote user comes from id and getent on the node, not from this machine's passwd.
    func testRemoteIdentityFromIdAndGetent() throws {
        let runner = ContainerFakeRunner { argv in
            switch argv {
            case ["id", "-u"]: return ok("4242\n")
            case ["id", "-g"]: return ok("777\n")
            case ["id", "-un"]: return ok("alice\n")
            case ["getent", "passwd", "alice"]: return ok("alice:x:4242:777:Alice:/cluster/home/alice:/bin/bash\n")
            default: return fail("unexpected \(argv)")
            }
        }
        let env = NodeEnvironment(runner: runner, remoteName: "node gpu07:22")
        XCTAssertEqual(try env.identity(requested: nil),
                       UserIdentity(name: "alice", uid: 4242, gid: 777, home: "/cluster/home/alice"))
        _ = assertOneLineError(try env.identity(requested: "bob"), contains: "--node USER@HOST")
    }

    func testRemoteRootIsRefused() {
        let runner = ContainerFakeRunner { argv in
            switch argv {
            case ["id", "-u"], ["id", "-g"]: return ok("0\n")
            case ["id", "-un"]: return ok("root\n")
            default: return ok("root:x:0:0:root:/root:/bin/bash\n")
            }
        }
        _ = assertOneLineError(try RemoteIdentity.query(runner: runner, node: "node n:22"), contains: "root")
        XCTAssertNil(try RemoteIdentity.parseHome(passwdLine: "broken"))
    }

    /// GPU variables are the node's (printenv there), filtered to the scheduler's three; a letter
    /// without an allocation says that ssh sessions don't see job variables.
    func testGPUVariablesAndNoAllocationMessage() throws {
        let runner = ContainerFakeRunner { argv in
            argv == ["printenv"] ? ok("PATH=/usr/bin\nCUDA_VISIBLE_DEVICES=1,3\nSLURM_JOB_GPUS=1,3\nX=Y=Z\n") : fail("unexpected")
        }
        let env = NodeEnvironment(runner: runner, remoteName: "node n:22")
        XCTAssertEqual(try env.gpuVariables(), ["CUDA_VISIBLE_DEVICES": "1,3", "SLURM_JOB_GPUS": "1,3"])
        let explained = env.explain(GPUError.noAllocation(letter: "V"))
        _ = assertOneLineError(try { throw explained }(), contains: "explicit ids")
        XCTAssertTrue("\(explained)".contains("node n:22"))
        XCTAssertEqual(NodeEnvironment.local().explain(GPUError.noAllocation(letter: "V")) as? GPUError,
                       GPUError.noAllocation(letter: "V"))
    }

    /// The node's files are read there and are never written.
    func testRemoteFilesReadOnly() {
        let gpus = "/var/spool/pbs/aux/gpus"
        let limit = String(FileKind.gpuFile.limit + 1)
        let runner = ContainerFakeRunner { argv in
            switch argv {
            case ["test", "-e", gpus], ["test", "-f", gpus], ["test", "-e", "/data"], ["test", "-e", "/big"], ["test", "-f", "/big"]:
                return ok()
            case ["head", "-c", limit, "--", gpus]: return ok("gpu07-gpu1\n")
            case ["head", "-c", limit, "--", "/big"]: return ok(String(repeating: "x", count: FileKind.gpuFile.limit + 1))
            default: return fail("No such file or directory")
            }
        }
        let files = RemoteFiles(runner: runner)
        XCTAssertEqual(try files.read(gpus, as: .gpuFile), Data("gpu07-gpu1\n".utf8))
        XCTAssertTrue(files.exists("/data"))
        XCTAssertFalse(files.exists("/nope"))
        _ = assertOneLineError(try files.read("/nope", as: .gpuFile), contains: "/nope")
        _ = assertOneLineError(try files.read("/data", as: .gpuFile), contains: "/data on the node: not a regular file")
        _ = assertOneLineError(try files.read("/big", as: .gpuFile), contains: "larger than 64 KiB")
        _ = assertOneLineError(try files.append(Data(), to: "/x", mode: 0o600), contains: "only reads")
    }

    /// argv → one exec command string: a POSIX shell splits it back into exactly the same words
    /// (spaces, quotes, $, backslashes, newlines, empty words are data, never syntax).
    func testShellQuotingRoundTripsThroughSh() throws {
        let argv = ["docker", "run", "-e", "DBGBOX_AUTHORIZED_KEY=ssh-ed25519 AAAAC3Nz it's me@laptop",
                    "--label", "x=$HOME `id` $(id) \\ \"q\"", "", "multi\nline", "*", "--name", "alice_01234"]
        let result = try LocalProcessRunner().run(["/bin/sh", "-c", "printf '%s\\0' " + shellQuote(argv)])
        XCTAssertEqual(result.exitCode, 0, result.stderrText)
        var words = result.stdout.split(separator: 0, omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }
        XCTAssertEqual(words.removeLast(), "")
        XCTAssertEqual(words, argv)
        XCTAssertEqual(shellQuote(["docker", "image", "inspect", "alice/ssh:latest"]), "docker image inspect alice/ssh:latest")
    }
}
