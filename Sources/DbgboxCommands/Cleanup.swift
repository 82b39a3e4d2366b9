import ArgumentParser
import DbgboxKit

struct Cleanup: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Remove containers and the known_hosts entries they left.")
    func run() throws { throw DbgboxError("cleanup is not implemented yet") }
}
