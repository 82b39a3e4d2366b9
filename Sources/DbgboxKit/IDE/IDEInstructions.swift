import Foundation

/// VS Code's Remote-SSH folder URI and the `code` argv that opens it.
public enum VSCodeLink {
    /// What VS Code leaves unescaped in a URI path (its encodeURIComponent minus `/`).
    static let pathCharacters = CharacterSet(charactersIn:
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~/")

    /// `vscode-remote://ssh-remote+ALIAS/PATH`, the path percent-encoded as VS Code writes it.
    public static func folderURI(alias: String, path: String) -> String {
        let encoded = path.addingPercentEncoding(withAllowedCharacters: pathCharacters) ?? path
        return "vscode-remote://ssh-remote+\(alias)\(encoded.hasPrefix("/") ? "" : "/")\(encoded)"
    }

    /// `code --folder-uri URI`.
    public static func argv(alias: String, path: String, code: String = "code") -> [String] {
        [code, "--folder-uri", folderURI(alias: alias, path: path)]
    }
}

/// The text `dbgbox ide pycharm|vscode` prints. Pure: same target, same bytes.
public enum IDEInstructions {
    /// The values for PyCharm's SSH interpreter dialog, with the steps around them.
    public static func pycharm(_ t: IDETarget) -> String {
        var out: [String] = []
        let alias = t.alias
        out.append("PyCharm: a Python interpreter over SSH in dbgbox container \(t.name)")
        out.append("")
        out.append("In PyCharm: Settings > Project: <your project> > Python Interpreter > Add Interpreter > On SSH…")
        out.append("")
        out.append("1. SSH connection (New):")
        out += field("Host", alias ?? t.host)
        out += field("Port", String(t.port))
        out += field("Username", t.user)
        if let alias {
            out.append("   Tick \"Parse config file ~/.ssh/config\": PyCharm then reads the Host block \(alias)")
            out.append("   (its port, user, key and pinned host key).")
        } else {
            out.append("   No Host block \(t.expectedAlias) in ~/.ssh/config (`dbgbox up` writes one), so PyCharm")
            out.append("   connects to \(t.host) port \(t.port) directly.")
        }
        out.append("")
        out.append("2. Authentication:")
        out += field("Authentication type", "Key pair")
        out += field("Private key file", t.identityFile)
        out += field("Passphrase", "(empty, unless you gave the key one)")
        if let fingerprint = t.hostKeyFingerprint {
            out.append("   PyCharm shows the server's host key: accept it only if it is \(fingerprint).")
        }
        out.append("")
        out.append("3. Interpreter (Existing / System Interpreter):")
        if let best = t.interpreters.first {
            out += field("Interpreter", "\(best.path)  (\(best.kind.rawValue), Python \(best.version))")
            let others = t.interpreters.dropFirst()
            if !others.isEmpty {
                out.append("   Other interpreters found:")
                for i in others { out.append("     \(i.path)  (\(i.kind.rawValue), Python \(i.version))") }
            }
        }
        out.append("")
        if let node = t.node {
            out.append("4. Sync folders (path mappings):")
            out.append("   The container runs on \(node) and sees that node's files (node → container):")
            for m in t.mounts { out.append("     \(m.source) → \(m.target)") }
            out.append("   Your local files are not there: map your local project folder to a folder under \(t.home),")
            out.append("   e.g. \(t.home)/<project>, and keep \"Automatically upload project files to the server\" ticked.")
        } else {
            out.append("4. Sync folders (path mappings), local → container:")
            for m in t.mounts { out.append("     \(m.source) → \(m.target)") }
            out.append("   Your home \(t.home) is mounted at the same path, so a project under it maps to itself:")
            out.append("   set the remote path to the project's own path and untick \"Automatically upload project")
            out.append("   files to the server\" (the container already sees your files).")
        }
        out.append("")
        out.append("Do not edit PyCharm's XML settings (sshConfigs.xml, webServers.xml, jdk.table.xml) while")
        out.append("PyCharm runs: it overwrites them. dbgbox never touches them; use the dialog.")
        return out.joined(separator: "\n") + "\n"
    }

    /// The `code --folder-uri` command and the interpreter to select.
    public static func vscode(_ t: IDETarget, path: String) -> String {
        let alias = t.alias ?? t.expectedAlias
        var out: [String] = []
        out.append("VS Code: open \(path) in dbgbox container \(t.name) over Remote-SSH")
        out.append("")
        out.append("  " + VSCodeLink.argv(alias: alias, path: path).map(quoteIfNeeded).joined(separator: " "))
        out.append("")
        out.append("Needs the Remote - SSH extension (ms-vscode-remote.remote-ssh). `dbgbox ide vscode --open` runs it.")
        if t.alias == nil {
            out.append("")
            out.append("~/.ssh/config has no Host block \(alias) yet (`dbgbox up` writes one); until then add:")
            out.append("  Host \(alias)")
            out.append("    HostName \(t.host)")
            out.append("    Port \(t.port)")
            out.append("    User \(t.user)")
            out.append("    IdentityFile \(t.identityFile)")
            out.append("    IdentitiesOnly yes")
            out.append("    HostKeyAlias \(t.expectedAlias)")
            out.append("    UserKnownHostsFile \(PinnedHostKeys.defaultPath(home: "~"))")
        }
        if let best = t.interpreters.first {
            out.append("")
            out.append("Python interpreter (Python: Select Interpreter, or in .vscode/settings.json):")
            out.append("  \"python.defaultInterpreterPath\": \"\(best.path)\"  (\(best.kind.rawValue), Python \(best.version))")
            let others = t.interpreters.dropFirst()
            if !others.isEmpty {
                out.append("Other interpreters found:")
                for i in others { out.append("  \(i.path)  (\(i.kind.rawValue), Python \(i.version))") }
            }
        }
        return out.joined(separator: "\n") + "\n"
    }

    private static func field(_ label: String, _ value: String) -> [String] {
        ["   " + label.padding(toLength: 20, withPad: " ", startingAt: 0) + value]
    }

    /// Single-quotes a word for a POSIX shell only when it has characters the shell treats specially.
    static func quoteIfNeeded(_ word: String) -> String {
        let safe = CharacterSet(charactersIn: "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789@%+=:,./-_")
        if !word.isEmpty, word.unicodeScalars.allSatisfy(safe.contains) { return word }
        return DockerfileRenderer.shellQuote(word)
    }
}
