import Foundation

/// The chain's ssh flags `up` was given (-F, --known-hosts, -i, --node-via; paths absolute), kept
/// in `SessionManager.optionsPath(name)` for `down` and passed to the background tunnel.
public struct SessionOptions: Codable, Sendable, Equatable {
    public var flags: [String]

    public init(flags: [String]) {
        self.flags = flags
    }

    public func encoded() throws -> Data { try JSONEncoder().encode(self) }

    /// The flags recorded for session `name`; nil when none were (or the file is unreadable).
    public static func recorded(_ name: String, manager: SessionManager) throws -> [String]? {
        let path = manager.optionsPath(name)
        guard manager.fs.exists(path) else { return nil }
        let data = try manager.fs.read(path, as: .sessionRecord)
        return (try? JSONDecoder().decode(SessionOptions.self, from: data))?.flags
    }
}

extension SessionManager {
    /// Test only: with DBGBOX_TEST_PAUSE_AFTER=STEP (image, container, tunnel, record or host block),
    /// `up` says so on stderr and waits after that step until a signal arrives (at most 60 s), so a
    /// test can interrupt it at a known point.
    public static func testPause(environment: [String: String], interruption: Interruption,
                                 context: CommandContext) -> (String) -> Void {
        guard let pauseAfter = environment["DBGBOX_TEST_PAUSE_AFTER"], !pauseAfter.isEmpty else {
            return { _ in }
        }
        return { step in
            guard step == pauseAfter else { return }
            context.note("up: paused after \(step) (DBGBOX_TEST_PAUSE_AFTER, for tests)")
            interruption.wait(upTo: 60)
        }
    }
}
