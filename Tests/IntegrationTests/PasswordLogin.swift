import Foundation
import XCTest
@testable import DbgboxKit

/// What the password and keyboard-interactive tests need: a throwaway sshd that asks for the
/// password through PAM, a known password on the test user for a while, and a terminal to answer on.
enum PasswordLogin {
    /// Keyboard-interactive only. Without PAM, Debian's OpenSSH offers keyboard-interactive but has no
    /// device to ask with (bsdauth is OpenBSD's), so the login always fails: PAM asks "Password: ".
    static let keyboardInteractiveOnly: KeyValuePairs<String, String> = [
        "UsePAM": "yes", "KbdInteractiveAuthentication": "yes", "PasswordAuthentication": "no",
    ]
    /// Both "password" and "keyboard-interactive", through PAM.
    static let passwordAndKeyboardInteractive: KeyValuePairs<String, String> = [
        "UsePAM": "yes", "KbdInteractiveAuthentication": "yes", "PasswordAuthentication": "yes",
    ]

    static func requirePAM(file: StaticString = #filePath, line: UInt = #line) throws {
        try IT.require(getuid() == 0, "root (to set the test user's password and run sshd with PAM)", file: file, line: line)
        try IT.require(FileManager.default.isReadableFile(atPath: "/etc/pam.d/sshd"), "PAM for sshd (/etc/pam.d/sshd, openssh-server)", file: file, line: line)
        try IT.require(LocalProcessRunner.resolve("chpasswd") != nil, "chpasswd (passwd)", file: file, line: line)
    }

    /// Gives the test user a random password for the duration of `body`, then puts the shadow
    /// field back as it was (scripts/test.sh leaves `*`: no password).
    static func withTemporaryPassword<T>(_ body: (String) throws -> T) throws -> T {
        try requirePAM()
        let shadow = try IT.runner.run(["getent", "shadow", IT.testUser])
        let fields = shadow.stdoutText.split(separator: ":", omittingEmptySubsequences: false)
        guard shadow.succeeded, fields.count > 1 else { throw DbgboxError("no shadow entry for \(IT.testUser)") }
        let saved = String(fields[1])
        let password = "kbd-\(UUID().uuidString.prefix(12))"
        let set = try IT.runner.run(["chpasswd"], input: Data("\(IT.testUser):\(password)\n".utf8))
        guard set.succeeded else { throw DbgboxError("chpasswd: \(set.stderrText)") }
        defer { _ = try? IT.runner.run(["usermod", "-p", saved, IT.testUser]) }
        return try body(password)
    }

    /// Runs `argv` on a fresh pseudo-terminal (its controlling terminal, so /dev/tty is it) and
    /// types each answer once its prompt has appeared, in order. Returns the exit code and all the
    /// terminal showed. python3's `os.forkpty` makes the terminal (python3-minimal has it).
    static func onTerminal(_ argv: [String], answering: [(prompt: String, answer: String)],
                           timeout: Int = 60) throws -> (exitCode: Int32, transcript: String) {
        let python = "/usr/bin/python3"
        try IT.require(FileManager.default.isExecutableFile(atPath: python), "python3 (python3-minimal)")
        let pairs = answering.flatMap { [$0.prompt, $0.answer] }
        let result = try IT.runner.run([python, "-c", driver, String(timeout)] + pairs + ["--"] + argv)
        return (result.exitCode, result.stdoutText)
    }

    /// argv: TIMEOUT PROMPT ANSWER ... -- COMMAND...; prints the transcript, exits with the command's code.
    private static let driver = #"""
    import os, select, signal, sys, time
    sep = sys.argv.index("--")
    timeout, pairs, argv = float(sys.argv[1]), sys.argv[2:sep], sys.argv[sep + 1:]
    todo = [(pairs[i].encode(), pairs[i + 1].encode()) for i in range(0, len(pairs), 2)]
    pid, fd = os.forkpty()
    if pid == 0:
        try:
            os.execvp(argv[0], argv)
        finally:
            os._exit(127)
    out, seen, deadline = b"", 0, time.monotonic() + timeout
    while True:
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            out += b"\n[timed out]\n"
            break
        ready, _, _ = select.select([fd], [], [], 0.2)
        if not ready:
            continue
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            chunk = b""
        if not chunk:
            break
        out += chunk
        while todo and todo[0][0] in out[seen:]:
            seen = out.index(todo[0][0], seen) + len(todo[0][0])
            os.write(fd, todo.pop(0)[1] + b"\n")
    _, status = os.waitpid(pid, 0)
    sys.stdout.write(out.decode("utf-8", "replace"))
    code = os.waitstatus_to_exitcode(status)
    sys.exit(code if code >= 0 else 128 - code)
    """#
}

/// Answers prompts from a script and records what was asked, for logins tested without a terminal.
final class ScriptedPrompter: Prompter, @unchecked Sendable {
    private let lock = NSLock()
    private var answers: [String]
    private var asked: [(prompt: String, echo: Bool)] = []

    init(_ answers: [String]) { self.answers = answers }

    var isInteractive: Bool { true }
    func confirm(_ question: String) -> Bool { false }
    func secret(_ prompt: String) -> String? { answer(prompt, echo: false) }
    func answer(_ prompt: String, echo: Bool) -> String? {
        lock.withLock {
            asked.append((prompt, echo))
            return answers.isEmpty ? nil : answers.removeFirst()
        }
    }
    var prompts: [(prompt: String, echo: Bool)] { lock.withLock { asked } }
}
