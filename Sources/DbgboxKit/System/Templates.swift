import Foundation

/// Where dbgbox's Mustache templates live: beside the installed binary, never relative to the source.
public enum Templates {
    /// The file whose presence marks a templates directory.
    public static let marker = "Dockerfile.mustache"

    public enum LookupError: UserFacingError, Equatable {
        case notFound(executable: String, tried: [String])
        case envNotDirectory(String)

        public var description: String {
            switch self {
            case .notFound(let executable, let tried):
                return "dbgbox's templates were not found for \(executable) (looked in \(tried.joined(separator: ", "))): reinstall with scripts/install.sh, or set DBGBOX_TEMPLATES to the templates directory"
            case .envNotDirectory(let path):
                return "DBGBOX_TEMPLATES=\(path) has no \(Templates.marker): point it at dbgbox's templates directory, or unset it"
            }
        }
    }

    /// The templates directory:
    /// 1. `$DBGBOX_TEMPLATES` if set;
    /// 2. `<bindir>/../share/dbgbox/templates`, where scripts/install.sh puts them, `<bindir>` being
    ///    the directory of the running executable's real path;
    /// 3. the first `templates/` holding `Dockerfile.mustache` in an ancestor of `<bindir>`
    ///    (a checkout's `.build/debug/dbgbox`).
    public static func directory(
        environment: [String: String] = ProcessInfo.processInfo.environment,
        executablePath: String? = nil,
        fileSystem: FileSystem = LocalFileSystem()
    ) throws -> String {
        if let fromEnv = environment["DBGBOX_TEMPLATES"], !fromEnv.isEmpty {
            guard fileSystem.exists(join(fromEnv, marker)) else { throw LookupError.envNotDirectory(fromEnv) }
            return fromEnv
        }
        let exe = executablePath ?? currentExecutable()
        let binDir = parent(exe)
        var tried: [String] = []
        let installed = normalize(join(parent(binDir), "share/dbgbox/templates"))
        tried.append(installed)
        if fileSystem.exists(join(installed, marker)) { return installed }
        var dir = binDir
        while true {
            let candidate = join(dir, "templates")
            if fileSystem.exists(join(candidate, marker)) { return candidate }
            let up = parent(dir)
            if up == dir { break }
            dir = up
        }
        tried.append("templates/ in the ancestors of \(binDir)")
        throw LookupError.notFound(executable: exe, tried: tried)
    }

    /// The real path of the running executable (symlinks resolved, as for an `ln -s` into ~/bin).
    public static func currentExecutable() -> String {
        if let real = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
            return real
        }
        let arg0 = CommandLine.arguments.first ?? "dbgbox"
        let resolved = LocalProcessRunner.resolve(arg0) ?? arg0
        return URL(fileURLWithPath: resolved).resolvingSymlinksInPath().path
    }

    static func join(_ dir: String, _ name: String) -> String {
        dir.hasSuffix("/") ? dir + name : dir + "/" + name
    }

    static func parent(_ path: String) -> String {
        var trimmed = path
        while trimmed.count > 1 && trimmed.hasSuffix("/") { trimmed.removeLast() }
        guard let slash = trimmed.lastIndex(of: "/") else { return "." }
        let up = String(trimmed[..<slash])
        return up.isEmpty ? "/" : up
    }

    /// Collapses `.` and `..` lexically (the bin directory is already a real path).
    static func normalize(_ path: String) -> String {
        var parts: [Substring] = []
        for part in path.split(separator: "/") {
            if part == "." { continue }
            if part == ".." { if !parts.isEmpty { parts.removeLast() }; continue }
            parts.append(part)
        }
        return "/" + parts.joined(separator: "/")
    }
}
