/// An error the command line shows as one line: what is wrong and how to fix it.
///
/// Each domain has its own error enum conforming to this protocol. `description`
/// must be a single line (no newline) that names the problem and the next step.
public protocol UserFacingError: Error, CustomStringConvertible {
    /// The process exit code for this error (1 unless a domain says otherwise).
    var exitCode: Int32 { get }
}

extension UserFacingError {
    public var exitCode: Int32 { 1 }
}

/// A one-line error for cases not worth an enum case of their own.
public struct DbgboxError: UserFacingError, Equatable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// A value as the user gave it, for a one-line message: quoted (a leading space stays visible),
/// control characters escaped, cut to `limit` characters with "…" (a 20 MB value gives a short line).
public func shown(_ value: String, limit: Int = OneLine.shownLimit) -> String {
    guard value.unicodeScalars.count > limit else { return String(reflecting: value) }
    return String(reflecting: String(value.unicodeScalars.prefix(limit))) + "…"
}

/// What reaches stderr stays one line of reasonable length, whatever a message quotes.
public enum OneLine {
    /// How much of a value `shown` quotes.
    public static let shownLimit = 200
    /// The longest run of characters without a space a message keeps; longer ones are cut with "…"
    /// (a little more than `shownLimit`, so a value `shown` already cut is not cut again).
    public static let valueLimit = 256
    /// The longest message kept, whatever it holds.
    public static let messageLimit = 2000

    /// `message` with control characters shown as escapes, every word longer than `valueLimit`
    /// cut (a long host name or path from a file or argument), and the whole cut at `messageLimit`.
    public static func message(_ message: String) -> String {
        var out = ""
        var kept = 0
        var word = 0
        var cutting = false
        for scalar in message.unicodeScalars {
            if scalar == " " {
                word = 0
                cutting = false
            } else {
                word += 1
                if word > valueLimit {
                    if !cutting { out += "…"; kept += 1; cutting = true }
                    continue
                }
            }
            if kept >= messageLimit {
                out += "…"
                break
            }
            kept += 1
            if scalar.value < 0x20 || scalar.value == 0x7f {
                out += scalar.escaped(asASCII: true)
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
        return out
    }
}
