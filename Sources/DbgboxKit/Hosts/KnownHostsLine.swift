import Crypto
import Foundation

/// OpenSSH's reading of one known_hosts line (hostfile.c hostkeys_foreach_file, match.c),
/// reproduced on bytes so that a removal keeps every other byte exactly as ssh-keygen does.
enum KnownHostsLine {
    enum Status: Equatable {
        /// Blank or `#` line.
        case comment
        /// A line OpenSSH cannot read (bad marker, bad hash salt, unknown or missing key type).
        case invalid
        /// A valid entry; `matched` is the first asked host it matches, `marker` whether it is
        /// an @cert-authority / @revoked line.
        case entry(matched: String?, marker: Bool)
    }

    private static let space = UInt8(ascii: " "), tab = UInt8(ascii: "\t"), hash = UInt8(ascii: "#")
    private static let at = UInt8(ascii: "@"), bar = UInt8(ascii: "|")

    /// Classifies `line` (without its newline, already cut at the first NUL as getline+strdup do).
    static func classify(_ line: ArraySlice<UInt8>, hosts: [String]) -> Status {
        var cp = line.startIndex
        let end = line.endIndex
        func isBlank(_ i: Int) -> Bool { i < end && (line[i] == space || line[i] == tab) }
        while isBlank(cp) { cp += 1 }
        if cp == end || line[cp] == hash { return .comment }

        guard let (afterMarker, marker) = checkMarkers(line, from: cp) else { return .invalid }
        cp = afterMarker

        var hostsEnd = cp
        while hostsEnd < end && line[hostsEnd] != space && line[hostsEnd] != tab { hostsEnd += 1 }
        let field = line[cp..<hostsEnd]
        // OpenSSH steps past the terminator even at the end of the string; whatever it then
        // reads, a line that is only a host field has no key: invalid.
        guard hostsEnd < end else { return .invalid }

        var matched: String?
        for host in hosts {
            guard let result = matchMaybeHashed(host, field) else { return .invalid }
            if result { matched = host; break }
        }

        var keyStart = hostsEnd + 1
        while isBlank(keyStart) { keyStart += 1 }
        if keyStart == end || line[keyStart] == hash { return .invalid }
        var typeEnd = keyStart
        while typeEnd < end && line[typeEnd] != space && line[typeEnd] != tab { typeEnd += 1 }
        let typeLength = typeEnd - keyStart
        if typeLength <= 1 || typeLength >= 128 || typeEnd == end { return .invalid }
        guard isKnownKeyType(line[keyStart..<typeEnd]) else { return .invalid }
        var rest = typeEnd
        while isBlank(rest) { rest += 1 }
        if rest == end || line[rest] == hash { return .invalid }
        return .entry(matched: matched, marker: marker)
    }

    /// hostfile.c check_markers, including its quirk of taking the first space anywhere on
    /// the line (else the first tab) as the marker's end.
    private static func checkMarkers(_ line: ArraySlice<UInt8>, from start: Int) -> (Int, Bool)? {
        var cp = start
        var marker = false
        while cp < line.endIndex && line[cp] == at {
            if marker { return nil }
            guard let sp = line[cp...].firstIndex(of: space) ?? line[cp...].firstIndex(of: tab) else { return nil }
            if sp <= cp + 1 || sp >= cp + 32 { return nil }
            let word = Array(line[cp..<sp])
            guard word == Array("@cert-authority".utf8) || word == Array("@revoked".utf8) else { return nil }
            marker = true
            cp = sp
            while cp < line.endIndex && (line[cp] == space || line[cp] == tab) { cp += 1 }
        }
        return (cp, marker)
    }

    /// hostfile.c match_maybe_hashed: nil for a hashed field whose salt OpenSSH cannot read.
    static func matchMaybeHashed(_ host: String, _ field: ArraySlice<UInt8>) -> Bool? {
        if field.first == bar {
            guard let hashed = hashedName(host, saltFrom: field) else { return nil }
            return Array(hashed.utf8) == Array(field)
        }
        return matchHostname(host, field) == 1
    }

