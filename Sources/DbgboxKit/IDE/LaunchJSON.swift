import Foundation

/// VS Code's `.vscode/launch.json` is JSONC: JSON with `//` and `/* */` comments and trailing
/// commas. dbgbox adds or replaces one configuration (by its "name") as a text edit of the
/// bytes that configuration occupies; every other byte of the file stays as it was. The file is
/// parsed fully first, so a file that is not valid JSONC is refused, never rewritten.
public enum LaunchJSON {
    /// One parsed JSONC value: the bytes it spans and, for containers, what is inside.
    indirect enum Node {
        case object(range: Range<Int>, members: [(key: String, value: Node)])
        case array(range: Range<Int>, elements: [Node])
        case string(range: Range<Int>, value: String)
        case scalar(range: Range<Int>)

        var range: Range<Int> {
            switch self {
            case .object(let r, _), .array(let r, _), .string(let r, _), .scalar(let r): return r
            }
        }

        func member(_ key: String) -> [Node] {
            guard case .object(_, let members) = self else { return [] }
            return members.filter { $0.key == key }.map(\.value)
        }
    }

    /// What `merge` did.
    public enum Outcome: String, Sendable, Equatable {
        case created = "created"
        case added = "added to"
        case replaced = "replaced in"
    }

    /// `existing` (nil or blank: a new file) with the configuration `configuration` (an object's
    /// JSON text whose "name" is `name`) in `configurations`: replacing the first one named
    /// `name`, else added first. Throws `LaunchJSONError` for text that is not JSONC or not a
    /// launch.json's shape.
    public static func merge(_ existing: [UInt8]?, name: String,
                             configuration: (_ indent: String, _ unit: String, _ newline: String) -> String) throws
        -> (bytes: [UInt8], outcome: Outcome) {
        guard let bytes = existing, bytes.contains(where: { !Self.isWhitespace($0) }) else {
            let text = "{\n    \"version\": \"0.2.0\",\n    \"configurations\": [\n        "
                + configuration("        ", "    ", "\n") + "\n    ]\n}\n"
            return (Array(text.utf8), .created)
        }
        var parser = Parser(bytes: bytes)
        let root = try parser.document()
        let newline = containsCRLF(bytes) ? "\r\n" : "\n"
        guard case .object(let rootRange, let rootMembers) = root else { throw LaunchJSONError.notAnObject }
        let lists = root.member("configurations")
        guard lists.count <= 1 else { throw LaunchJSONError.twoConfigurationLists }
        guard let list = lists.first else {
            // No "configurations": one goes right after the top-level "{".
            let unit = indentUnit(bytes, at: rootMembers.isEmpty ? nil : firstMemberStart(bytes, after: rootRange.lowerBound),
                                  parentIndent: lineIndent(bytes, at: rootRange.lowerBound))
            var text = newline + unit + "\"configurations\": [" + newline + unit + unit
                + configuration(unit + unit, unit, newline) + newline + unit + "]"
            text += rootMembers.isEmpty ? newline : ","
            return (splice(bytes, rootRange.lowerBound + 1..<rootRange.lowerBound + 1, text), .added)
        }
        guard case .array(let listRange, let elements) = list else { throw LaunchJSONError.configurationsNotAList }
        let listIndent = lineIndent(bytes, at: listRange.lowerBound)
        if let same = elements.first(where: { element in
            element.member("name").contains { if case .string(_, let v) = $0 { return v == name } else { return false } }
        }) {
            let indent = lineIndent(bytes, at: same.range.lowerBound)
            let unit = indentUnit(bytes, at: same.range.lowerBound, parentIndent: listIndent)
            return (splice(bytes, same.range, configuration(indent, unit, newline)), .replaced)
        }
        if let first = elements.first {
            let indent = lineIndent(bytes, at: first.range.lowerBound)
            let unit = indentUnit(bytes, at: first.range.lowerBound, parentIndent: listIndent)
            let startsLine = onlyWhitespaceBefore(bytes, at: first.range.lowerBound)
            let text = configuration(indent, unit, newline) + "," + (startsLine ? newline + indent : " ")
            return (splice(bytes, first.range.lowerBound..<first.range.lowerBound, text), .added)
        }
        let unit = indentUnit(bytes, at: nil, parentIndent: listIndent)
        let text = newline + listIndent + unit + configuration(listIndent + unit, unit, newline) + newline + listIndent
        return (splice(bytes, listRange.lowerBound + 1..<listRange.lowerBound + 1, text), .added)
    }

    // MARK: - text helpers

    static func isWhitespace(_ b: UInt8) -> Bool { b == 0x20 || b == 0x09 || b == 0x0A || b == 0x0D }

    static func containsCRLF(_ bytes: [UInt8]) -> Bool {
        guard let lf = bytes.firstIndex(of: 0x0A) else { return false }
        return lf > 0 && bytes[lf - 1] == 0x0D
    }

    static func splice(_ bytes: [UInt8], _ range: Range<Int>, _ text: String) -> [UInt8] {
        Array(bytes[..<range.lowerBound]) + Array(text.utf8) + Array(bytes[range.upperBound...])
    }

