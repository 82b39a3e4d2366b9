import Foundation
import XCTest
@testable import DbgboxKit

/// `dbgbox keygen`'s file handling, on a temp directory.
final class KeysPairWriterTests: XCTestCase {
    var dir = ""

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "dbgbox-keys-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: dir)
    }

    func testWritesPairWithModesAndCreatesDirectory0700() throws {
        let keyDir = "\(dir)/home/.ssh"
        let result = try KeyPairWriter().write(KeygenRequest(directory: keyDir, comment: "u@h"))
        XCTAssertEqual(result.privateKeyPath, "\(keyDir)/id_dbgbox")
        XCTAssertEqual(result.publicKeyPath, "\(keyDir)/id_dbgbox.pub")
        let fs = LocalFileSystem()
        XCTAssertEqual(try fs.mode(of: keyDir), 0o700)
        XCTAssertEqual(try fs.mode(of: result.privateKeyPath), 0o600)
        XCTAssertEqual(try fs.mode(of: result.publicKeyPath), 0o644)
        let key = try OpenSSHPrivateKey(fileContents: try fs.read(result.privateKeyPath))
        XCTAssertEqual(key.publicKey, result.publicKey)
        XCTAssertEqual(try fs.read(result.publicKeyPath), Data("\(result.publicKey.line)\n".utf8))
        XCTAssertNil(result.gitWorkTree)
    }

    func testRefusesToOverwriteWithoutForceAndTouchesNothing() throws {
        let writer = KeyPairWriter()
        let first = try writer.write(KeygenRequest(name: "a", directory: dir, comment: "one"))
        let before = try [first.privateKeyPath, first.publicKeyPath].map { try LocalFileSystem().read($0) }
        XCTAssertThrowsError(try writer.write(KeygenRequest(name: "a", directory: dir, comment: "two"))) { error in
            XCTAssertEqual(error as? KeygenError, .alreadyExists(first.privateKeyPath))
        }
        let after = try [first.privateKeyPath, first.publicKeyPath].map { try LocalFileSystem().read($0) }
        XCTAssertEqual(before, after)

        // Only the .pub left over also blocks, and the private key is not created.
        try LocalFileSystem().remove(first.privateKeyPath)
        XCTAssertThrowsError(try writer.write(KeygenRequest(name: "a", directory: dir, comment: "two")))
        XCTAssertFalse(LocalFileSystem().exists(first.privateKeyPath))

        let forced = try writer.write(KeygenRequest(name: "a", directory: dir, comment: "two", force: true))
        XCTAssertEqual(forced.publicKey.comment, "two")
    }

    func testInvalidNamesAndTypes() {
        for name in ["", "a/b", ".hidden", "..", "x\ny"] {
            XCTAssertThrowsError(try KeyPairWriter.validate(name: name), name)
        }
        XCTAssertNoThrow(try KeyPairWriter.validate(name: "work-gpu_1"))
        XCTAssertEqual(try SSHKeyAlgorithm(argument: "ed25519"), .ed25519)
        XCTAssertEqual(try SSHKeyAlgorithm(argument: "ECDSA"), .ecdsa)
        XCTAssertThrowsError(try SSHKeyAlgorithm(argument: "rsa")) { XCTAssertEqual($0 as? KeygenError, .rsaRefused) }
        XCTAssertThrowsError(try SSHKeyAlgorithm(argument: "dsa")) { XCTAssertEqual($0 as? KeygenError, .unknownType("dsa")) }
        XCTAssertTrue(KeygenError.rsaRefused.description.contains("rsa-sha2-256/512"))
    }

    func testDirectoryThatIsAFileIsRefused() throws {
        let file = "\(dir)/plain"
        try LocalFileSystem().writeAtomically(Data(), to: file, mode: 0o600)
        XCTAssertThrowsError(try KeyPairWriter().write(KeygenRequest(directory: file, comment: ""))) {
            XCTAssertEqual($0 as? KeygenError, .notADirectory(file))
        }
    }

    func testPublicWriteFailureRemovesThePrivateKey() throws {
        let fs = FailingPublicWrites()
        XCTAssertThrowsError(try KeyPairWriter(fs: fs).write(KeygenRequest(directory: dir, comment: "")))
        XCTAssertFalse(LocalFileSystem().exists("\(dir)/id_dbgbox"))
        XCTAssertFalse(LocalFileSystem().exists("\(dir)/id_dbgbox.pub"))
    }

    func testGitWorkTreeIsFoundAbove() throws {
        let repo = "\(dir)/repo"
        try FileManager.default.createDirectory(atPath: "\(repo)/.git", withIntermediateDirectories: true)
        let result = try KeyPairWriter().write(KeygenRequest(directory: "\(repo)/keys/deep", comment: ""))
        XCTAssertEqual(result.gitWorkTree, repo)
        // A .git file (worktrees, submodules) counts too.
        let sub = "\(dir)/sub"
        try FileManager.default.createDirectory(atPath: sub, withIntermediateDirectories: true)
        try LocalFileSystem().writeAtomically(Data("gitdir: x\n".utf8), to: "\(sub)/.git", mode: 0o644)
        XCTAssertEqual(KeyPairWriter().gitWorkTree(containing: "\(sub)/a/../b"), sub)
    }

    func testTildeExpansion() {
        XCTAssertEqual(TildePath.expand("~", home: "/h/u"), "/h/u")
        XCTAssertEqual(TildePath.expand("~/.ssh", home: "/h/u"), "/h/u/.ssh")
        XCTAssertEqual(TildePath.expand("/abs/~x", home: "/h/u"), "/abs/~x")
        XCTAssertEqual(TildePath.expand("~root/k", home: "/h/u"), "\(UserIdentity.lookup(name: "root")!.home)/k")
        XCTAssertEqual(TildePath.expand("~no-such-user-xyz/k", home: "/h/u"), "~no-such-user-xyz/k")
        XCTAssertEqual(TildePath.home(environment: ["HOME": "/x"]), "/x")
        XCTAssertEqual(TildePath.home(environment: [:]), UserIdentity.lookup(uid: getuid())!.home)
    }
}

/// The real file system, except that writing a `.pub` file fails.
private struct FailingPublicWrites: FileSystem {
    let base = LocalFileSystem()
    func read(_ path: String, as kind: FileKind) throws -> Data { try base.read(path, as: kind) }
    func exists(_ path: String) -> Bool { base.exists(path) }
    func isDirectory(_ path: String) -> Bool { base.isDirectory(path) }
    func writeAtomically(_ data: Data, to path: String, mode: mode_t?) throws {
        if path.hasSuffix(".pub") { throw FileSystemError.io(path: path, operation: "write", errno: ENOSPC) }
        try base.writeAtomically(data, to: path, mode: mode)
    }
    func append(_ data: Data, to path: String, mode: mode_t) throws { try base.append(data, to: path, mode: mode) }
    func createDirectory(_ path: String, mode: mode_t) throws { try base.createDirectory(path, mode: mode) }
    func remove(_ path: String) throws { try base.remove(path) }
    func mode(of path: String) throws -> mode_t { try base.mode(of: path) }
    func setMode(_ mode: mode_t, of path: String) throws { try base.setMode(mode, of: path) }
    func withExclusiveLock<T>(_ lockPath: String, _ body: () throws -> T) throws -> T { try base.withExclusiveLock(lockPath, body) }
}
