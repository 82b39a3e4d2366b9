import Foundation

/// One ssh_config line split as readconf.c's process_config_line_depth splits it.
struct SSHConfigLine: Equatable {
    /// The keyword, lowercased.
    var keyword: String
    /// The text after the keyword and its separator (blanks, or one `=` with blanks), as
    /// ProxyCommand and ProxyJump take it: quotes and comments left in.
    var rest: String
    /// The arguments as misc.c argv_split reads them: quotes removed, `\` escapes, `#` ends the line.
    var args: [String]

    private static let whitespace: Set<Character> = [" ", "\t", "\r", "\n"]

    /// nil for blank and comment lines. Throws the reason for lines OpenSSH rejects.
    static func parse(_ raw: String) throws -> SSHConfigLine? {
        // Strip trailing whitespace (and form feeds) as readconf does.
        var text = Substring(raw)
        while let last = text.last, whitespace.contains(last) || last == "\u{0C}" { text = text.dropLast() }
        text = text.drop(while: { whitespace.contains($0) })
        guard !text.isEmpty, text.first != "#" else { return nil }

        // The keyword ends at whitespace, a double quote or '=' (strdelim).
        let keywordEnd = text.firstIndex(where: { whitespace.contains($0) || $0 == "=" || $0 == "\"" }) ?? text.endIndex
        let keyword = text[..<keywordEnd].lowercased()
        var rest = text[keywordEnd...]
        if rest.first == "\"" { throw Reason("a quote right after the keyword \"\(keyword)\"") }
        // strdelim: skip blanks, then at most one '=', then blanks.
        var sawEquals = false
        if rest.first == "=" { sawEquals = true; rest = rest.dropFirst() }
        rest = rest.drop(while: { whitespace.contains($0) })
        if !sawEquals, rest.first == "=" { rest = rest.dropFirst() }
        rest = rest.drop(while: { whitespace.contains($0) })
        guard !rest.isEmpty else { throw Reason("no argument after keyword \"\(keyword)\"") }
        guard let args = splitArguments(rest) else { throw Reason("invalid quotes") }
        return SSHConfigLine(keyword: keyword, rest: String(rest), args: args)
    }

    /// misc.c argv_split with terminate_on_comment: nil when a quote is left open.
    static func splitArguments(_ s: Substring) -> [String]? {
        let chars = Array(s)
        var args: [String] = []
        var i = 0
        while i < chars.count {
            if chars[i] == " " || chars[i] == "\t" { i += 1; continue }
            if chars[i] == "#" { break }
            var quote: Character?
            var arg = ""
            while i < chars.count {
                let c = chars[i]
                if c == "\\", i + 1 < chars.count,
                   chars[i + 1] == "'" || chars[i + 1] == "\"" || chars[i + 1] == "\\" || (quote == nil && chars[i + 1] == " ") {
                    i += 1
                    arg.append(chars[i])
                } else if quote == nil && (c == " " || c == "\t") {
                    break
                } else if quote == nil && (c == "\"" || c == "'") {
                    quote = c
                } else if quote != nil && c == quote {
                    quote = nil
                } else {
                    arg.append(c)
                }
                i += 1
            }
            if quote != nil { return nil }
            args.append(arg)
        }
        return args
    }

