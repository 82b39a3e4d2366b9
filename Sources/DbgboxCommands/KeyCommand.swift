import ArgumentParser
import DbgboxKit

struct Key: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Install your dbgbox public key on the cluster.",
        subcommands: [KeyInstall.self])
}

/// `dbgbox key install`: appends the public key to ~/.ssh/authorized_keys on the login host
/// (usually shared with the nodes) over libssh2.
struct KeyInstall: DbgboxCommand {
    static let configuration = CommandConfiguration(
        commandName: "install",
        abstract: "Append your public key to ~/.ssh/authorized_keys on the login host.",
        discussion: """
        Idempotent: an identical line is never added twice, existing lines are never rewritten, \
        ~/.ssh stays 0700 and authorized_keys 0600. The first install may need your password \
        (password or keyboard-interactive authentication): it is asked on the terminal. The login \
        host's key is checked against known_hosts as for `dbgbox tunnel`. Example: \
        dbgbox key install --login alice@login.cluster
        """)

    @Option(help: ArgumentHelp("The login host: [USER@]HOST[:PORT] or a Host alias.", valueName: "host"))
    var login: String

    @Option(help: ArgumentHelp("The public key to install (default: ~/.ssh/id_dbgbox.pub).", valueName: "pubfile"))
    var key: String?

    @OptionGroup var hops: HopOptions

    func run(_ context: CommandContext) throws {
        let done = try KeyInstallSession(context: context).install(
            login: login, key: key, identityFiles: hops.identity, acceptNew: hops.acceptNew,
            knownHosts: hops.knownHosts, sshConfig: hops.sshConfig)
        switch done.outcome {
        case .added: context.say("added \(done.keyPath) to ~/.ssh/authorized_keys of \(done.user) on \(done.host)")
        case .present: context.say("\(done.keyPath) is already in ~/.ssh/authorized_keys of \(done.user) on \(done.host)")
        }
    }
}
