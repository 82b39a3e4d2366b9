import Foundation
import XCTest
@testable import DbgboxKit
import SSH

/// Keyboard-interactive authentication against a real throwaway OpenSSH sshd that asks for the test
/// user's password through PAM: libssh2's callback, and HopLogin's fallback after keys (and after
/// a failed password), answered through an injected prompter.
final class KeyboardInteractiveTests: XCTestCase {
    private var sshd: TestSSHD?

    override func tearDown() {
        sshd?.stop()
        sshd = nil
        super.tearDown()
    }

    private func start(_ settings: KeyValuePairs<String, String>) throws -> TestSSHD {
        try PasswordLogin.requirePAM()
        let started = try TestSSHD(user: IT.testUser, authorizedKeys: "", settings: settings)
        sshd = started
        return started
    }

    private func connect(_ sshd: TestSSHD) throws -> SSHSession {
        let session = try SSHSession(host: "127.0.0.1", port: sshd.port)
        let key = try XCTUnwrap(session.hostKey)
        XCTAssertEqual(key.blob.base64EncodedString(), String(sshd.hostKeyLine.split(separator: " ")[1]))
        return session
    }

    func testTheClosureAnswersPAMsPromptWithEchoOff() throws {
        let sshd = try start(PasswordLogin.keyboardInteractiveOnly)
        try PasswordLogin.withTemporaryPassword { password in
            let session = try connect(sshd)
            defer { session.close() }
            let methods = session.authMethods(user: IT.testUser)
            XCTAssertTrue(methods.contains("keyboard-interactive") && !methods.contains("password"), "\(methods)")
            var rounds: [KeyboardInteractiveChallenge] = []
            try session.authenticate(user: IT.testUser) { challenge in
                rounds.append(challenge)
                return challenge.prompts.map { _ in password }
            }
            XCTAssertTrue(session.isAuthenticated)
            let prompts = rounds.flatMap(\.prompts)
            XCTAssertEqual(prompts.count, 1, "\(rounds)")
            XCTAssertTrue(prompts.first?.text.contains("assword") ?? false, "\(rounds)")
            XCTAssertEqual(prompts.first?.echo, false)
            let id = try session.exec("id -un")
            XCTAssertEqual(String(decoding: id.stdout, as: UTF8.self), "\(IT.testUser)\n")
        }
    }

    func testNoAnswerOrAWrongOneIsRefused() throws {
        let sshd = try start(PasswordLogin.keyboardInteractiveOnly)
        try PasswordLogin.withTemporaryPassword { password in
            let gaveUp = try connect(sshd)
            defer { gaveUp.close() }
            XCTAssertThrowsError(try gaveUp.authenticate(user: IT.testUser) { _ in nil }) { error in
                XCTAssertEqual((error as? SSHError)?.kind, .authentication, "\(error)")
            }
            XCTAssertFalse(gaveUp.isAuthenticated)

            let wrong = try connect(sshd)
            defer { wrong.close() }
            XCTAssertThrowsError(try wrong.authenticate(user: IT.testUser) { $0.prompts.map { _ in password + "x" } }) { error in
                XCTAssertEqual((error as? SSHError)?.kind, .authentication, "\(error)")
            }
            XCTAssertFalse(wrong.isAuthenticated)
        }
    }

    /// A key the host refuses, then keyboard-interactive (password not offered), asked through the prompter.
    func testHopLoginFallsBackToKeyboardInteractive() throws {
        let sshd = try start(PasswordLogin.keyboardInteractiveOnly)
        let dir = try IT.scratchDir("kbdint")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let key = "\(dir)/id_refused"
        XCTAssertTrue(try IT.runner.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key]).succeeded)
        let hop = TunnelHop(host: "127.0.0.1", port: Int(sshd.port), user: IT.testUser,
                            credentials: [.keyFile(path: key, passphrase: nil)], label: "login host")
        try PasswordLogin.withTemporaryPassword { password in
            let prompter = ScriptedPrompter([password])
            let session = try connect(sshd)
            defer { session.close() }
            try HopLogin.logIn(session, hop: hop, prompter: prompter, name: "login host \(hop.endpoint)")
            XCTAssertTrue(session.isAuthenticated)
            XCTAssertEqual(prompter.prompts.count, 1)
            XCTAssertEqual(prompter.prompts.first?.prompt, "(\(IT.testUser)@127.0.0.1) Password: ")
            XCTAssertEqual(prompter.prompts.first?.echo, false)

            // A wrong answer: one line naming what was tried and what the host offers.
            let again = try connect(sshd)
            defer { again.close() }
            XCTAssertThrowsError(try HopLogin.logIn(again, hop: hop, prompter: ScriptedPrompter(["wrong"]), name: "login host")) { error in
                let text = "\(error)"
                XCTAssertEqual(text.split(separator: "\n").count, 1, text)
                XCTAssertTrue(text.contains("with \(key), keyboard-interactive (the host offers: "), text)
            }
            // Nobody to ask: nothing is asked, and the advice says so.
            let batch = try connect(sshd)
            defer { batch.close() }
            XCTAssertThrowsError(try HopLogin.logIn(batch, hop: hop, prompter: NoPrompter(), name: "login host")) { error in
                XCTAssertTrue("\(error)".contains("run from a terminal"), "\(error)")
            }
        }
    }

    /// The host offers both: the password is asked first; when it fails, keyboard-interactive.
    func testKeyboardInteractiveAfterAFailedPassword() throws {
        let sshd = try start(PasswordLogin.passwordAndKeyboardInteractive)
        let hop = TunnelHop(host: "127.0.0.1", port: Int(sshd.port), user: IT.testUser, credentials: [], label: "login host")
        try PasswordLogin.withTemporaryPassword { password in
            let prompter = ScriptedPrompter(["not-the-password", password])
            let session = try connect(sshd)
            defer { session.close() }
            XCTAssertTrue(Set(session.authMethods(user: IT.testUser)).isSuperset(of: ["password", "keyboard-interactive"]))
            try HopLogin.logIn(session, hop: hop, prompter: prompter, name: "login host")
            XCTAssertTrue(session.isAuthenticated)
            XCTAssertEqual(prompter.prompts.map(\.prompt),
                           ["\(IT.testUser)@127.0.0.1's password: ", "(\(IT.testUser)@127.0.0.1) Password: "])
        }
    }
}
