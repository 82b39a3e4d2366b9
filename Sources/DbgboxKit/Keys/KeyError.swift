import Foundation

/// What can be wrong with a key file or key line.
public enum KeyError: UserFacingError, Equatable {
    /// A public key line that is not `TYPE BASE64 [COMMENT]` with a matching blob.
    case invalidPublicKey(String)
    /// A private key file that is not a readable OpenSSH (or PEM) private key.
    case invalidPrivateKey(String)
    /// A private key that dbgbox cannot use itself (type or encryption); the reason says why.
    case unsupportedPrivateKey(String)

    public var description: String {
        switch self {
        case .invalidPublicKey(let why):
            return "not an OpenSSH public key (\(why)): expected one line `TYPE BASE64 [COMMENT]`, as in a .pub file"
        case .invalidPrivateKey(let why):
            return "not an OpenSSH private key (\(why)): create one with `dbgbox keygen`"
        case .unsupportedPrivateKey(let why):
            return why
        }
    }
}
