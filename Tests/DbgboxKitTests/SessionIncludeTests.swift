import Foundation
import XCTest
@testable import DbgboxKit

/// The Include line at the top of ~/.ssh/config: every other byte stays, mode and owner stay,
/// read-only files get an instruction, and only the line dbgbox added is ever removed.
final class SessionIncludeTests: XCTestCase {
    var home = ""
    var sshConfig: String { "\(home)/.ssh/config" }
    let fs = LocalFileSystem()
    let line = "Include ~/.ssh/dbgbox/config"

    override func setUpWithError() throws {
        home = NSTemporaryDirectory() + "dbgbox-include-\(UUID().uuidString.prefix(8))"
        try fs.createDirectory("\(home)/.ssh", mode: 0o700)
    }

    override func tearDownWithError() throws {
        _ = try? LocalProcessRunner().run(["chmod", "-R", "u+w", home])
        try? FileManager.default.removeItem(atPath: home)
    }

    var dbgboxConfig: SSHClientConfigFile { SSHClientConfigFile(path: SSHClientConfigFile.defaultPath(home: home)) }
    var include: SSHConfigInclude { SSHConfigInclude(home: home, dbgboxConfig: dbgboxConfig) }

    func bytes(_ path: String) throws -> String { String(decoding: try fs.read(path), as: UTF8.self) }
    func write(_ text: String, _ path: String, mode: mode_t = 0o600) throws {
        try fs.writeAtomically(Data(text.utf8), to: path, mode: mode)
    }
    func inode(_ path: String) throws -> Int? {
        try FileManager.default.attributesOfItem(atPath: path)[.systemFileNumber] as? Int
    }

    /// Prepending keeps every byte after the line; removing gives back the original exactly.
    func testPrependAndRemoveKeepEveryOtherByte() throws {
        let cases: [(String, String)] = [
            ("comments", "# my config\n# second comment\n\nHost a\n    User b\n"),
            ("CRLF", "Host a\r\n    User b\r\n"),
            ("no final newline", "Host a\n    User b"),
            ("Host * first", "Host *\n    Port 2222\n    User someone\n    IdentityFile ~/.ssh/id_x\n"),
            ("Match blocks", "Match host *.cluster exec \"true\"\n    ProxyJump login\nMatch all\n    ForwardAgent no\n"),
            ("Include of other files", "Include ~/.ssh/work/*.conf\nInclude other\n\nHost x\n"),
            ("empty", ""),
            ("blank lines and tabs", "\n\n\t\n  Host\tspaced  \n"),
            ("user fixture", String(decoding: try SessionHostBlockTests.fixture("user-config-host-star"), as: UTF8.self)),
        ]
        for (label, original) in cases {
            try write(original, sshConfig, mode: 0o640)
            XCTAssertEqual(try include.ensureInclude(), .added, label)
            let eol = original.hasPrefix("Host a\r\n") ? "\r\n" : "\n"
            XCTAssertEqual(try bytes(sshConfig), line + eol + original, label)
            XCTAssertEqual(try fs.mode(of: sshConfig), 0o640, label)
            XCTAssertEqual(try include.ensureInclude(), .alreadyFirst, label)
            XCTAssertEqual(try include.removeIncludeIfUnused(), .removed, label)
            XCTAssertEqual(try bytes(sshConfig), original, label)
            XCTAssertEqual(try fs.mode(of: sshConfig), 0o640, label)
            XCTAssertEqual(try include.removeIncludeIfUnused(), .notAddedByDbgbox, label)
        }
    }

    func testLineAlreadyFirstIsNotWrittenAndNotRemoved() throws {
        for original in ["\(line)\nHost *\n  User x\n",
                         "# comments may come first\n\n\(line)\r\n",
                         "include \(home)/.ssh/dbgbox/config\n",
                         "Include dbgbox/config ~/.ssh/other\n",
                         "Include ~/.ssh/*/config\n"] {
            try write(original, sshConfig)
            let before = try inode(sshConfig)
            XCTAssertEqual(try include.ensureInclude(), .alreadyFirst, original)
            XCTAssertEqual(try inode(sshConfig), before, original)
            XCTAssertEqual(try include.removeIncludeIfUnused(), .notAddedByDbgbox, original)
            XCTAssertEqual(try bytes(sshConfig), original, original)
        }
    }

