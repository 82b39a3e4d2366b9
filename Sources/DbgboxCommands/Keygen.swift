import ArgumentParser
import DbgboxKit
import Foundation
#if canImport(Glibc)
import Glibc
#endif

struct Keygen: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Generate an SSH key pair for dbgbox (OpenSSH format).",
        discussion: """
        Writes DIR/id_NAME (mode 0600) and DIR/id_NAME.pub (0644), by default ~/.ssh/id_dbgbox. \
        RSA is refused: libssh2 1.10 cannot sign with rsa-sha2, so modern sshd would reject the key.
        """
    )

    @Argument(help: "Key name: the files are id_NAME and id_NAME.pub.")
    var name: String = "dbgbox"

    @Option(help: "Directory for the key files (created 0700 if missing).")
    var dir: String = "~/.ssh"

    @Option(name: .customLong("type"), help: "Key type: ed25519 (default) or ecdsa (P-256).")
    var keyType: String = "ed25519"

    @Option(help: "Key comment, one line without control characters (default USER@HOSTNAME).")
    var comment: String?

    @Flag(help: "Replace an existing key pair of that name.")
    var force = false

    func run() throws {
        let algorithm = try SSHKeyAlgorithm(argument: keyType)
        let home = TildePath.home()
        let request = KeygenRequest(name: name, directory: TildePath.expand(dir, home: home), algorithm: algorithm,
                                    comment: comment ?? Self.defaultComment(), force: force)
        let result = try KeyPairWriter().write(request)
        if let tree = result.gitWorkTree {
            FileHandle.standardError.write(Data(
                "dbgbox: warning: \(request.directory) is inside the git work tree \(tree): never commit \(result.privateKeyPath); prefer --dir ~/.ssh\n".utf8))
        }
        print(result.publicKey.fingerprintLine)
        print("private key: \(result.privateKeyPath)")
        print("public key:  \(result.publicKeyPath)")
    }

    /// USER@HOSTNAME, as ssh-keygen's default comment.
    static func defaultComment() -> String {
        let user = UserIdentity.lookup(uid: getuid())?.name ?? ProcessInfo.processInfo.environment["USER"] ?? "user"
        var buffer = [CChar](repeating: 0, count: 256)
        let host = gethostname(&buffer, buffer.count) == 0
            ? String(decoding: buffer.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
            : "localhost"
        return "\(user)@\(host)"
    }
}
