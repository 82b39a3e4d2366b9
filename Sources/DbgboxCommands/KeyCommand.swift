import ArgumentParser
import DbgboxKit
import Foundation
import SSH
#if canImport(Glibc)
import Glibc
#endif

struct Key: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Install your dbgbox public key on the cluster.",
        subcommands: [KeyInstall.self])
}

/// `dbgbox key install`: appends the public key to ~/.ssh/authorized_keys on the login host
/// (usually shared with the nodes) over libssh2.
struct KeyInstall: ParsableCommand {
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

    @Option(name: .customShort("i"), help: ArgumentHelp("An identity file to log in with (repeatable).", valueName: "key"))
    var identity: [String] = []

    @Flag(help: "Append the login host's unknown host key to known_hosts (one line) instead of refusing it.")
    var acceptNew = false

    @Option(help: ArgumentHelp("Check and record host keys in this file instead of ~/.ssh/known_hosts.", valueName: "file"))
    var knownHosts: String?

    @Option(name: .customShort("F"), help: ArgumentHelp("The ssh config file to read instead of ~/.ssh/config.", valueName: "file"))
    var sshConfig: String?

    func run() throws {
        guard let me = UserIdentity.lookup(uid: getuid()) else {
            throw DbgboxError("uid \(getuid()) has no passwd entry: dbgbox needs a user name and home directory")
        }
        let home = ProcessInfo.processInfo.environment["HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? me.home
        let keyPath = expand(key ?? "~/.ssh/id_dbgbox.pub", home: home)
        let fs = LocalFileSystem()
        guard fs.exists(keyPath) else {
            throw DbgboxError("public key \(keyPath) does not exist: run dbgbox keygen, or pass --key PUBFILE")
        }
        let data = try fs.read(keyPath, as: .publicKey)
        let line = try KeyInstaller.keyLine(from: data, path: keyPath)

        let resolver = SSHConfigResolver(home: me.home, userName: me.name, localHostName: TunnelCommand.hostName())
        let planner = TunnelPlanner(resolver: resolver, home: me.home)
        let hop = try planner.planSingleHop(try HostSpec(parsing: login), identityFiles: identity.map { expand($0, home: home) },
                                            sshConfigFile: sshConfig, allowNoCredentials: true)
        let prompter: Prompter = TerminalPrompter().isInteractive ? TerminalPrompter() : NoPrompter()
        let checker = HostKeyChecker(prompter: prompter, knownHostsOverride: knownHosts, acceptNew: acceptNew)
        let name = "\(hop.hop.label) \(hop.hop.endpoint)"

        let session: SSHSession
        do {
            session = try SSHSession(host: hop.hop.host, port: UInt16(clamping: hop.hop.port))
        } catch {
            throw DbgboxError("\(name): \(error)")
        }
        defer { session.close() }
        guard let hostKey = session.hostKey else { throw DbgboxError("\(name): no host key presented") }
        do { try checker.check(hop, key: hostKey) } catch { throw DbgboxError("\(name): host key not accepted: \(error)") }

        try HopLogin.logIn(session, hop: hop.hop, encryptedKeys: hop.encryptedKeys, prompter: prompter, name: name)
        var out = Data()
        var err = Data()
        let status = try session.execStreaming(KeyInstaller.command, input: Data((line + "\n").utf8),
                                               onStdout: { out.append($0) }, onStderr: { err.append($0) })
        guard status.code == 0, let outcome = KeyInstaller.outcome(out) else {
            let why = String(decoding: err, as: UTF8.self).split(separator: "\n").last.map(String.init) ?? "exit \(status.code)"
            throw DbgboxError("\(name): could not update ~/.ssh/authorized_keys: \(why)")
        }
        switch outcome {
        case .added: print("added \(keyPath) to ~/.ssh/authorized_keys of \(hop.hop.user) on \(hop.hop.host)")
        case .present: print("\(keyPath) is already in ~/.ssh/authorized_keys of \(hop.hop.user) on \(hop.hop.host)")
        }
    }

    private func expand(_ path: String, home: String) -> String {
        path == "~" ? home : path.hasPrefix("~/") ? home + path.dropFirst(1) : path
    }
}
