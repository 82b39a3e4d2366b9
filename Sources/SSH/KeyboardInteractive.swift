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

/// Holds the caller's closure for the C callback and fills libssh2's response array.
final class KeyboardInteractiveResponder {
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
                let text = prompt.text.map { LibSSH2Auth.text(UnsafePointer($0), Int(prompt.length)) } ?? ""
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
