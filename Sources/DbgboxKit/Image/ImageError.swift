/// Why an image could not be rendered or built. Each case reads as one line: what is wrong, what to do.
public enum ImageError: UserFacingError, Equatable {
    /// `--name` is not a docker image reference.
    case invalidName(String, why: String)
    /// The default `$USER/ssh:latest` is not a valid reference for this user name.
    case defaultNameInvalid(user: String)
    /// `--base` is empty or malformed.
    case invalidBase(String)
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
    /// `--template` / `--append` file unreadable.
    case unreadableFile(option: String, path: String)
    /// `docker build` exited non-zero.
    case buildFailed(name: String, exitCode: Int32)

    /// Quoted, with control characters escaped, so a message stays on one line.
    static func shown(_ text: String) -> String {
        String(reflecting: text)
    }

    public var description: String {
        switch self {
        case .invalidName(let name, let why):
            return "image name \(Self.shown(name)) is not valid (\(why)): use lowercase letters, digits and separators, e.g. alice/ssh:latest"
        case .defaultNameInvalid(let user):
            return "user name '\(user)' does not make a valid image name '\(user)/ssh:latest': pass --name, e.g. --name mine/ssh:latest"
        case .invalidBase(let base):
            return "base image \(Self.shown(base)) is not a valid image reference: pass --base as NAME[:TAG], e.g. --base ubuntu:22.04"
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
        case .unreadableFile(let option, let path):
            return "\(option) \(path): cannot read the file: check the path and its permissions"
        case .buildFailed(let name, let code):
            return "docker build of \(name) failed (exit \(code)): see docker's output above; `dbgbox image create --print` shows the Dockerfile"
        }
    }
}

extension ImageError {
    /// Docker is unusable while `--print` needed it only to look at the base: say how to avoid that.
    public struct NeedsFamily: UserFacingError, Equatable {
        public let docker: DockerError
        public var description: String {
            "\(docker.description); or, to print without docker, pass --family \(DistroFamily.allCases.map(\.rawValue).joined(separator: "|"))"
        }
    }
}