    static func lineStart(_ bytes: [UInt8], at offset: Int) -> Int {
        var i = offset
        while i > 0 && bytes[i - 1] != 0x0A { i -= 1 }
        return i
    }

    /// The blanks that start the line holding `offset`.
    static func lineIndent(_ bytes: [UInt8], at offset: Int) -> String {
        var i = lineStart(bytes, at: offset)
        var indent = ""
        while i < offset, bytes[i] == 0x20 || bytes[i] == 0x09 { indent.append(Character(UnicodeScalar(bytes[i]))); i += 1 }
        return indent
    }

    static func onlyWhitespaceBefore(_ bytes: [UInt8], at offset: Int) -> Bool {
        bytes[lineStart(bytes, at: offset)..<offset].allSatisfy { $0 == 0x20 || $0 == 0x09 }
    }

    /// One level of indentation as the file writes it: what a child's line indent adds to its
    /// parent's; four spaces when that cannot be told.
    static func indentUnit(_ bytes: [UInt8], at child: Int?, parentIndent: String) -> String {
        guard let child, onlyWhitespaceBefore(bytes, at: child) else { return "    " }
        let indent = lineIndent(bytes, at: child)
        guard indent.hasPrefix(parentIndent), indent.count > parentIndent.count else { return "    " }
        return String(indent.dropFirst(parentIndent.count))
    }

    /// Where the first member of the object opening at `open` starts (after blanks and comments).
    static func firstMemberStart(_ bytes: [UInt8], after open: Int) -> Int? {
        var parser = Parser(bytes: bytes)
        parser.index = open + 1
        guard (try? parser.skipTrivia()) != nil, parser.index < bytes.count else { return nil }
        return parser.index
    }