    /// The user's own Include below other lines is respected: nothing written, a warning offered.
    func testLineElsewhereIsLeftWithAWarning() throws {
        let original = "Host *\n    Port 2222\n\nInclude ~/.ssh/dbgbox/config\n"
        try write(original, sshConfig)
        let outcome = try include.ensureInclude()
        XCTAssertEqual(outcome, .presentElsewhere(line: 4))
        XCTAssertEqual(try bytes(sshConfig), original)
        let warning = try XCTUnwrap(include.instruction(for: outcome))
        XCTAssertTrue(warning.contains("line 4"), warning)
        XCTAssertFalse(warning.contains("\n"))
        XCTAssertNil(include.instruction(for: .added))
    }

    func testMissingFileIsCreatedPrivateAndDeletedAgain() throws {
        try FileManager.default.removeItem(atPath: "\(home)/.ssh")
        XCTAssertEqual(try include.ensureInclude(), .created)
        XCTAssertEqual(try bytes(sshConfig), line + "\n")
        XCTAssertEqual(try fs.mode(of: sshConfig), 0o600)
        XCTAssertEqual(try fs.mode(of: "\(home)/.ssh"), 0o700)
        XCTAssertEqual(try include.ensureInclude(), .alreadyFirst)
        XCTAssertEqual(try include.removeIncludeIfUnused(), .removedFile)
        XCTAssertFalse(fs.exists(sshConfig))
        XCTAssertFalse(fs.exists(include.ownershipPath))
    }

    func testLineStaysWhileBlocksRemain() throws {
        try write("Host a\n", sshConfig)
        let block = SessionHostBlock(name: "foo", port: 2201, user: "u", identityFile: "/k", knownHostsFile: "/kh")
        try dbgboxConfig.upsert(block)
        XCTAssertEqual(try include.ensureInclude(), .added)
        XCTAssertEqual(try include.removeIncludeIfUnused(), .stillInUse(count: 1))
        XCTAssertEqual(try bytes(sshConfig), line + "\nHost a\n")
        try dbgboxConfig.remove(name: "foo")
        XCTAssertEqual(try include.removeIncludeIfUnused(), .removed)
        XCTAssertEqual(try bytes(sshConfig), "Host a\n")
    }

    /// A line dbgbox added but the user then moved or changed is left alone.
    func testEditedLineIsNotRemoved() throws {
        try write("Host a\n", sshConfig)
        XCTAssertEqual(try include.ensureInclude(), .added)
        let edited = "Host a\n" + line + "\n"
        try write(edited, sshConfig)
        XCTAssertEqual(try include.removeIncludeIfUnused(), .changedByUser)
        XCTAssertEqual(try bytes(sshConfig), edited)
        XCTAssertEqual(try include.removeIncludeIfUnused(), .notAddedByDbgbox)
    }

    func testReadOnlyFileGetsAnInstructionAndIsUntouched() throws {
        let original = "Host *\n  User me\n"
        try write(original, sshConfig, mode: 0o444)
        let before = try inode(sshConfig)
        let outcome = try include.ensureInclude()
        guard case .notWritable(let path, let reason) = outcome else { return XCTFail("\(outcome)") }
        XCTAssertEqual(path, sshConfig)
        XCTAssertTrue(reason.contains("read-only"), reason)
        let instruction = try XCTUnwrap(include.instruction(for: outcome))
        XCTAssertTrue(instruction.hasSuffix(": \(line)"), instruction)
        XCTAssertFalse(instruction.contains("\n"))
        XCTAssertEqual(try bytes(sshConfig), original)
        XCTAssertEqual(try inode(sshConfig), before)
        XCTAssertEqual(try fs.mode(of: sshConfig), 0o444)
        XCTAssertEqual(try include.removeIncludeIfUnused(), .notAddedByDbgbox)
    }

    /// Made read-only after dbgbox added the line: removal says what to remove by hand.
    func testReadOnlyFileOnRemovalGetsAnInstruction() throws {
        try write("Host a\n", sshConfig)
        XCTAssertEqual(try include.ensureInclude(), .added)
        try fs.setMode(0o400, of: sshConfig)
        let outcome = try include.removeIncludeIfUnused()
        guard case .notWritable = outcome else { return XCTFail("\(outcome)") }
        XCTAssertEqual(try bytes(sshConfig), line + "\nHost a\n")
        XCTAssertTrue(try XCTUnwrap(include.instruction(for: outcome)).contains("`\(line)`"))
    }

