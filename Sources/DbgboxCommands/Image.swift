import ArgumentParser
import DbgboxKit

struct Image: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Build images that add sshd to a base image.",
        subcommands: [ImageCreate.self]
    )
}
