/// How a base image installs packages, which decides the Dockerfile's install step.
public enum DistroFamily: String, Sendable, CaseIterable, Equatable {
    /// Debian, Ubuntu: apt-get.
    case apt
    /// Fedora, RHEL 8+, Rocky, Alma: dnf.
    case dnf
    /// UBI minimal images: microdnf.
    case microdnf
    /// RHEL/CentOS 7, Amazon Linux 2: yum.
    case yum
    /// Alpine: apk.
    case apk

    /// The login shell when the base was not looked at: every apt/dnf/yum distribution ships bash,
    /// Alpine does not by default.
    public var defaultShell: String {
        self == .apk ? "/bin/sh" : "/bin/bash"
    }
}

/// What looking inside the base image found.
public struct BaseImageFacts: Sendable, Equatable {
    public var family: DistroFamily
    public var hasBash: Bool

    public init(family: DistroFamily, hasBash: Bool) {
        self.family = family
        self.hasBash = hasBash
    }

    public var shell: String { hasBash ? "/bin/bash" : "/bin/sh" }

    /// Run once in the base with `/bin/sh -c`: prints `pm=NAME` for the first package manager
    /// found (dnf before yum, since RHEL 8 has both) and `bash=yes|no`. A constant, never built
    /// from input.
    public static let probeScript = """
        for m in apt-get dnf microdnf yum apk; do \
        if command -v "$m" >/dev/null 2>&1; then echo "pm=$m"; break; fi; done; \
        if [ -x /bin/bash ]; then echo bash=yes; else echo bash=no; fi
        """

    /// Parses the probe's output; nil when no known package manager was found.
    public static func parse(probeOutput: String) -> BaseImageFacts? {
        var manager: String?
        var bash = false
        for line in probeOutput.split(whereSeparator: \.isNewline) {
            let text = line.trimmingCharacters(in: .whitespaces)
            if text.hasPrefix("pm=") { manager = String(text.dropFirst(3)) }
            if text == "bash=yes" { bash = true }
        }
        let family: DistroFamily
        switch manager {
        case "apt-get": family = .apt
        case "dnf": family = .dnf
        case "microdnf": family = .microdnf
        case "yum": family = .yum
        case "apk": family = .apk
        default: return nil
        }
        return BaseImageFacts(family: family, hasBash: bash)
    }
}
