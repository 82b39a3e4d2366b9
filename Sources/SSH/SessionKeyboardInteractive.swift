import CLibSSH2
#if canImport(Glibc)
import Glibc
#endif

/// One prompt of a keyboard-interactive round, e.g. PAM's "Password: ". (Made here only, from the
/// server's message; callers read it.)
public struct KeyboardInteractivePrompt: Sendable, Equatable {
    public var text: String
    /// Whether the answer may be shown as it is typed (false for passwords and one-time codes).
    public var echo: Bool
}

/// One round of keyboard-interactive authentication: the server's name and instruction (either may
/// be empty) and its prompts (a round may have none).
public struct KeyboardInteractiveChallenge: Sendable, Equatable {
    public var name: String
    public var instruction: String
    public var prompts: [KeyboardInteractivePrompt]
}

extension SSHSession {
    /// Keyboard-interactive authentication (RFC 4256): the server asks, `respond` answers each round's
    /// prompts in order. Returning nil (or a wrong number of answers) gives up: empty answers are
    /// sent and this throws. This module asks nobody itself; the caller's closure does.
    public func authenticate(user: String, keyboardInteractive respond: (KeyboardInteractiveChallenge) -> [String]?) throws {
        try withoutActuallyEscaping(respond) { respond in
            let responder = KeyboardInteractiveResponder(respond)
            // The callback finds the responder through the session's abstract pointer, which this
            // blocking session does not otherwise use; it is put back before returning.
            let abstract = libssh2_session_abstract(raw)
            let previous = abstract?.pointee
            abstract?.pointee = Unmanaged.passUnretained(responder).toOpaque()
            defer { abstract?.pointee = previous }
            let rc = libssh2_userauth_keyboard_interactive_ex(raw, user, UInt32(user.utf8.count)) {
                name, nameLength, instruction, instructionLength, count, prompts, responses, abstract in
                guard let context = abstract?.pointee else { return }
                let responder = Unmanaged<KeyboardInteractiveResponder>.fromOpaque(context).takeUnretainedValue()
                responder.answer(name: SSHSession.text(name, Int(nameLength)),
                                 instruction: SSHSession.text(instruction, Int(instructionLength)),
                                 count: Int(count), prompts: prompts, responses: responses)
            }
            if rc != 0 {
                if responder.gaveUp {
                    throw SSHError(kind: .authentication, code: rc, message: "no answer to the server's prompts",
                                   call: "libssh2_userauth_keyboard_interactive_ex")
                }
                throw SSHError.last(raw, call: "libssh2_userauth_keyboard_interactive_ex", code: rc)
            }
        }
    }

    /// Text libssh2 hands over with a length (not necessarily NUL-terminated).
    static func text(_ pointer: UnsafePointer<CChar>?, _ length: Int) -> String {
        guard let pointer, length > 0 else { return "" }
        return String(decoding: UnsafeRawBufferPointer(start: pointer, count: length), as: UTF8.self)
    }
}

/// Holds the caller's closure for the C callback and fills libssh2's response array.
private final class KeyboardInteractiveResponder {
    let respond: (KeyboardInteractiveChallenge) -> [String]?
    private(set) var gaveUp = false

    init(_ respond: @escaping (KeyboardInteractiveChallenge) -> [String]?) { self.respond = respond }

    func answer(name: String, instruction: String, count: Int,
                prompts: UnsafePointer<LIBSSH2_USERAUTH_KBDINT_PROMPT>?,
                responses: UnsafeMutablePointer<LIBSSH2_USERAUTH_KBDINT_RESPONSE>?) {
        var asked: [KeyboardInteractivePrompt] = []
        if let prompts {
            for i in 0..<max(count, 0) {
                let prompt = prompts[i]
                let text = prompt.text.map { SSHSession.text(UnsafePointer($0), Int(prompt.length)) } ?? ""
                asked.append(KeyboardInteractivePrompt(text: text, echo: prompt.echo != 0))
            }
        }
        guard let answers = respond(KeyboardInteractiveChallenge(name: name, instruction: instruction, prompts: asked)),
              answers.count == asked.count else {
            gaveUp = true
            return  // libssh2 sends the (empty) responses it allocated
        }
        guard let responses else { return }
        for (i, answer) in answers.enumerated() {
            // libssh2 frees each text with the session's free(): the session uses the default allocator.
            let bytes = Array(answer.utf8)
            guard let copy = malloc(max(bytes.count, 1))?.assumingMemoryBound(to: CChar.self) else { continue }
            bytes.withUnsafeBytes { source in
                if let base = source.baseAddress { memcpy(copy, base, bytes.count) }
            }
            responses[i].text = copy
            responses[i].length = UInt32(bytes.count)
        }
    }
}
