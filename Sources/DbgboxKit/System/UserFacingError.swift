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
