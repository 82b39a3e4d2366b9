import Foundation
import Mustache

/// Everything a Dockerfile is rendered from.
public struct DockerfileSpec: Sendable, Equatable {
    public var base: String
    /// The image name, only mentioned in the header comment.
    public var name: String
    public var facts: BaseImageFacts
    public var identity: UserIdentity
    /// The `--append` file's text: the user's own steps, placed before the final USER/ENTRYPOINT part.
    public var append: String?
    public var appendName: String?

    public init(base: String, name: String, facts: BaseImageFacts, identity: UserIdentity,
                append: String? = nil, appendName: String? = nil) {
        self.base = base
        self.name = name
        self.facts = facts
        self.identity = identity
        self.append = append
        self.appendName = appendName
    }
}

/// The three templates a Dockerfile is made from.
public struct ImageTemplates: Sendable, Equatable {
    public static let dockerfileFile = "Dockerfile.mustache"
    public static let sshdConfigFile = "sshd_config.mustache"
    public static let entrypointFile = "entrypoint.sh.mustache"

    public var dockerfile: String
    /// How the header comment names the Dockerfile template.
    public var dockerfileName: String
    public var sshdConfig: String
    public var entrypoint: String

    public init(dockerfile: String, dockerfileName: String = "templates/Dockerfile.mustache",
                sshdConfig: String, entrypoint: String) {
        self.dockerfile = dockerfile
        self.dockerfileName = dockerfileName
        self.sshdConfig = sshdConfig
        self.entrypoint = entrypoint
    }

    /// Reads the templates from `directory`; `dockerfileOverride` (`--template FILE`) replaces
    /// the Dockerfile template only.
    public static func load(directory: String, dockerfileOverride: String? = nil,
                            fileSystem: FileSystem = LocalFileSystem()) throws -> ImageTemplates {
        func text(_ path: String, option: String) throws -> String {
            try ImageError.readText(path, option: option, kind: .template, fileSystem: fileSystem)
        }
        let dir = directory.hasSuffix("/") ? String(directory.dropLast()) : directory
        let dockerfile: String
        let name: String
        if let dockerfileOverride {
            dockerfile = try text(dockerfileOverride, option: "--template")
            name = dockerfileOverride
        } else {
            dockerfile = try text("\(dir)/\(dockerfileFile)", option: "template")
            name = "templates/\(dockerfileFile)"
        }
        return ImageTemplates(dockerfile: dockerfile, dockerfileName: name,
                              sshdConfig: try text("\(dir)/\(sshdConfigFile)", option: "template"),
                              entrypoint: try text("\(dir)/\(entrypointFile)", option: "template"))
    }
}

/// Renders the Dockerfile. Pure: no docker, no files.
public enum DockerfileRenderer {
    public static func render(_ spec: DockerfileSpec, templates: ImageTemplates) throws -> String {
        try validate(spec.identity)
        try ImageReference.validateBase(spec.base)
        let user = spec.identity
        var context: [String: Any] = [
            "user": user.name,
            "uid": String(user.uid),
            "gid": String(user.gid),
            "home": user.home,
            "userQuoted": shellQuote(user.name),
            "userPatternQuoted": shellQuote(user.name.replacingOccurrences(of: ".", with: "\\.")),
            "homeQuoted": shellQuote(user.home),
            "shellQuoted": shellQuote(spec.facts.shell),
            "base": spec.base,
            "name": spec.name,
            "family": spec.facts.family.rawValue,
            "templateName": templates.dockerfileName,
            "hasAppend": false,
        ]
        for family in DistroFamily.allCases {
            context[family.rawValue] = family == spec.facts.family
        }
        if let append = spec.append, !append.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
            context["hasAppend"] = true
            context["append"] = append.hasSuffix("\n") ? String(append.dropLast()) : append
            context["appendName"] = spec.appendName ?? "file"
        }
        let sshdConfig = try renderTemplate(templates.sshdConfig, name: ImageTemplates.sshdConfigFile, context)
        let entrypoint = try renderTemplate(templates.entrypoint, name: ImageTemplates.entrypointFile, context)
        context["sshdConfigLines"] = printfArguments(sshdConfig)
        context["entrypointLines"] = printfArguments(entrypoint)
        var dockerfile = try renderTemplate(templates.dockerfile, name: templates.dockerfileName, context)
        if !dockerfile.hasSuffix("\n") { dockerfile += "\n" }
        return dockerfile
    }

    static func renderTemplate(_ text: String, name: String, _ context: [String: Any]) throws -> String {
        do {
            return try MustacheTemplate(string: text).render(context)
        } catch let error as MustacheTemplate.ParserError {
            throw ImageError.templateInvalid(path: name, why: "line \(error.context.lineNumber): \(error.error)")
        } catch {
            throw ImageError.templateInvalid(path: name, why: "\(error)")
        }
    }

    /// `'text'` for POSIX sh, with each `'` written as `'\''`.
    public static func shellQuote(_ text: String) -> String {
        "'" + text.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }

    /// The lines of `text` as `printf '%s\n'` arguments, one per Dockerfile line, each single-quoted
    /// and ending in a line continuation, so the file reads as itself in `--print` output.
    public static func printfArguments(_ text: String, indent: String = "    ") -> String {
        var lines = text.components(separatedBy: "\n")
        if lines.last == "" { lines.removeLast() }
        return lines.map { "\(indent)\(shellQuote($0)) \\" }.joined(separator: "\n")
    }

    /// Refuses identities that could not be written into passwd, a shell word or a LABEL safely.
    public static func validate(_ identity: UserIdentity) throws {
        let name = identity.name
        let nameOK = !name.isEmpty && name.count <= 32 && !name.hasPrefix("-") && name.unicodeScalars.allSatisfy {
            ("a"..."z").contains($0) || ("A"..."Z").contains($0) || ("0"..."9").contains($0) || "_.-".unicodeScalars.contains($0)
        }
        guard nameOK else {
            throw ImageError.unsupportedIdentity("user name \(String(reflecting: name)) has characters other than letters, digits, '_', '.', '-' (or is longer than 32): run as a user with a portable name, or as root with --user NAME")
        }
        guard identity.uid != 0 else {
            throw ImageError.unsupportedIdentity("uid 0 is root: run dbgbox as an ordinary user")
        }
        let home = identity.home
        let badHome = home == "/" || !home.hasPrefix("/") || home.unicodeScalars.contains {
            $0.value < 0x20 || $0.value == 0x7f || ":\"$\\`".unicodeScalars.contains($0)
        }
        guard !badHome else {
            throw ImageError.unsupportedIdentity("home directory \(String(reflecting: home)) must be an absolute path other than / without ':', quotes, '$', '\\' or control characters: fix the passwd entry")
        }
    }
}
