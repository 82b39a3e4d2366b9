import ArgumentParser
import DbgboxKit

struct Container: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run, list and remove your dbgbox containers.",
        subcommands: [ContainerCreate.self, ContainerList.self, ContainerRm.self])
}
