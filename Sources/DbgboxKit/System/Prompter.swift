import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Questions to the person at the terminal (host keys, passphrases). Domain code asks through
/// this protocol; without a terminal, `NoPrompter` answers nothing and callers refuse instead.
public protocol Prompter: Sendable {
    /// Whether anyone can be asked.
    var isInteractive: Bool { get }
    /// Asks a yes/no question; true only for "yes".
    func confirm(_ question: String) -> Bool
    /// Reads a secret without echo; nil when none could be read.
    func secret(_ prompt: String) -> String?
    /// Reads an answer, shown as typed only when `echo` (a server's keyboard-interactive prompt says
    /// which); nil when none could be read.
    func answer(_ prompt: String, echo: Bool) -> String?
}

extension Prompter {
    /// Without an echoing reader of its own, a prompter answers every prompt as a secret.
    public func answer(_ prompt: String, echo: Bool) -> String? { secret(prompt) }
}

/// There is nobody to ask.
public struct NoPrompter: Prompter {
    public init() {}
    public var isInteractive: Bool { false }
    public func confirm(_ question: String) -> Bool { false }
    public func secret(_ prompt: String) -> String? { nil }
}

/// Asks on /dev/tty, as ssh does, so that stdin and stdout stay free for data.
public struct TerminalPrompter: Prompter {
    public init() {}

    public var isInteractive: Bool {
        let fd = open("/dev/tty", O_RDWR | O_CLOEXEC)
        guard fd >= 0 else { return false }
        close(fd)
        return true
    }

    public func confirm(_ question: String) -> Bool {
        guard let answer = ask(question + " (yes/no): ", echo: true) else { return false }
        return answer.trimmingCharacters(in: .whitespaces).lowercased() == "yes"
    }

    public func secret(_ prompt: String) -> String? {
        ask(prompt, echo: false)
    }

    public func answer(_ prompt: String, echo: Bool) -> String? {
        ask(prompt, echo: echo)
    }

    /// Echo goes off before the prompt is written (as OpenSSH's readpassphrase does): whatever is
    /// typed once the prompt shows is never echoed, nor flushed away.
    private func ask(_ prompt: String, echo: Bool) -> String? {
        let fd = open("/dev/tty", O_RDWR | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var saved = termios()
        let haveTermios = tcgetattr(fd, &saved) == 0
        if !echo && haveTermios {
            var quiet = saved
            quiet.c_lflag &= ~tcflag_t(ECHO)
            tcsetattr(fd, TCSAFLUSH, &quiet)
        }
        _ = prompt.withCString { write(fd, $0, strlen($0)) }
        defer {
            if !echo && haveTermios {
                tcsetattr(fd, TCSAFLUSH, &saved)
                _ = "\n".withCString { write(fd, $0, 1) }
            }
        }
        var line = [UInt8]()
        var byte: UInt8 = 0
        while read(fd, &byte, 1) == 1 {
            if byte == UInt8(ascii: "\n") { return String(decoding: line, as: UTF8.self) }
            line.append(byte)
        }
        return line.isEmpty ? nil : String(decoding: line, as: UTF8.self)
    }
}
