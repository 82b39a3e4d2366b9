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

    /// Classifies `line` (without its newline, already cut at the first NUL as getline+strdup do)
    /// on its own, as if it were the first line of a file that ends with a newline.
    static func classify(_ line: ArraySlice<UInt8>, hosts: [String]) -> Status {
        var buffer = GetlineBuffer()
        buffer.load(line)
        return classify(&buffer, hosts: hosts)
    }

    /// Classifies the line `buffer` holds (see `GetlineBuffer.load`), writing into the buffer what
    /// hostkeys_foreach writes: a NUL at the end of the host field.
    ///
    /// OpenSSH steps past that NUL (`*cp2++ = '\0'`) even when the host field runs to the end of
    /// the line's C string, and reads the key type from whatever follows in its getline buffer:
    /// the bytes after a NUL inside the line, or, on a last line without "\n", what longer earlier
    /// lines left there. So `HOST\0 KEY`, and a last `HOST` after a line `HOST2 KEY` with as long
    /// a host field, are valid entries for ssh-keygen -R.
    static func classify(_ buffer: inout GetlineBuffer, hosts: [String]) -> Status {
        let line = buffer.cString(from: 0)
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
        buffer.terminate(at: hostsEnd)
        let rest = buffer.cString(from: hostsEnd + 1)

        var matched: String?
        for host in hosts {
            guard let result = matchMaybeHashed(host, field) else { return .invalid }
            if result { matched = host; break }
        }

        let restEnd = rest.endIndex
        func isRestBlank(_ i: Int) -> Bool { i < restEnd && (rest[i] == space || rest[i] == tab) }
        var keyStart = rest.startIndex
        while isRestBlank(keyStart) { keyStart += 1 }
        if keyStart == restEnd || rest[keyStart] == hash { return .invalid }
        var typeEnd = keyStart
        while typeEnd < restEnd && rest[typeEnd] != space && rest[typeEnd] != tab { typeEnd += 1 }
        let typeLength = typeEnd - keyStart
        if typeLength <= 1 || typeLength >= 128 || typeEnd == restEnd { return .invalid }
        guard isKnownKeyType(rest[keyStart..<typeEnd]) else { return .invalid }
        var after = typeEnd
        while isRestBlank(after) { after += 1 }
        if after == restEnd || rest[after] == hash { return .invalid }
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

/// The line buffer of hostkeys_foreach: getline reads each line over the previous ones, and
/// hostkeys_foreach cuts it at its first "\n" and later puts a NUL after its host field, so bytes
/// past a line's C string are what the line itself or longer earlier lines left. Bytes never
/// written (the rest of what malloc gave) are taken as NUL.
struct GetlineBuffer {
    private(set) var bytes: [UInt8] = []

    /// Reads one line as getline does (`raw` with its "\n", if it has one, then a NUL), then cuts
    /// it at its first "\n" or NUL as hostkeys_foreach does. Returns the line as a C string: what
    /// `lineinfo.line`, and so ssh-keygen's rewrite, holds.
    @discardableResult
    mutating func load(_ raw: ArraySlice<UInt8>) -> ArraySlice<UInt8> {
        if bytes.count < raw.count + 1 { bytes += [UInt8](repeating: 0, count: raw.count + 1 - bytes.count) }
        bytes.replaceSubrange(0..<raw.count, with: raw)
        bytes[raw.count] = 0
        let cut = bytes[0..<raw.count].firstIndex { $0 == KnownHostsText.newline || $0 == 0 } ?? raw.count
        bytes[cut] = 0
        return bytes[0..<cut]
    }

    /// The C string at `offset` (empty beyond what was ever written).
    func cString(from offset: Int) -> ArraySlice<UInt8> {
        guard offset < bytes.count else { return [] }
        return bytes[offset..<(bytes[offset...].firstIndex(of: 0) ?? bytes.count)]
    }

    mutating func terminate(at offset: Int) {
        if offset < bytes.count { bytes[offset] = 0 }
    }
}
