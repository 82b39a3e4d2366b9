import Foundation

/// What `dbgbox image create` was asked for.
public struct ImageCreateRequest: Sendable, Equatable {
    public var base: String
    /// nil: `$USER/ssh:latest`.
    public var name: String?
    /// `--template FILE`: replaces templates/Dockerfile.mustache.
    public var templatePath: String?
    /// `--append FILE`: extra Dockerfile lines before the final USER/ENTRYPOINT part.
    public var appendPath: String?
    /// `--family`: skips looking inside the base.
    public var family: DistroFamily?
    public var identity: UserIdentity

    public init(base: String, name: String? = nil, templatePath: String? = nil, appendPath: String? = nil,
                family: DistroFamily? = nil, identity: UserIdentity) {
        self.base = base
        self.name = name
        self.templatePath = templatePath
        self.appendPath = appendPath
        self.family = family
        self.identity = identity
    }
}

/// A rendered Dockerfile and what it was rendered from.
public struct PreparedImage: Sendable, Equatable {
    public var name: String
    public var spec: DockerfileSpec
    public var dockerfile: String
}

/// Renders and builds dbgbox images with the docker CLI, always from stdin with no build context.
public struct ImageService: Sendable {
    public let docker: DockerClient
    public let fileSystem: FileSystem
    public let templatesDirectory: @Sendable () throws -> String

    public init(docker: DockerClient, fileSystem: FileSystem = LocalFileSystem(),
                templatesDirectory: @escaping @Sendable () throws -> String = { try Templates.directory() }) {
        self.docker = docker
        self.fileSystem = fileSystem
        self.templatesDirectory = templatesDirectory
    }

    /// Validates the request, looks at the base (unless `--family` was given and `requireBase` is
    /// false, as for `--print`) and renders the Dockerfile.
    public func prepare(_ request: ImageCreateRequest, requireBase: Bool) throws -> PreparedImage {
        let name: String
        if let requested = request.name {
            try ImageReference.validateBuildName(requested)
            name = requested
        } else {
            guard let fallback = ImageReference.defaultName(for: request.identity.name) else {
                throw ImageError.defaultNameInvalid(user: request.identity.name)
            }
            name = fallback
        }
        try ImageReference.validateBase(request.base)
        try DockerfileRenderer.validate(request.identity)
        let templates = try ImageTemplates.load(directory: templatesDirectory(),
                                                dockerfileOverride: request.templatePath, fileSystem: fileSystem)
        var append: String?
        if let appendPath = request.appendPath {
            append = try ImageError.readText(appendPath, option: "--append", kind: .dockerfilePart, fileSystem: fileSystem)
        }

        let facts: BaseImageFacts
        do {
            if requireBase || request.family == nil {
                try checkBaseExists(request.base)
            }
            if let family = request.family {
                facts = BaseImageFacts(family: family, hasBash: family.defaultShell == "/bin/bash")
            } else {
                facts = try probe(request.base)
            }
        } catch let error as DockerError where !requireBase {
            switch error {
            case .notInstalled, .daemonNotRunning, .permissionDenied: throw ImageError.NeedsFamily(docker: error)
            default: throw error
            }
        }
        let spec = DockerfileSpec(base: request.base, name: name, facts: facts, identity: request.identity,
                                  append: append, appendName: request.appendPath)
        return PreparedImage(name: name, spec: spec, dockerfile: try DockerfileRenderer.render(spec, templates: templates))
    }

    /// `docker image inspect BASE`: the base must be local (dbgbox never pulls).
    public func checkBaseExists(_ base: String) throws {
        guard try docker.imageLabels(base) != nil else { throw ImageError.baseNotFound(base) }
    }

    /// Runs the base once, offline, to find its package manager and whether it has bash.
    public func probe(_ base: String) throws -> BaseImageFacts {
        let result = try docker.run(["run", "--rm", "--network", "none", "--pull", "never",
                                     "--entrypoint", "/bin/sh", base, "-c", BaseImageFacts.probeScript])
        guard result.succeeded else {
            let why = result.stderrText.split(whereSeparator: \.isNewline).last.map(String.init) ?? "exit \(result.exitCode)"
            let lower = why.lowercased()
            if lower.contains("no such file") || lower.contains("not found") || lower.contains("executable file") {
                throw ImageError.baseNotInspectable(base, why: "it has no /bin/sh")
            }
            throw ImageError.baseNotInspectable(base, why: why.trimmingCharacters(in: .whitespaces))
        }
        guard let facts = BaseImageFacts.parse(probeOutput: result.stdoutText) else {
            throw ImageError.unknownFamily(base)
        }
        return facts
    }

    /// `docker build -t NAME -` with the Dockerfile on stdin: no build context at all. docker's
    /// output goes to `sink` as it arrives.
    public func build(_ image: PreparedImage, output sink: OutputSink) throws {
        let result: ProcessResult
        do {
            result = try docker.runner.stream([docker.executable, "build", "-t", image.name, "-"],
                                              input: Data(image.dockerfile.utf8), to: sink)
        } catch ProcessError.notFound {
            throw DockerError.notInstalled
        }
        guard result.succeeded else {
            if let engine = DockerError.engineProblem(result.stderrText) { throw engine }
            throw ImageError.buildFailed(name: image.name, exitCode: result.exitCode)
        }
    }
}
