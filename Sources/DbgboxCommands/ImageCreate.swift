import ArgumentParser
import DbgboxKit

/// `dbgbox image create`: renders templates/ into a Dockerfile and builds it with no build context.
struct ImageCreate: DbgboxCommand {
    static let configuration = CommandConfiguration(
        commandName: "create",
        abstract: "Build an image that adds a key-only sshd for you to a local base image.",
        discussion: """
        The Dockerfile goes to `docker build -t NAME -` on stdin: no directory is sent as build context. \
        The base must exist locally (dbgbox never pulls); its distribution family (apt, dnf, yum, apk) \
        is found by running it once without network.
        Example: dbgbox image create --base pytorch/pytorch:latest --name $USER/ssh:latest
        """
    )

    @Option(name: .long, help: ArgumentHelp("The local base image, e.g. ubuntu:22.04.", valueName: "image"))
    var base: String

    @Option(name: .long, help: ArgumentHelp("The image to build (default: $USER/ssh:latest).", valueName: "name"))
    var name: String?

    @Option(name: .long, help: ArgumentHelp("A Mustache file to use instead of templates/Dockerfile.mustache.", valueName: "file"))
    var template: String?

    @Option(name: .long, help: ArgumentHelp("A file of Dockerfile lines (your own RUN steps) added before the final USER/ENTRYPOINT part.", valueName: "file"))
    var append: String?

    @Flag(name: .long, help: "Write the Dockerfile to stdout and build nothing.")
    var print = false

    @Option(name: .long, help: ArgumentHelp("The base's family (apt, dnf, microdnf, yum, apk); skips looking inside the base, e.g. for --print without docker.", valueName: "family"))
    var family: String?

    @OptionGroup var userOptions: UserOptions

    @OptionGroup(title: "Run on a cluster node") var chain: ChainOptions

    func run(_ context: CommandContext) throws {
        var parsedFamily: DistroFamily?
        if let family {
            guard let known = DistroFamily(rawValue: family.lowercased()) else { throw ImageError.invalidFamily(family) }
            parsedFamily = known
        }
        let node = try context.node(try chain.request())
        defer { node.close() }
        let identity = try node.identity(requested: userOptions.user)
        let request = ImageCreateRequest(base: base, name: name, templatePath: template, appendPath: append,
                                         family: parsedFamily, identity: identity)
        let service = ImageService(docker: DockerClient(runner: node.runner))
        let prepared = try service.prepare(request, requireBase: !print)
        if print {
            context.write(prepared.dockerfile)
            return
        }
        context.note("building \(prepared.name) for \(identity.name) (\(identity.uid):\(identity.gid)) from \(base)\(node.isRemote ? " on \(node.name)" : ""), \(prepared.spec.facts.family.rawValue) family")
        try service.build(prepared, output: context.stderr)
        context.say(prepared.name)
    }
}
