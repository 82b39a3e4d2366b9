import Foundation

/// The Host block dbgbox writes for one session into its own ssh config file:
///
///     # dbgbox session NAME
///     Host dbgbox-NAME
///         HostName 127.0.0.1
///         ProxyCommand none
///         Port LOCALPORT
///         User USER
///         IdentityFile PATH
///         IdentitiesOnly yes
///         HostKeyAlias dbgbox-NAME
///         UserKnownHostsFile PATH
///         StrictHostKeyChecking yes
///         ControlMaster auto
///         ControlPath SOCKET
///         ControlPersist 10m
///     # end dbgbox session NAME
///
/// The three Control lines (OpenSSH's connection sharing, see `ConnectionSharing`) are there
/// when the block has a control socket path.
///
/// The two marker comments delimit the block's bytes, so removing it takes out exactly them.
/// `ProxyCommand none` keeps a `ProxyJump` or `ProxyCommand` that the user's config sets further
/// down (say in `Host *`) off the session: ssh takes the first of the two it reads, and the tunnel
/// listens on this machine, not on a jump host.
/// The host key is checked strictly against dbgbox's pinned file under the alias, so a
/// recreated container on a reused port never meets a stale key in ~/.ssh/known_hosts.
public struct SessionHostBlock: Sendable, Equatable {
    public var name: String
    /// The laptop-side port of the tunnel.
    public var port: Int
    /// The login user inside the container.
    public var user: String
    /// The private key (absolute, or `~/…`).
    public var identityFile: String
    /// The pinned host keys, usually `PinnedHostKeys.defaultPath(home:)`.
    public var knownHostsFile: String
    /// The control socket of OpenSSH's connection sharing (`ConnectionSharing.socketPath`); nil:
    /// no sharing.
    public var controlPath: String?

    public init(name: String, port: Int, user: String, identityFile: String, knownHostsFile: String,
                controlPath: String? = nil) {
        self.name = name
        self.port = port
        self.user = user
        self.identityFile = identityFile
        self.knownHostsFile = knownHostsFile
        self.controlPath = controlPath
    }

    /// `dbgbox-<name>`: the Host pattern and the HostKeyAlias.
    public var alias: String { SessionName.alias(name) }

    public static func beginMarker(_ name: String) -> String { "# dbgbox session \(name)" }
    public static func endMarker(_ name: String) -> String { "# end dbgbox session \(name)" }

    /// Throws the first field ssh_config could not carry as given.
    public func validate() throws {
        try SessionName.validate(name)
        guard (1...65535).contains(port) else { throw SessionError.invalidPort(port) }
        let userChars = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")
        guard !user.isEmpty, user.first != "-", user.allSatisfy({ userChars.contains($0) }) else {
            throw SessionError.invalidUser(user)
        }
        _ = try Self.pathArgument(identityFile, field: "IdentityFile")
        _ = try Self.pathArgument(knownHostsFile, field: "UserKnownHostsFile")
        if let controlPath { _ = try Self.pathArgument(controlPath, field: "ControlPath") }
    }

    /// The block's text, markers included, each line ending in "\n".
    public func rendered() throws -> String {
        try validate()
        return """
            \(Self.beginMarker(name))
            Host \(alias)
                HostName 127.0.0.1
                ProxyCommand none
                Port \(port)
                User \(user)
                IdentityFile \(try Self.pathArgument(identityFile, field: "IdentityFile"))
                IdentitiesOnly yes
                HostKeyAlias \(alias)
                UserKnownHostsFile \(try Self.pathArgument(knownHostsFile, field: "UserKnownHostsFile"))
                StrictHostKeyChecking yes
            \(try sharingLines())\(Self.endMarker(name))

            """
    }

    /// The connection-sharing lines (each ending in "\n"), or "" without a control path.
    private func sharingLines() throws -> String {
        guard let controlPath else { return "" }
        return """
                ControlMaster auto
                ControlPath \(try Self.pathArgument(controlPath, field: "ControlPath"))
                ControlPersist \(ConnectionSharing.persist)

            """
    }

    /// A path as an ssh_config argument that ssh reads back as exactly `path`.
    ///
    /// ssh percent-expands IdentityFile and UserKnownHostsFile, so `%` is written `%%`; `${`
    /// (environment expansion) has no escape and is refused. misc.c argv_split splits on blanks
    /// and reads quotes, `\` escapes and a `#` comment, so a path with any of those is written in
    /// double quotes with `\` and `"` escaped.
    static func pathArgument(_ path: String, field: String) throws -> String {
        guard path.hasPrefix("/") || path.hasPrefix("~/"),
              !path.contains(where: { $0 == "\n" || $0 == "\r" || $0 == "\0" }),
              !path.contains("${") else {
            throw SessionError.invalidPath(field: field, path: path)
        }
        return quotedArgument(path.replacingOccurrences(of: "%", with: "%%"))
    }

    /// `value` as one argv_split argument: as is when plain, else in double quotes with `\` and
    /// `"` escaped.
    static func quotedArgument(_ value: String) -> String {
        let special = Set(" \t\"'\\#=")
        guard value.isEmpty || value.contains(where: { special.contains($0) }) else { return value }
        var quoted = "\""
        for c in value {
            if c == "\\" || c == "\"" { quoted.append("\\") }
            quoted.append(c)
        }
        return quoted + "\""
    }

    /// Reads a block's lines (between its markers) back; nil unless they carry every field
    /// dbgbox writes, for this block's alias, on 127.0.0.1.
    static func parse(name: String, lines: [String]) -> SessionHostBlock? {
        var values: [String: String] = [:]
        for text in lines {
            let parsed: SSHConfigLine?
            do { parsed = try SSHConfigLine.parse(text) } catch { return nil }
            guard let line = parsed else { continue }
            guard line.args.count == 1, values[line.keyword] == nil else { return nil }
            values[line.keyword] = line.args[0]
        }
        let alias = SessionName.alias(name)
        guard values["host"] == alias, values["hostname"] == "127.0.0.1", values["hostkeyalias"] == alias,
              let port = values["port"].flatMap({ Int($0) }), let user = values["user"],
              let identity = values["identityfile"], let known = values["userknownhostsfile"] else { return nil }
        return SessionHostBlock(name: name, port: port, user: user,
                                identityFile: identity.replacingOccurrences(of: "%%", with: "%"),
                                knownHostsFile: known.replacingOccurrences(of: "%%", with: "%"),
                                controlPath: values["controlpath"]?.replacingOccurrences(of: "%%", with: "%"))
    }
}
