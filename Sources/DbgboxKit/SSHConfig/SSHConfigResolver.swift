import Crypto
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Resolves a hop the way OpenSSH 9.2's `ssh -G` does (readconf.c, ssh.c): command line first,
/// then ~/.ssh/config, then /etc/ssh/ssh_config, then the defaults; the first value obtained
/// wins, except IdentityFile and CertificateFile, which accumulate.
///
/// `Match exec` is never run: dbgbox does not run commands from config files. It is taken as
/// false (so `!exec` as true), and `ResolvedHost.warnings` says so, naming the file and line.
/// Host canonicalization (CanonicalizeHostname) is not done; `Match canonical` is false and
/// `Match final` triggers the second pass exactly as in ssh.
public struct SSHConfigResolver: Sendable {
    public let home: String
    public let userName: String
    public let localHostName: String
    public let uid: UInt32
    public let userConfigPath: String
    public let systemConfigPath: String
    public let environment: [String: String]
    let fs: FileSystem
    let glob: @Sendable (String) -> [String]

    /// - Parameters:
    ///   - home: the user's home from passwd (ssh expands `~` and `%d` with it, not with $HOME).
    ///   - userName: the local user (`%u`, the default User).
    ///   - localHostName: gethostname() (`%l`; `%L` is it up to the first dot).
    ///   - userConfigPath: default `home/.ssh/config`. systemConfigPath: default /etc/ssh/ssh_config.
    ///   - glob: expands Include patterns (default: glob(3), sorted as ssh sees them).
    public init(home: String, userName: String, fs: FileSystem = LocalFileSystem(), localHostName: String,
                uid: UInt32 = getuid(), userConfigPath: String? = nil, systemConfigPath: String = "/etc/ssh/ssh_config",
                environment: [String: String] = ProcessInfo.processInfo.environment,
                glob: @escaping @Sendable (String) -> [String] = SSHConfigResolver.systemGlob) {
        self.home = home
        self.userName = userName
        self.fs = fs
        self.localHostName = localHostName
        self.uid = uid
        self.userConfigPath = userConfigPath ?? "\(home)/.ssh/config"
        self.systemConfigPath = systemConfigPath
        self.environment = environment
        self.glob = glob
    }

    /// Resolves `spec` with `overrides` playing the part of ssh's command-line options.
    public func resolve(spec: HostSpec, overrides: SSHConfigOverrides = SSHConfigOverrides()) throws -> ResolvedHost {
        var state = SSHConfigState()
        // Command-line options first (ssh.c main): -o lines, -l, -p, -i.
        for (index, option) in overrides.options.enumerated() {
            var active = true
            try processLine(option, file: "command-line", number: index + 1, state: &state, host: spec.host,
                            originalHost: spec.host, flags: .commandLine, active: &active, depth: 0)
        }
        if state.user == nil, let user = overrides.user ?? spec.user { state.user = user }
        if state.port == nil, let port = overrides.port ?? spec.port { state.port = port }
        for file in overrides.identityFiles {
            state.addIdentity(expandTilde(file), userProvided: true)
        }

        try readConfigFiles(state: &state, host: spec.host, originalHost: spec.host, final: false, overrides: overrides)

        var host = spec.host
        if let hostName = state.hostName {
            host = try percentExpand(hostName, ["h": spec.host], keyword: "HostName")
        }
        if !Self.isAddress(host) { host = host.lowercased() }
        if state.wantFinalPass {
            state.hostName = host
            try readConfigFiles(state: &state, host: host, originalHost: spec.host, final: true, overrides: overrides)
        }
        return try finish(state, host: host, originalHost: spec.host)
    }

    // MARK: - Reading files

    struct Flags: OptionSet {
        let rawValue: Int
        static let userConfig = Flags(rawValue: 1)
        static let checkPermissions = Flags(rawValue: 2)
        static let neverMatch = Flags(rawValue: 4)
        static let final = Flags(rawValue: 8)
        static let commandLine = Flags(rawValue: 16)
    }

