import ArgumentParser
import DbgboxKit

/// Options every command that acts for a user takes.
struct UserOptions: ParsableArguments {
    @Option(name: .long, help: "Act for this user (root only); dbgbox refuses to mirror root itself.")
    var user: String?

    func identity() throws -> UserIdentity {
        try UserIdentity.resolve(requested: user)
    }
}
