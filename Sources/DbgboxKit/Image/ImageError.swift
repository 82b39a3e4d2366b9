import Foundation

/// Why an image could not be rendered or built. Each case reads as one line: what is wrong, what to do.
public enum ImageError: UserFacingError, Equatable {
    /// `--name` is not a docker image reference.
    case invalidName(String, why: String)
    /// The default `$USER/ssh:latest` is not a valid reference for this user name.
    case defaultNameInvalid(user: String)
    /// `--base` is empty or malformed.
    case invalidBase(String)
    /// `--image` is empty or malformed.
    case invalidImage(String, why: String)
    /// `docker image inspect BASE` found nothing.
    case baseNotFound(String)
    /// The base has no /bin/sh to look inside with.
    case baseNotInspectable(String, why: String)
    /// The base has none of apt-get, dnf, microdnf, yum, apk.
    case unknownFamily(String)
    /// `--family` names no known family.
    case invalidFamily(String)
    /// The user's name, home or ids cannot be written into a Dockerfile safely.
    case unsupportedIdentity(String)
    /// A template would not parse.
    case templateInvalid(path: String, why: String)
    /// `--template` / `--append` file unreadable: why.
    case unreadableFile(option: String, path: String, why: String)
    /// `docker build` exited non-zero.
    case buildFailed(name: String, exitCode: Int32)

    public var description: String {
        switch self {
        case .invalidName(let name, let why):
            return "image name \(shown(name)) is not valid (\(why)): use lowercase letters, digits and separators, e.g. alice/ssh:latest"
        case .defaultNameInvalid(let user):
            return "user name '\(user)' does not make a valid image name '\(user)/ssh:latest': pass --name, e.g. --name mine/ssh:latest"
        case .invalidBase(let base):
            return "base image \(shown(base)) is not a valid image reference: pass --base as NAME[:TAG], e.g. --base ubuntu:22.04"
        case .invalidImage(let image, let why):
            return "--image \(shown(image)) is not a valid image reference (\(why)): pass NAME[:TAG] of an image from dbgbox image create, e.g. --image alice/ssh:latest"
        case .baseNotFound(let base):
            return "base image \(base) not found: docker pull \(base), or docker images to list local ones"
        case .baseNotInspectable(let base, let why):
            return "cannot look inside base image \(base) (\(why)): dbgbox needs a base with /bin/sh and apt, dnf, yum or apk, or pass --family with --print"
        case .unknownFamily(let base):
            return "base image \(base) has none of apt-get, dnf, microdnf, yum or apk: use a Debian/Ubuntu, RHEL-like or Alpine base"
        case .invalidFamily(let family):
            return "unknown --family '\(family)': use one of \(DistroFamily.allCases.map(\.rawValue).joined(separator: ", "))"
        case .unsupportedIdentity(let why):
            return "cannot mirror this user into an image: \(why)"
        case .templateInvalid(let path, let why):
            return "template \(path) does not parse (\(why)): fix the Mustache syntax, or drop --template to use the installed one"
        case .unreadableFile(let option, let path, let why):
            return "\(option) \(path): \(why): check the path and its permissions"
        case .buildFailed(let name, let code):
            return "docker build of \(name) failed (exit \(code)): see docker's output above; `dbgbox image create --print` shows the Dockerfile"
        }
    }
}

extension ImageError {
    /// A template or Dockerfile part as UTF-8 text; anything else is `unreadableFile`.
    static func readText(_ path: String, option: String, kind: FileKind, fileSystem: FileSystem) throws -> String {
        let data: Data
        do { data = try fileSystem.read(path, as: kind) } catch {
            throw ImageError.unreadableFile(option: option, path: path,
                                            why: FileSystemError.reason(error, otherwise: "cannot read the file"))
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw ImageError.unreadableFile(option: option, path: path, why: "not UTF-8 text")
        }
        return text
    }

    /// Docker is unusable while `--print` needed it only to look at the base: say how to avoid that.
    public struct NeedsFamily: UserFacingError, Equatable {
        public let docker: DockerError
        public var description: String {
            "\(docker.description); or, to print without docker, pass --family \(DistroFamily.allCases.map(\.rawValue).joined(separator: "|"))"
        }
    }
}