    /// A config symlinked into a dotfiles directory is edited where it points; the link stays.
    func testSymlinkedConfigIsEditedThroughTheLink() throws {
        try fs.createDirectory("\(home)/dotfiles", mode: 0o755)
        let target = "\(home)/dotfiles/ssh_config"
        try write("Host a\n", target, mode: 0o644)
        try FileManager.default.createSymbolicLink(atPath: sshConfig, withDestinationPath: "../dotfiles/ssh_config")
        XCTAssertEqual(try include.ensureInclude(), .added)
        XCTAssertEqual(try FileManager.default.destinationOfSymbolicLink(atPath: sshConfig), "../dotfiles/ssh_config")
        XCTAssertEqual(try bytes(target), line + "\nHost a\n")
        XCTAssertEqual(try fs.mode(of: target), 0o644)
        XCTAssertEqual(try include.removeIncludeIfUnused(), .removed)
        XCTAssertEqual(try bytes(target), "Host a\n")
        XCTAssertEqual(try FileManager.default.destinationOfSymbolicLink(atPath: sshConfig), "../dotfiles/ssh_config")
    }

    /// home-manager's layout: a link into a read-only store directory holding a 0444 file.
    func testSymlinkIntoReadOnlyStoreGetsAnInstruction() throws {
        let store = "\(home)/nix/store/abc-home-manager-files/.ssh"
        try fs.createDirectory(store, mode: 0o755)
        try write("Host *\n  ServerAliveInterval 30\n", "\(store)/config", mode: 0o444)
        try fs.setMode(0o555, of: store)
        try FileManager.default.createSymbolicLink(atPath: sshConfig, withDestinationPath: "\(store)/config")
        let outcome = try include.ensureInclude()
        guard case .notWritable(let path, _) = outcome else { return XCTFail("\(outcome)") }
        XCTAssertEqual(path, sshConfig)
        XCTAssertEqual(try bytes(sshConfig), "Host *\n  ServerAliveInterval 30\n")
        XCTAssertNotNil(try? FileManager.default.destinationOfSymbolicLink(atPath: sshConfig))
    }

    /// Root editing a user's file (as with --user) keeps the file's owner.
    func testOwnerIsKept() throws {
        try XCTSkipUnless(geteuid() == 0, "needs root to chown")
        try write("Host a\n", sshConfig)
        XCTAssertEqual(chown(sshConfig, 1234, 1234), 0)
        XCTAssertEqual(try include.ensureInclude(), .added)
        let attributes = try FileManager.default.attributesOfItem(atPath: sshConfig)
        XCTAssertEqual(attributes[.ownerAccountID] as? Int, 1234)
        XCTAssertEqual(attributes[.groupOwnerAccountID] as? Int, 1234)
    }

    /// The resolver that matches `ssh -G` sees dbgbox's values even under a `Host *` at the top.
    func testResolverSeesTheBlockDespiteHostStar() throws {
        try fs.writeAtomically(try SessionHostBlockTests.fixture("user-config-host-star"), to: sshConfig, mode: 0o600)
        let block = SessionHostBlock(name: "foo", port: 2201, user: "alice", identityFile: "\(home)/id dbgbox",
                                     knownHostsFile: PinnedHostKeys.defaultPath(home: home))
        try dbgboxConfig.upsert(block)
        XCTAssertEqual(try include.ensureInclude(), .added)
        let resolver = SSHConfigResolver(home: home, userName: "someone-else", localHostName: "laptop",
                                         systemConfigPath: "/nonexistent", environment: [:])
        let resolved = try resolver.resolve(spec: HostSpec(host: "dbgbox-foo"))
        XCTAssertEqual(resolved.hostName, "127.0.0.1")
        XCTAssertEqual(resolved.port, 2201)
        XCTAssertEqual(resolved.user, "alice")
        XCTAssertEqual(resolved.identityFiles.first, "\(home)/id dbgbox")
        XCTAssertTrue(resolved.identitiesOnly)
        XCTAssertEqual(resolved.hostKeyAlias, "dbgbox-foo")
        XCTAssertEqual(resolved.userKnownHostsFiles, [PinnedHostKeys.defaultPath(home: home)])
        XCTAssertEqual(resolved.strictHostKeyChecking, .yes)
        // Other hosts are as before.
        XCTAssertEqual(try resolver.resolve(spec: HostSpec(host: "elsewhere")).port, 2222)
    }
}
