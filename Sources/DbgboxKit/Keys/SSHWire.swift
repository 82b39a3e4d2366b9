import Foundation

/// Builds SSH wire-format data (RFC 4251 §5): uint32, string, mpint.
struct SSHWireWriter {
    private(set) var data = Data()

    mutating func u32(_ value: UInt32) {
        data.append(contentsOf: [UInt8(value >> 24), UInt8(value >> 16 & 0xff), UInt8(value >> 8 & 0xff), UInt8(value & 0xff)])
    }

    mutating func string<Bytes: Collection>(_ bytes: Bytes) where Bytes.Element == UInt8 {
        u32(UInt32(bytes.count))
        data.append(contentsOf: bytes)
    }

    mutating func string(_ text: String) { string(Array(text.utf8)) }

    /// An unsigned big-endian integer as an mpint: leading zeros stripped, a zero byte
    /// prepended when the high bit is set (as OpenSSH's sshbuf_put_bignum2_bytes does).
    mutating func mpint<Bytes: Collection>(unsigned bytes: Bytes) where Bytes.Element == UInt8 {
        var trimmed = Array(bytes.drop(while: { $0 == 0 }))
        if let first = trimmed.first, first & 0x80 != 0 { trimmed.insert(0, at: 0) }
        string(trimmed)
    }

    mutating func raw<Bytes: Sequence>(_ bytes: Bytes) where Bytes.Element == UInt8 {
        data.append(contentsOf: bytes)
    }
}

/// Reads SSH wire-format data; every read fails cleanly on truncated input.
struct SSHWireReader {
    struct Truncated: Error {}

    private let bytes: [UInt8]
    private(set) var offset = 0

    init<D: Collection>(_ data: D) where D.Element == UInt8 { bytes = Array(data) }

    var remaining: ArraySlice<UInt8> { bytes[offset...] }
    var isAtEnd: Bool { offset == bytes.count }

    mutating func u32() throws -> UInt32 {
        let raw = try take(4)
        return raw.reduce(0) { $0 << 8 | UInt32($1) }
    }

    mutating func string() throws -> [UInt8] {
        let length = try u32()
        return Array(try take(Int(length)))
    }

    mutating func text() throws -> String { String(decoding: try string(), as: UTF8.self) }

    /// An mpint that must be non-negative, returned as its magnitude (no leading zeros).
    mutating func unsignedMPInt() throws -> [UInt8] {
        let raw = try string()
        if let first = raw.first, first & 0x80 != 0 { throw Truncated() }
        return Array(raw.drop(while: { $0 == 0 }))
    }

    mutating func take(_ count: Int) throws -> ArraySlice<UInt8> {
        guard count >= 0, bytes.count - offset >= count else { throw Truncated() }
        defer { offset += count }
        return bytes[offset..<offset + count]
    }
}

extension Data {
    /// Standard base64 without `=` padding, as OpenSSH prints SHA256 fingerprints.
    var unpaddedBase64: String {
        var text = base64EncodedString()
        while text.hasSuffix("=") { text.removeLast() }
        return text
    }
}
