import Foundation

/// StrictHostKeyChecking, with the word `ssh -G` prints for each value.
public enum StrictHostKeyChecking: String, Sendable, Equatable {
    case yes = "true", no = "false", ask = "ask", acceptNew = "accept-new"
}

/// AddKeysToAgent, with the word `ssh -G` prints for each value (a lifespan is kept aside).
public enum AddKeysToAgent: String, Sendable, Equatable {
    case no = "false", yes = "true", ask = "ask", confirm = "confirm"
}

/// A hop after the command line, ~/.ssh/config and the defaults, as `ssh -G` reports it.
public struct ResolvedHost: Sendable, Equatable {
    /// The host as given (the alias), `%n`.
    public var originalHost: String
    /// The host to connect to: HostName with `%h` expanded, lowercased unless an address (as ssh does).
    public var hostName: String
    public var user: String
    public var port: Int
    /// The identity files to try, in order: `~` and `%` tokens expanded, `none` dropped.
    public var identityFiles: [String]
    /// The same list as `ssh -G` prints it: as written in the config (or the defaults, `~/.ssh/id_rsa` …).
    public var identityFilesAsWritten: [String]
    public var identitiesOnly: Bool
    /// IdentityAgent expanded (`SSH_AUTH_SOCK` and `none` are kept as words), nil when not set.
    public var identityAgent: String?
    /// CertificateFile entries, as written.
    public var certificateFiles: [String]
    /// ProxyJump as `ssh -G` prints it (`[extra,…,][user@]host[:port]`), nil when unset or `none`.
    public var proxyJump: String?
    /// ProxyCommand as written, nil when unset or `none`.
    public var proxyCommand: String?
    /// UserKnownHostsFile expanded (`none` → empty).
    public var userKnownHostsFiles: [String]
    /// GlobalKnownHostsFile (`none` → empty).
    public var globalKnownHostsFiles: [String]
    public var strictHostKeyChecking: StrictHostKeyChecking
    public var hashKnownHosts: Bool
    public var hostKeyAlias: String?
    /// Seconds; nil for `none` (the default).
    public var connectTimeout: Int?
    public var serverAliveInterval: Int
    public var serverAliveCountMax: Int
    public var addKeysToAgent: AddKeysToAgent
    /// Things the caller should tell the user, e.g. a `Match exec` taken as false. Never printed here.
    public var warnings: [String]

    /// The name host keys are looked up under: HostKeyAlias, else `host` for port 22, else `[host]:port`.
    public var knownHostsName: String {
        hostKeyAlias ?? KnownHostsVerifier.lookupName(host: hostName, port: port)
    }
}

/// What the command line says about a hop beside `[USER@]HOST[:PORT]`, as ssh's options do.
public struct SSHConfigOverrides: Sendable, Equatable {
    /// Like `ssh -l USER`: beats both `user@` in the spec and User in the config.
    public var user: String?
    /// Like `ssh -p PORT`: beats the spec's `:PORT` and Port in the config.
    public var port: Int?
    /// Like `ssh -i FILE`: tried before the config's IdentityFile entries.
    public var identityFiles: [String]
    /// Like `ssh -o "Keyword value"`: read before any config file, so they win.
    public var options: [String]
    /// Like `ssh -F FILE`: read this file only (no ~/.ssh/config, no /etc/ssh/ssh_config); "none" reads none.
    public var configFile: String?

    public init(user: String? = nil, port: Int? = nil, identityFiles: [String] = [], options: [String] = [],
                configFile: String? = nil) {
        self.user = user
        self.port = port
        self.identityFiles = identityFiles
        self.options = options
        self.configFile = configFile
    }
}
