import XCTest
@testable import DbgboxKit
@testable import SSH

/// How a keyboard-interactive round is put to the person at the terminal.
final class HopLoginTests: XCTestCase {
    private final class Recorder: Prompter, @unchecked Sendable {
        var asked: [(String, Bool)] = []
        var answers: [String?]
        init(_ answers: [String?]) { self.answers = answers }
        var isInteractive: Bool { true }
        func confirm(_ question: String) -> Bool { false }
        func secret(_ prompt: String) -> String? { answer(prompt, echo: false) }
        func answer(_ prompt: String, echo: Bool) -> String? {
            asked.append((prompt, echo))
            return answers.removeFirst()
        }
    }

    func testPromptsAreNamedAndEchoedAsTheServerSays() {
        let challenge = KeyboardInteractiveChallenge(name: "PAM", instruction: "Two steps.", prompts: [
            KeyboardInteractivePrompt(text: "Password: ", echo: false),
            KeyboardInteractivePrompt(text: "Code (shown): ", echo: true),
        ])
        let recorder = Recorder(["secret", "123456"])
        XCTAssertEqual(HopLogin.answer(challenge, account: "alice@login", prompter: recorder), ["secret", "123456"])
        XCTAssertEqual(recorder.asked.map(\.0), ["Two steps.\n(alice@login) Password: ", "(alice@login) Code (shown): "])
        XCTAssertEqual(recorder.asked.map(\.1), [false, true])
    }

    func testAnUnansweredPromptGivesUpAndAnEmptyRoundAsksNothing() {
        let prompt = KeyboardInteractivePrompt(text: "Password: ", echo: false)
        let recorder = Recorder([nil])
        XCTAssertNil(HopLogin.answer(KeyboardInteractiveChallenge(name: "", instruction: "", prompts: [prompt, prompt]),
                                     account: "a@h", prompter: recorder))
        XCTAssertEqual(recorder.asked.count, 1)
        XCTAssertEqual(HopLogin.answer(KeyboardInteractiveChallenge(name: "", instruction: "Welcome", prompts: []),
                                       account: "a@h", prompter: recorder), [])
        XCTAssertEqual(recorder.asked.count, 1)
    }

    /// A prompter without an echoing reader of its own answers every prompt as a secret.
    func testThePrompterDefaultAnswersAsASecret() {
        struct SecretOnly: Prompter {
            var isInteractive: Bool { true }
            func confirm(_ question: String) -> Bool { false }
            func secret(_ prompt: String) -> String? { "s:" + prompt }
        }
        XCTAssertEqual(SecretOnly().answer("Code: ", echo: true), "s:Code: ")
    }
}