    /// `|1|base64(salt)|base64(HMAC-SHA1(salt, host))` with the salt of `field`, as host_hash does.
    static func hashedName(_ host: String, saltFrom field: ArraySlice<UInt8>) -> String? {
        let magic = Array("|1|".utf8)
        guard field.starts(with: magic) else { return nil }
        let afterMagic = field.dropFirst(magic.count)
        guard let bar = afterMagic.firstIndex(of: bar) else { return nil }
        let encoded = afterMagic[..<bar]
        guard !encoded.isEmpty, encoded.count <= 1024,
              let salt = Data(base64Encoded: String(decoding: encoded, as: UTF8.self)), salt.count == Insecure.SHA1.byteCount
        else { return nil }
        return hashedName(host, salt: salt)
    }

    static func hashedName(_ host: String, salt: Data) -> String {
        let mac = HMAC<Insecure.SHA1>.authenticationCode(for: Data(host.utf8), using: SymmetricKey(data: salt))
        return "|1|\(salt.base64EncodedString())|\(Data(mac).base64EncodedString())"
    }

    /// match.c match_hostname: the host lowercased, matched against a comma list of patterns
    /// (lowercased, `*` and `?` wildcards, `!` negation). 1 positive, -1 negated, 0 none.
    static func matchHostname(_ host: String, _ patterns: ArraySlice<UInt8>) -> Int {
        let name = Array(host.utf8).map(asciiLower)
        var gotPositive = false
        var i = patterns.startIndex
        let end = patterns.endIndex
        while i < end {
            var negated = false
            if patterns[i] == UInt8(ascii: "!") { negated = true; i += 1 }
            var sub: [UInt8] = []
            while i < end && sub.count < 1023 && patterns[i] != UInt8(ascii: ",") {
                sub.append(asciiLower(patterns[i]))
                i += 1
            }
            if sub.count >= 1023 { return 0 }
            if i < end && patterns[i] == UInt8(ascii: ",") { i += 1 }
            if matchPattern(name[...], sub[...]) {
                if negated { return -1 }
                gotPositive = true
            }
        }
        return gotPositive ? 1 : 0
    }

    /// match.c match_pattern: `*` any run, `?` any one byte, everything else literal.
    static func matchPattern(_ s: ArraySlice<UInt8>, _ pattern: ArraySlice<UInt8>) -> Bool {
        var s = s, p = pattern
        let star = UInt8(ascii: "*"), question = UInt8(ascii: "?")
        while true {
            guard let pc = p.first else { return s.isEmpty }
            if pc == star {
                while p.first == star { p = p.dropFirst() }
                guard !p.isEmpty else { return true }
                while !s.isEmpty {
                    if matchPattern(s, p) { return true }
                    s = s.dropFirst()
                }
                return false
            }
            guard let sc = s.first else { return false }
            if pc != question && pc != sc { return false }
            s = s.dropFirst()
            p = p.dropFirst()
        }
    }

    private static func asciiLower(_ byte: UInt8) -> UInt8 {
        byte >= 65 && byte <= 90 ? byte + 32 : byte
    }

    /// sshkey_type_from_name on Debian's OpenSSH 9.2 (OpenSSL, security keys, no XMSS): full
    /// names exactly, short names of plain key types case-insensitively.
    static func isKnownKeyType(_ bytes: ArraySlice<UInt8>) -> Bool {
        let name = String(decoding: bytes, as: UTF8.self)
        return keyTypeNames.contains(name) || keyShortNames.contains(String(decoding: bytes.map(asciiLower), as: UTF8.self))
    }

    private static let keyShortNames: Set<String> = ["ed25519", "ed25519-sk", "ecdsa", "ecdsa-sk", "dsa", "rsa"]
    private static let keyTypeNames: Set<String> = {
        let plain = ["ssh-ed25519", "sk-ssh-ed25519@openssh.com", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384",
                     "ecdsa-sha2-nistp521", "sk-ecdsa-sha2-nistp256@openssh.com", "ssh-dss", "ssh-rsa",
                     "rsa-sha2-256", "rsa-sha2-512"]
        var names = Set(plain.map { name -> String in
            // Certificate type names insert -cert-v01 before any @domain.
            if let at = name.firstIndex(of: "@") { return name[..<at] + "-cert-v01" + name[at...] }
            return name + "-cert-v01@openssh.com"
        })
        names.formUnion(plain)
        names.insert("webauthn-sk-ecdsa-sha2-nistp256@openssh.com")
        return names
    }()
}