    private func readConfigFiles(state: inout SSHConfigState, host: String, originalHost: String, final: Bool,
                                 overrides: SSHConfigOverrides) throws {
        let finalFlag: Flags = final ? .final : []
        if let explicit = overrides.configFile {
            guard explicit.lowercased() != "none" else { return }
            guard try readFile(expandTilde(explicit), state: &state, host: host, originalHost: originalHost,
                               flags: [.userConfig, finalFlag], startActive: true, depth: 0) else {
                throw SSHConfigError.unreadableConfig(explicit)
            }
        } else {
            _ = try readFile(userConfigPath, state: &state, host: host, originalHost: originalHost,
                             flags: [.userConfig, .checkPermissions, finalFlag], startActive: true, depth: 0)
            _ = try readFile(systemConfigPath, state: &state, host: host, originalHost: originalHost,
                             flags: finalFlag, startActive: true, depth: 0)
        }
    }

    /// read_config_file_depth: false when the file does not exist.
    private func readFile(_ path: String, state: inout SSHConfigState, host: String, originalHost: String, flags: Flags,
                          startActive: Bool, depth: Int) throws -> Bool {
        guard depth <= 16 else { throw SSHConfigError.includeTooDeep(path) }
        guard fs.exists(path), !fs.isDirectory(path) else { return false }
        if flags.contains(.checkPermissions), let mode = try? fs.mode(of: path), mode & 0o022 != 0 {
            throw SSHConfigError.unsafePermissions(path)
        }
        let data = try fs.read(path, as: .sshConfig)
        var active = startActive
        // getline: lines end at "\n"; C strings end at a NUL.
        var lines = String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
        if lines.last == "" { lines.removeLast() }
        for (index, line) in lines.enumerated() {
            let text = line.split(separator: "\0", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
            try processLine(String(text), file: path, number: index + 1, state: &state, host: host,
                            originalHost: originalHost, flags: flags, active: &active, depth: depth)
        }
        return true
    }

    // MARK: - One line (process_config_line_depth)

    private func processLine(_ raw: String, file: String, number: Int, state: inout SSHConfigState, host: String,
                             originalHost: String, flags: Flags, active: inout Bool, depth: Int) throws {
        func bad(_ why: String) -> SSHConfigError { .badLine(file: file, line: number, why) }
        let parsed: SSHConfigLine
        do {
            guard let line = try SSHConfigLine.parse(raw) else { return }
            parsed = line
        } catch let reason as SSHConfigLine.Reason {
            throw bad(reason.text)
        }
        let keyword = parsed.keyword
        var args = parsed.args[...]
        func next() -> String? { args.popFirst() }
        func required() throws -> String {
            guard let arg = next(), !arg.isEmpty else { throw bad("missing argument to \(keyword)") }
            return arg
        }

        if !SSHConfigKeywords.all.contains(keyword) {
            if let ignored = state.ignoreUnknown, Self.matchPatternList(keyword, ignored, lowercase: true) == 1 {
                return
            }
            throw bad("bad configuration option \"\(keyword)\"")
        }

        switch keyword {
        case "host":
            guard !flags.contains(.commandLine) else { throw bad("Host is not supported as a command-line option") }
            active = false
            while let arg = next() {
                guard !arg.isEmpty else { throw bad("empty argument to Host") }
                if flags.contains(.neverMatch) { args.removeAll(); break }
                let negated = arg.hasPrefix("!")
                let pattern = negated ? String(arg.dropFirst()) : arg
                if KnownHostsLine.matchPattern(Array(host.utf8)[...], Array(pattern.utf8)[...]) {
                    if negated { active = false; args.removeAll(); break }
                    active = true
                }
            }
            return
        case "match":
            guard !flags.contains(.commandLine) else { throw bad("Match is not supported as a command-line option") }
            // Match reads its criteria with strdelim, not argv_split (no backslash escapes).
            let (tokens, leftover) = SSHConfigLine.strdelimTokens(parsed.rest)
            var criteria = tokens[...]
            let result = try matchLine(&criteria, file: file, number: number, state: &state, host: host,
                                       originalHost: originalHost, flags: flags)
            active = flags.contains(.neverMatch) ? false : result
            args = leftover || !criteria.isEmpty ? ["?"] : []
        case "include":
            guard !flags.contains(.commandLine) else { throw bad("Include is not supported as a command-line option") }
            while let arg = next() {
                guard !arg.isEmpty else { throw bad("empty argument to Include") }
                if arg.hasPrefix("~") && !flags.contains(.userConfig) { throw bad("bad include path \(arg)") }
                var pattern = arg
                if !arg.hasPrefix("/") && !arg.hasPrefix("~") {
                    pattern = (flags.contains(.userConfig) ? "~/.ssh/" : "/etc/ssh/") + arg
                }
                let outer = active
                for path in glob(expandTilde(pattern)) {
                    var innerFlags = flags.union(.checkPermissions)
                    if !outer { innerFlags.insert(.neverMatch) }
                    // The included file starts in the including file's state.
                    _ = try readFile(path, state: &state, host: host, originalHost: originalHost, flags: innerFlags,
                                     startActive: active, depth: depth + 1)
                    // A Match inside an included file does not change the including file's state.
                    active = outer
                }
            }
        case "identityfile", "identityfile2":
            let arg = try required()
            if active { state.addIdentity(arg, userProvided: flags.contains(.userConfig) || flags.contains(.commandLine)) }
        case "certificatefile":
            let arg = try required()
            if active && !state.certificateFiles.contains(arg) { state.certificateFiles.append(arg) }
        case "user":
            let arg = try required()
            if active && state.user == nil { state.user = arg }
        case "hostname":
            let arg = try required()
            if active && state.hostName == nil { state.hostName = arg }
        case "hostkeyalias":
            let arg = try required()
            if active && state.hostKeyAlias == nil { state.hostKeyAlias = arg }
        case "port":
            let arg = try required()
            guard let port = Int(arg), arg.allSatisfy(\.isNumber), (1...65535).contains(port) else {
                throw bad("bad port '\(arg)'")
            }
            if active && state.port == nil { state.port = port }
        case "userknownhostsfile", "globalknownhostsfile":
            var values: [String] = []
            while let arg = next() {
                guard !arg.isEmpty else { throw bad("empty argument to \(keyword)") }
                if arg.lowercased() == "none" && (!values.isEmpty || !args.isEmpty) {
                    throw bad("\"none\" must appear alone in \(keyword)")
                }
                values.append(arg)
            }
            if keyword == "userknownhostsfile" {
                if active && state.userKnownHostsFiles == nil { state.userKnownHostsFiles = values }
            } else if active && state.globalKnownHostsFiles == nil {
                state.globalKnownHostsFiles = values
            }
        case "stricthostkeychecking":
            let arg = try required()
            let values: [String: StrictHostKeyChecking] = ["true": .yes, "yes": .yes, "false": .no, "no": .no,
                                                           "off": .no, "ask": .ask, "accept-new": .acceptNew]
            guard let value = values[arg.lowercased()] else { throw bad("unsupported option \"\(arg)\"") }
            if active && state.strictHostKeyChecking == nil { state.strictHostKeyChecking = value }
        case "identitiesonly", "hashknownhosts":
            let arg = try required()
            guard let value = Self.flag(arg) else { throw bad("unsupported option \"\(arg)\"") }
            if active {
                if keyword == "identitiesonly", state.identitiesOnly == nil { state.identitiesOnly = value }
                if keyword == "hashknownhosts", state.hashKnownHosts == nil { state.hashKnownHosts = value }
            }
        case "connecttimeout", "serveraliveinterval":
            let arg = try required()
            let value: Int
            if arg == "none" { value = -1 } else {
                guard let seconds = Self.convtime(arg) else { throw bad("invalid time value") }
                value = seconds
            }
            if active {
                if keyword == "connecttimeout", state.connectTimeout == nil { state.connectTimeout = value }
                if keyword == "serveraliveinterval", state.serverAliveInterval == nil { state.serverAliveInterval = value }
            }
        case "serveralivecountmax":
            let arg = try required()
            guard let value = Int(arg) else { throw bad("integer value \(arg) is invalid") }
            if active && state.serverAliveCountMax == nil { state.serverAliveCountMax = value }
        case "addkeystoagent":
            let arg = try required()
            let second = next()
            let values: [String: AddKeysToAgent] = ["true": .yes, "yes": .yes, "false": .no, "no": .no,
                                                    "ask": .ask, "confirm": .confirm]
            var value = values[arg.lowercased()]
            if value == .confirm, let second {
                guard Self.convtime(second) != nil else { throw bad("invalid time value") }
            } else if value == nil, second == nil {
                guard Self.convtime(arg) != nil else { throw bad("unsupported option") }
                value = .yes
            } else if value == nil || second != nil {
                throw bad("unsupported option")
            }
            if active && state.addKeysToAgent == nil { state.addKeysToAgent = value }
        case "identityagent":
            let arg = try required()
            if active && state.identityAgent == nil { state.identityAgent = arg }
        case "ignoreunknown":
            let arg = try required()
            if active && state.ignoreUnknown == nil { state.ignoreUnknown = arg }
        case "proxycommand":
            args.removeAll()
            let value = String(parsed.rest.drop(while: { $0 == " " || $0 == "\t" || $0 == "=" }))
            if active && state.proxyCommand == nil && state.proxyJump == nil { state.proxyCommand = value }
        case "proxyjump":
            args.removeAll()
            var value = Substring(parsed.rest.drop(while: { $0 == " " || $0 == "\t" || $0 == "=" }))
            if let hash = value.firstIndex(of: "#") { value = value[..<hash] }
            while let last = value.last, last == " " || last == "\t" || last == "\r" || last == "\n" { value = value.dropLast() }
            let canActivate = active && state.proxyCommand == nil && state.proxyJump == nil
            guard let rendered = Self.renderProxyJump(String(value)) else {
                throw bad("invalid ProxyJump \"\(value)\"")
            }
            if canActivate {
                state.proxyJump = rendered
                if rendered != "none" { state.proxyCommand = "none" }
            }
        default:
            // A keyword dbgbox does not use: accepted with its arguments, as ssh accepts it.
            args.removeAll()
        }
        if !args.isEmpty { throw bad("keyword \(keyword) extra arguments at end of line") }
    }

    // MARK: - Match (match_cfg_line)

    private func matchLine(_ args: inout ArraySlice<String>, file: String, number: Int, state: inout SSHConfigState,
                           host hostArgument: String, originalHost: String, flags: Flags) throws -> Bool {
        func bad(_ why: String) -> SSHConfigError { .badLine(file: file, line: number, why) }
        let finalPass = flags.contains(.final)
        let host: String
        if finalPass {
            host = state.hostName ?? hostArgument
        } else if let hostName = state.hostName {
            host = try percentExpand(hostName, ["h": hostArgument], keyword: "HostName")
        } else {
            host = hostArgument
        }
        let remoteUser = state.user ?? userName
        var result = true
        var attributes = 0
        while let first = args.popFirst(), !first.isEmpty {
            if first.hasPrefix("#") { args.removeAll(); break }
            let negate = first.hasPrefix("!")
            let attribute = (negate ? String(first.dropFirst()) : first).lowercased()
            if attribute == "all" {
                if attributes > 1 || (args.first.map { !$0.isEmpty && !$0.hasPrefix("#") } ?? false) {
                    throw bad("'\(first)' cannot be combined with other Match attributes")
                }
                args.removeAll()
                return result ? !negate : false
            }
            attributes += 1
            if attribute == "canonical" || attribute == "final" {
                if attribute == "final" { state.wantFinalPass = true }
                if finalPass == negate { result = false }
                continue
            }
            guard let argument = args.popFirst(), !argument.isEmpty, !argument.hasPrefix("#") else {
                throw bad("missing Match criteria for \(attribute)")
            }
            let matched: Bool
            switch attribute {
            case "host": matched = KnownHostsLine.matchHostname(host, Array(argument.utf8)[...]) == 1
            case "originalhost": matched = KnownHostsLine.matchHostname(originalHost, Array(argument.utf8)[...]) == 1
            case "user": matched = Self.matchPatternList(remoteUser, argument, lowercase: false) == 1
            case "localuser": matched = Self.matchPatternList(userName, argument, lowercase: false) == 1
            case "exec":
                // ssh skips the command when an earlier criterion already failed.
                guard result else { continue }
                if !flags.contains(.neverMatch) {
                    state.warnings.append("\(file) line \(number): Match exec \"\(argument)\" was taken as false: dbgbox does not run commands from ssh config")
                }
                matched = false
            default:
                throw bad("unsupported Match attribute \(attribute)")
            }
            if matched == negate { result = false }
        }
        if attributes == 0 { throw bad("one or more attributes required for Match") }
        return result
    }

    // MARK: - Defaults and expansion (fill_default_options, ssh.c main)

    private func finish(_ state: SSHConfigState, host: String, originalHost: String) throws -> ResolvedHost {
        let user = state.user ?? userName
        let port = state.port ?? 22
        var identities = state.identities
        if identities.isEmpty {
            identities = ["~/.ssh/id_rsa", "~/.ssh/id_ecdsa", "~/.ssh/id_ecdsa_sk", "~/.ssh/id_ed25519",
                          "~/.ssh/id_ed25519_sk", "~/.ssh/id_xmss", "~/.ssh/id_dsa"].map { ($0, false) }
        }
        let thisHost = localHostName
        let shortHost = String(thisHost.prefix(while: { $0 != "." }))
        let hash = Insecure.SHA1.hash(data: Data((thisHost + host + "\(port)" + user).utf8))
        let tokens: [Character: String] = [
            "C": hash.map { String(format: "%02x", $0) }.joined(), "L": shortHost, "i": "\(uid)",
            "k": state.hostKeyAlias ?? originalHost, "l": thisHost, "n": originalHost, "p": "\(port)",
            "d": home, "h": host, "r": user, "u": userName,
        ]
        func expand(_ value: String, _ keyword: String) throws -> String {
            try percentExpand(expandTilde(value), tokens, keyword: keyword, dollar: true)
        }
        let identityFiles = try identities.map(\.path).filter { $0.lowercased() != "none" }.map { try expand($0, "IdentityFile") }
        var userKnown = state.userKnownHostsFiles ?? ["~/.ssh/known_hosts", "~/.ssh/known_hosts2"]
        if userKnown.first?.lowercased() == "none" { userKnown = [] }
        var globalKnown = state.globalKnownHostsFiles ?? ["/etc/ssh/ssh_known_hosts", "/etc/ssh/ssh_known_hosts2"]
        if globalKnown.first?.lowercased() == "none" { globalKnown = [] }
        let agent = try state.identityAgent.map { try expand($0, "IdentityAgent") }
        let proxyCommand = state.proxyCommand.flatMap { $0.lowercased() == "none" ? nil : $0 }
        let proxyJump = state.proxyJump.flatMap { $0 == "none" ? nil : $0 }
        return ResolvedHost(
            originalHost: originalHost, hostName: host, user: user, port: port,
            identityFiles: identityFiles, identityFilesAsWritten: identities.map(\.path),
            identitiesOnly: state.identitiesOnly ?? false, identityAgent: agent,
            certificateFiles: state.certificateFiles, proxyJump: proxyJump, proxyCommand: proxyCommand,
            userKnownHostsFiles: try userKnown.map { try expand($0, "UserKnownHostsFile") },
            globalKnownHostsFiles: globalKnown.map { expandTilde($0) },
            strictHostKeyChecking: state.strictHostKeyChecking ?? .ask, hashKnownHosts: state.hashKnownHosts ?? false,
            hostKeyAlias: state.hostKeyAlias,
            connectTimeout: state.connectTimeout.flatMap { $0 < 0 ? nil : $0 },
            serverAliveInterval: max(state.serverAliveInterval ?? 0, 0), serverAliveCountMax: state.serverAliveCountMax ?? 3,
            addKeysToAgent: state.addKeysToAgent ?? .no, warnings: state.warnings)
    }

    /// misc.c tilde_expand for the current user: `~` and `~/…` become the home; `~user/…` that user's home.
    func expandTilde(_ path: String) -> String {
        guard path.hasPrefix("~") else { return path }
        let afterTilde = path.dropFirst()
        let name = afterTilde.prefix(while: { $0 != "/" })
        var rest = afterTilde.dropFirst(name.count).drop(while: { $0 == "/" })
        var dir = home
        if !name.isEmpty {
            guard let other = UserIdentity.lookup(name: String(name)) else { return path }
            dir = other.home
        }
        if rest.isEmpty { rest = "" }
        return dir.hasSuffix("/") ? dir + rest : dir + "/" + rest
    }

    /// misc.c percent_expand (and `${VAR}` when `dollar`): an unknown token is an error, as in ssh.
    func percentExpand(_ value: String, _ tokens: [Character: String], keyword: String, dollar: Bool = false) throws -> String {
        var out = ""
        var chars = value[...]
        while let c = chars.popFirst() {
            if dollar && c == "$" && chars.first == "{" {
                guard let close = chars.firstIndex(of: "}") else {
                    throw SSHConfigError.badExpansion(keyword: keyword, value: value, "\"${\" is not closed")
                }
                let name = String(chars[chars.index(after: chars.startIndex)..<close])
                guard let replacement = environment[name] else {
                    throw SSHConfigError.badExpansion(keyword: keyword, value: value, "environment variable ${\(name)} is not set")
                }
                out += replacement
                chars = chars[chars.index(after: close)...]
            } else if c == "%" {
                guard let key = chars.popFirst() else {
                    throw SSHConfigError.badExpansion(keyword: keyword, value: value, "a lone % at the end")
                }
                if key == "%" { out.append("%"); continue }
                guard let replacement = tokens[key] else {
                    throw SSHConfigError.badExpansion(keyword: keyword, value: value, "unknown token %\(key)")
                }
                out += replacement
            } else {
                out.append(c)
            }
        }
        return out
    }

    // MARK: - Small OpenSSH helpers

    /// match.c match_pattern_list: 1 positive, -1 negated, 0 none.
    static func matchPatternList(_ string: String, _ patterns: String, lowercase: Bool) -> Int {
        let subject = Array((lowercase ? string.lowercased() : string).utf8)[...]
        var positive = false
        for var pattern in patterns.split(separator: ",", omittingEmptySubsequences: false) {
            let negated = pattern.hasPrefix("!")
            if negated { pattern = pattern.dropFirst() }
            let p = lowercase ? pattern.lowercased() : String(pattern)
            if KnownHostsLine.matchPattern(subject, Array(p.utf8)[...]) {
                if negated { return -1 }
                positive = true
            }
        }
        return positive ? 1 : 0
    }

    static func flag(_ text: String) -> Bool? {
        switch text.lowercased() {
        case "yes", "true": return true
        case "no", "false": return false
        default: return nil
        }
    }

    /// misc.c convtime: `90`, `1m30s`, `1h`, … in seconds; nil when malformed.
    static func convtime(_ text: String) -> Int? {
        guard !text.isEmpty else { return nil }
        var total = 0
        var chars = text[...]
        while !chars.isEmpty {
            let digits = chars.prefix(while: { $0.isASCII && $0.isNumber })
            guard !digits.isEmpty, let value = Int(digits) else { return nil }
            chars = chars.dropFirst(digits.count)
            var multiplier = 1
            if let unit = chars.first {
                switch unit {
                case "s", "S": multiplier = 1
                case "m", "M": multiplier = 60
                case "h", "H": multiplier = 3600
                case "d", "D": multiplier = 86400
                case "w", "W": multiplier = 604800
                default: return nil
                }
                chars = chars.dropFirst()
            }
            let (product, overflow) = value.multipliedReportingOverflow(by: multiplier)
            guard !overflow, product <= Int(Int32.max) - total else { return nil }
            total += product
        }
        return total
    }

    /// Whether ssh treats `host` as an address (and so does not lowercase it).
    static func isAddress(_ host: String) -> Bool {
        var v4 = in_addr(), v6 = in6_addr()
        return inet_pton(AF_INET, host, &v4) == 1 || inet_pton(AF_INET6, host, &v6) == 1
    }

    /// parse_jump + dump_client_config: checks every hop, and renders the value as `ssh -G` prints it.
    static func renderProxyJump(_ value: String) -> String? {
        if value.lowercased() == "none" { return "none" }
        let hops = value.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        var parsed: [(user: String?, host: String, port: Int?)] = []
        for hop in hops {
            guard let one = parseJumpHop(hop) else { return nil }
            parsed.append(one)
        }
        guard let last = parsed.last else { return nil }
        let extra = hops.count > 1 ? hops.dropLast().joined(separator: ",") + "," : ""
        let numeric = last.host.contains(":") || last.host.allSatisfy { "1234567890.".contains($0) }
        let hostPart = numeric ? "[\(last.host)]" : last.host
        return extra + (last.user.map { "\($0)@" } ?? "") + hostPart + (last.port.map { ":\($0)" } ?? "")
    }

    /// parse_ssh_uri / parse_user_host_port for one ProxyJump hop.
    private static func parseJumpHop(_ hop: String) -> (user: String?, host: String, port: Int?)? {
        var text = Substring(hop)
        let isURI = text.lowercased().hasPrefix("ssh://")
        if isURI {
            text = text.dropFirst(6)
            if text.hasSuffix("/") { text = text.dropLast() }
        }
        var user: String?
        if let at = text.lastIndex(of: "@") {
            guard at != text.startIndex else { return nil }
            user = String(text[..<at])
            text = text[text.index(after: at)...]
        }
        var host: Substring
        var portText: Substring?
        if text.first == "[" {
            guard let close = text.firstIndex(of: "]") else { return nil }
            host = text[text.index(after: text.startIndex)..<close]
            let after = text[text.index(after: close)...]
            if !after.isEmpty {
                guard after.first == ":" else { return nil }
                portText = after.dropFirst()
            }
        } else if let colon = text.firstIndex(where: { $0 == ":" || $0 == "/" }) {
            guard text[colon] == ":" else { return nil }
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
        } else {
            host = text
        }
        guard !host.isEmpty else { return nil }
        var port: Int?
        if let portText, !portText.isEmpty {
            guard let value = Int(portText), portText.allSatisfy(\.isNumber), (1...65535).contains(value) else { return nil }
            port = value
        }
        return (user, String(host), port)
    }

    /// glob(3) as readconf's Include uses it: sorted paths, nothing when there is no match.
    public static let systemGlob: @Sendable (String) -> [String] = { pattern in
        var result = glob_t()
        defer { globfree(&result) }
        guard Glibc.glob(pattern, 0, nil, &result) == 0 else { return [] }
        return (0..<Int(result.gl_pathc)).compactMap { result.gl_pathv[$0].map { String(cString: $0) } }
    }
}

/// Options as readconf.c's `Options` holds them while reading: nil is "not set yet".
struct SSHConfigState {
    var user: String?
    var hostName: String?
    var port: Int?
    var identities: [(path: String, userProvided: Bool)] = []
    var certificateFiles: [String] = []
    var identitiesOnly: Bool?
    var identityAgent: String?
    var proxyJump: String?
    var proxyCommand: String?
    var userKnownHostsFiles: [String]?
    var globalKnownHostsFiles: [String]?
    var strictHostKeyChecking: StrictHostKeyChecking?
    var hashKnownHosts: Bool?
    var hostKeyAlias: String?
    var connectTimeout: Int?
    var serverAliveInterval: Int?
    var serverAliveCountMax: Int?
    var addKeysToAgent: AddKeysToAgent?
    var ignoreUnknown: String?
    var wantFinalPass = false
    var warnings: [String] = []

    /// add_identity_file: a path already listed with the same provenance is not added again.
    mutating func addIdentity(_ path: String, userProvided: Bool) {
        guard !identities.contains(where: { $0.path == path && $0.userProvided == userProvided }) else { return }
        identities.append((path, userProvided))
    }
}