    /// misc.c strdelim (split on blanks or one '='; a double-quoted part ends the token at its
    /// closing quote; no backslash escapes), as Match reads its criteria. Returns the tokens and
    /// whether text was left over that strdelim could not split (an unclosed quote).
    static func strdelimTokens(_ text: String) -> (tokens: [String], leftover: Bool) {
        let delimiters: Set<Character> = [" ", "\t", "\r", "\n", "\"", "="]
        var chars = Array(text)[...]
        var tokens: [String] = []
        while true {
            guard let stop = chars.firstIndex(where: { delimiters.contains($0) }) else {
                tokens.append(String(chars))
                return (tokens, false)
            }
            var token = String(chars[..<stop])
            if chars[stop] == "\"" {
                let quoted = chars[(stop + 1)...]
                guard let close = quoted.firstIndex(of: "\"") else { return (tokens, true) }
                token += String(quoted[..<close])
                chars = chars[(close + 1)...].drop(while: { whitespace.contains($0) })
            } else {
                let wasEquals = chars[stop] == "="
                chars = chars[(stop + 1)...].drop(while: { whitespace.contains($0) })
                if !wasEquals && chars.first == "=" { chars = chars.dropFirst().drop(while: { whitespace.contains($0) }) }
            }
            tokens.append(token)
            if token.isEmpty { return (tokens, !chars.isEmpty) }
            if chars.isEmpty { return (tokens, false) }
        }
    }

    struct Reason: Error { let text: String; init(_ text: String) { self.text = text } }
}

/// OpenSSH 9.2's readconf.c keyword table: every keyword ssh accepts (most of which dbgbox
/// reads and ignores). Any other keyword is an error, as in ssh, unless IgnoreUnknown names it.
enum SSHConfigKeywords {
    static let all: Set<String> = [
        "protocol", "cipher", "fallbacktorsh", "globalknownhostsfile2", "rhostsauthentication", "userknownhostsfile2",
        "useroaming", "usersh", "useprivilegedport", "afstokenpassing", "kerberosauthentication", "kerberostgtpassing",
        "rsaauthentication", "rhostsrsaauthentication", "compressionlevel", "gssapiauthentication",
        "gssapidelegatecredentials", "pkcs11provider", "smartcarddevice", "forwardagent", "forwardx11",
        "forwardx11trusted", "forwardx11timeout", "exitonforwardfailure", "xauthlocation", "gatewayports",
        "passwordauthentication", "kbdinteractiveauthentication", "kbdinteractivedevices",
        "challengeresponseauthentication", "skeyauthentication", "tisauthentication", "pubkeyauthentication",
        "dsaauthentication", "hostbasedauthentication", "identityfile", "identityfile2", "identitiesonly",
        "certificatefile", "addkeystoagent", "identityagent", "hostname", "hostkeyalias", "proxycommand", "port",
        "ciphers", "macs", "remoteforward", "localforward", "permitremoteopen", "user", "host", "match", "escapechar",
        "globalknownhostsfile", "userknownhostsfile", "connectionattempts", "batchmode", "checkhostip",
        "stricthostkeychecking", "compression", "tcpkeepalive", "keepalive", "numberofpasswordprompts",
        "syslogfacility", "loglevel", "logverbose", "dynamicforward", "preferredauthentications", "hostkeyalgorithms",
        "casignaturealgorithms", "bindaddress", "bindinterface", "clearallforwardings", "enablesshkeysign",
        "verifyhostkeydns", "nohostauthenticationforlocalhost", "rekeylimit", "connecttimeout", "addressfamily",
        "serveraliveinterval", "serveralivecountmax", "sendenv", "setenv", "controlpath", "controlmaster",
        "controlpersist", "hashknownhosts", "include", "tunnel", "tunneldevice", "localcommand", "permitlocalcommand",
        "remotecommand", "visualhostkey", "kexalgorithms", "ipqos", "requesttty", "sessiontype", "stdinnull",
        "forkafterauthentication", "proxyusefdpass", "canonicaldomains", "canonicalizefallbacklocal",
        "canonicalizehostname", "canonicalizemaxdots", "canonicalizepermittedcnames", "streamlocalbindmask",
        "streamlocalbindunlink", "revokedhostkeys", "fingerprinthash", "updatehostkeys",
        "hostbasedacceptedalgorithms", "hostbasedkeytypes", "pubkeyacceptedalgorithms", "pubkeyacceptedkeytypes",
        "ignoreunknown", "proxyjump", "securitykeyprovider", "knownhostscommand", "requiredrsasize",
        "enableescapecommandline",
    ]
}
