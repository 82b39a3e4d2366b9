import ArgumentParser
import DbgboxKit

struct Keygen: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Generate an SSH key pair for dbgbox (OpenSSH format).")
    func run() throws { throw DbgboxError("keygen is not implemented yet") }
}
