import ArgumentParser
import DbgboxKit

struct Keygen: DbgboxCommand {
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

    func run(_ context: CommandContext) throws {
        let algorithm = try SSHKeyAlgorithm(argument: keyType)
        let home = try context.home()
        let user = (try? context.me().name) ?? context.environment["USER"] ?? "user"
        let request = KeygenRequest(name: name, directory: TildePath.expand(dir, home: home), algorithm: algorithm,
                                    // USER@HOSTNAME, as ssh-keygen's default comment.
                                    comment: comment ?? "\(user)@\(context.hostName)", force: force)
        let result = try KeyPairWriter(fs: context.files).write(request)
        if let tree = result.gitWorkTree {
            context.warn("\(request.directory) is inside the git work tree \(tree): never commit \(result.privateKeyPath); prefer --dir ~/.ssh")
        }
        context.say(result.publicKey.fingerprintLine)
        context.say("private key: \(result.privateKeyPath)")
        context.say("public key:  \(result.publicKeyPath)")
    }
}