    /// `value` as a JSON string literal.
    public static func quoted(_ value: String) -> String {
        var out = "\""
        for scalar in value.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 || scalar.value == 0x7F || scalar.value == 0x2028 || scalar.value == 0x2029 {
                    out += String(format: "\\u%04x", scalar.value)
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }

    // MARK: - the JSONC parser

    /// A strict JSONC parser (JSON plus comments and trailing commas, as VS Code reads
    /// launch.json), keeping every value's byte range. Bounded nesting; never traps.
    struct Parser {
        let bytes: [UInt8]
        var index = 0
        static let maxDepth = 256

        init(bytes: [UInt8]) {
            self.bytes = bytes
            // A UTF-8 byte order mark is allowed before the value.
            if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { index = 3 }
        }

        mutating func document() throws -> Node {
            try skipTrivia()
            let node = try value(depth: 0)
            try skipTrivia()
            guard index == bytes.count else { throw error("unexpected text after the end") }
            return node
        }

        func error(_ what: String) -> LaunchJSONError {
            let prefix = bytes[..<min(index, bytes.count)]
            let line = prefix.filter { $0 == 0x0A }.count + 1
            let column = index - LaunchJSON.lineStart(bytes, at: min(index, bytes.count)) + 1
            return .invalid(line: line, column: column, what: what)
        }

        mutating func skipTrivia() throws {
            while index < bytes.count {
                let b = bytes[index]
                if LaunchJSON.isWhitespace(b) {
                    index += 1
                } else if b == UInt8(ascii: "/"), index + 1 < bytes.count, bytes[index + 1] == UInt8(ascii: "/") {
                    while index < bytes.count && bytes[index] != 0x0A { index += 1 }
                } else if b == UInt8(ascii: "/"), index + 1 < bytes.count, bytes[index + 1] == UInt8(ascii: "*") {
                    let start = index
                    index += 2
                    while index + 1 < bytes.count && !(bytes[index] == UInt8(ascii: "*") && bytes[index + 1] == UInt8(ascii: "/")) {
                        index += 1
                    }
                    guard index + 1 < bytes.count else { index = start; throw error("a /* comment is never closed") }
                    index += 2
                } else {
                    return
                }
            }
        }

        mutating func value(depth: Int) throws -> Node {
            guard depth < Self.maxDepth else { throw error("nested too deeply") }
            guard index < bytes.count else { throw error("the text ends where a value should be") }
            switch bytes[index] {
            case UInt8(ascii: "{"): return try object(depth: depth)
            case UInt8(ascii: "["): return try array(depth: depth)
            case UInt8(ascii: "\""): return try string()
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try number()
            default:
                for word in ["true", "false", "null"] where bytes[index...].starts(with: Array(word.utf8)) {
                    let start = index
                    index += word.utf8.count
                    return .scalar(range: start..<index)
                }
                throw error("a value was expected")
            }
        }

        mutating func object(depth: Int) throws -> Node {
            let start = index
            index += 1
            var members: [(key: String, value: Node)] = []
            while true {
                try skipTrivia()
                guard index < bytes.count else { throw error("an object is never closed") }
                if bytes[index] == UInt8(ascii: "}") { index += 1; break }
                guard bytes[index] == UInt8(ascii: "\"") else { throw error("a member name in double quotes was expected") }
                guard case .string(_, let key) = try string() else { throw error("a member name was expected") }
                try skipTrivia()
                guard index < bytes.count, bytes[index] == UInt8(ascii: ":") else { throw error("':' was expected") }
                index += 1
                try skipTrivia()
                members.append((key, try value(depth: depth + 1)))
                try skipTrivia()
                guard index < bytes.count else { throw error("an object is never closed") }
                if bytes[index] == UInt8(ascii: ",") { index += 1; continue }
                guard bytes[index] == UInt8(ascii: "}") else { throw error("',' or '}' was expected") }
                index += 1
                break
            }
            return .object(range: start..<index, members: members)
        }

        mutating func array(depth: Int) throws -> Node {
            let start = index
            index += 1
            var elements: [Node] = []
            while true {
                try skipTrivia()
                guard index < bytes.count else { throw error("an array is never closed") }
                if bytes[index] == UInt8(ascii: "]") { index += 1; break }
                elements.append(try value(depth: depth + 1))
                try skipTrivia()
                guard index < bytes.count else { throw error("an array is never closed") }
                if bytes[index] == UInt8(ascii: ",") { index += 1; continue }
                guard bytes[index] == UInt8(ascii: "]") else { throw error("',' or ']' was expected") }
                index += 1
                break
            }
            return .array(range: start..<index, elements: elements)
        }

        mutating func string() throws -> Node {
            let start = index
            index += 1
            var units: [UInt16] = []
            var raw: [UInt8] = []
            func flushRaw() throws {
                guard !raw.isEmpty else { return }
                guard let text = String(validating: raw, as: UTF8.self) else { throw error("a string is not valid UTF-8") }
                units += Array(text.utf16)
                raw = []
            }
            while true {
                guard index < bytes.count else { index = start; throw error("a string is never closed") }
                let b = bytes[index]
                if b == UInt8(ascii: "\"") { index += 1; break }
                if b < 0x20 { throw error("a string holds a control character (write it as an escape)") }
                if b != UInt8(ascii: "\\") { raw.append(b); index += 1; continue }
                try flushRaw()
                guard index + 1 < bytes.count else { throw error("a string is never closed") }
                let e = bytes[index + 1]
                index += 2
                switch e {
                case UInt8(ascii: "\""): units.append(0x22)
                case UInt8(ascii: "\\"): units.append(0x5C)
                case UInt8(ascii: "/"): units.append(0x2F)
                case UInt8(ascii: "b"): units.append(0x08)
                case UInt8(ascii: "f"): units.append(0x0C)
                case UInt8(ascii: "n"): units.append(0x0A)
                case UInt8(ascii: "r"): units.append(0x0D)
                case UInt8(ascii: "t"): units.append(0x09)
                case UInt8(ascii: "u"):
                    guard index + 4 <= bytes.count,
                          let code = UInt16(String(decoding: bytes[index..<index + 4], as: UTF8.self), radix: 16),
                          bytes[index..<index + 4].allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 | 0x20 >= 0x61 && $0 | 0x20 <= 0x66) })
                    else { index -= 2; throw error("a \\u escape needs four hex digits") }
                    units.append(code)
                    index += 4
                default:
                    index -= 2
                    throw error("an unknown escape in a string")
                }
            }
            try flushRaw()
            return .string(range: start..<index, value: String(decoding: units, as: UTF16.self))
        }

        mutating func number() throws -> Node {
            let start = index
            func digits() -> Int {
                let from = index
                while index < bytes.count, bytes[index] >= 0x30, bytes[index] <= 0x39 { index += 1 }
                return index - from
            }
            if bytes[index] == UInt8(ascii: "-") { index += 1 }
            guard digits() > 0 else { throw error("a number was expected") }
            if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
                index += 1
                guard digits() > 0 else { throw error("digits were expected after '.'") }
            }
            if index < bytes.count, bytes[index] | 0x20 == UInt8(ascii: "e") {
                index += 1
                if index < bytes.count, bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") { index += 1 }
                guard digits() > 0 else { throw error("digits were expected in an exponent") }
            }
            return .scalar(range: start..<index)
        }
    }
}

public enum LaunchJSONError: UserFacingError, Equatable {
    case invalid(line: Int, column: Int, what: String)
    case notAnObject
    case configurationsNotAList
    case twoConfigurationLists

    public var description: String {
        switch self {
        case .invalid(let line, let column, let what):
            return "is not valid JSON with comments at line \(line), column \(column) (\(what)): fix it in VS Code, or leave out --write and add the printed configuration yourself"
        case .notAnObject:
            return "does not hold an object ({ … }) at the top: fix it, or leave out --write and add the printed configuration yourself"
        case .configurationsNotAList:
            return "has \"configurations\" that is not a list ([ … ]): fix it, or leave out --write and add the printed configuration yourself"
        case .twoConfigurationLists:
            return "has \"configurations\" twice: merge them into one, or leave out --write and add the printed configuration yourself"
        }
    }
}
