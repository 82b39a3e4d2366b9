/// Docker image references, checked against the grammar of distribution/reference, so that a bad
/// `--name` or `--base` fails before docker runs, with dbgbox's own one-line message.
public enum ImageReference {
    static let pathComponent = "[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
    static let domain = "(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])(?:\\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))*(?::[0-9]+)?"
    static let tag = "[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"
    static let digest = "[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"

    /// Why `reference` is not a valid name to tag a build with (no digest allowed), or nil if it is.
    public static func problem(withTag reference: String) -> String? {
        problem(reference, allowDigest: false)
    }

    /// Checks a name for `docker build -t`.
    public static func validateBuildName(_ name: String) throws {
        if let why = problem(withTag: name) { throw ImageError.invalidName(name, why: why) }
    }

    /// Checks `--base`: a reference (digest allowed) or an image id.
    public static func validateBase(_ base: String) throws {
        if problem(runnable: base) != nil { throw ImageError.invalidBase(base) }
    }

    /// Checks `--image` of container create and up, as `--base`: so that a value docker would
    /// read as a flag ("-v…") or one holding a newline fails with dbgbox's line, not docker's usage.
    public static func validateImage(_ image: String) throws {
        if let why = problem(runnable: image) { throw ImageError.invalidImage(image, why: why) }
    }

    /// Why `reference` cannot name an image to run or build from (digest allowed, or an image id).
    static func problem(runnable reference: String) -> String? {
        if reference.wholeMatch(hex: 12...64) || reference.hasPrefix("sha256:") && String(reference.dropFirst(7)).wholeMatch(hex: 64...64) {
            return nil
        }
        return problem(reference, allowDigest: true)
    }

    /// `$USER/ssh:latest`, lowercased; nil if the user name cannot make a valid reference.
    public static func defaultName(for user: String) -> String? {
        let name = "\(user.lowercased())/ssh:latest"
        return problem(withTag: name) == nil ? name : nil
    }

    static func problem(_ reference: String, allowDigest: Bool) -> String? {
        if reference.isEmpty { return "empty" }
        if reference.hasPrefix("-") { return "starts with '-'" }
        if reference.unicodeScalars.contains(where: { $0.value <= 0x20 || $0.value >= 0x7f }) {
            return "contains spaces or control characters"
        }
        var rest = Substring(reference)
        if let at = rest.firstIndex(of: "@") {
            guard allowDigest else { return "a digest cannot be a build tag" }
            let digestPart = String(rest[rest.index(after: at)...])
            if !matches(digestPart, digest) { return "malformed digest" }
            rest = rest[..<at]
        }
        // A ':' after the last '/' starts the tag; one before it belongs to a registry port.
        let lastSlash = rest.lastIndex(of: "/")
        let tagSearchStart = lastSlash.map { rest.index(after: $0) } ?? rest.startIndex
        var namePart = rest
        if let colon = rest[tagSearchStart...].firstIndex(of: ":") {
            let tagPart = String(rest[rest.index(after: colon)...])
            if !matches(tagPart, tag) { return "malformed tag '\(tagPart)'" }
            namePart = rest[..<colon]
        }
        if namePart.count > 255 { return "longer than 255 characters" }
        var components = namePart.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        if components.count > 1, let first = components.first,
           first.contains(".") || first.contains(":") || first == "localhost" {
            if !matches(first, domain) { return "malformed registry '\(first)'" }
            components.removeFirst()
        }
        for component in components where !matches(component, pathComponent) {
            if component != component.lowercased() { return "uppercase letters are not allowed" }
            return component.isEmpty ? "empty path component" : "malformed component '\(component)'"
        }
        return nil
    }

    static func matches(_ text: String, _ pattern: String) -> Bool {
        guard let regex = try? Regex(pattern) else { return false }
        return (try? regex.wholeMatch(in: text)) != nil
    }
}

extension String {
    fileprivate func wholeMatch(hex lengths: ClosedRange<Int>) -> Bool {
        lengths.contains(count) && allSatisfy { $0.isHexDigit && !$0.isUppercase }
    }
}
