import Foundation

/// A debugger that attaches through the session: VS Code's debugpy "attach" configuration and
/// PyCharm's Python Debug Server. Pure text; `LaunchJSONFile` writes the configuration.
public struct DebugAttach: Sendable, Equatable {
    /// The session or container (the configuration is named after it).
    public var target: IDETarget
    /// The port debugpy (or PyCharm's server) uses inside the container, on its 127.0.0.1.
    public var containerPort: Int
    /// The laptop's end of it (a forwarded port; until forwards exist, the same port).
    public var localPort: Int
    /// The container folder VS Code's open folder (`${workspaceFolder}`) maps to, when given.
    public var remoteRoot: String?
    /// The session forwards the port itself (`dbgbox forward`): no ssh command to keep running.
    public var forwarded: PortForward?

    public init(target: IDETarget, containerPort: Int, localPort: Int, remoteRoot: String? = nil, forwarded: PortForward? = nil) {
        self.target = target
        self.containerPort = containerPort
        self.localPort = localPort
        self.remoteRoot = remoteRoot
        self.forwarded = forwarded
    }

    /// For `containerPort`, through the session's own forward (`.forward`, VS Code's attach) or
    /// reverse (`.reverse`, PyCharm's debug server) of it when the session `store` records one
    /// (its LOCAL is the laptop's port); else the laptop's port is the container's.
    public static func session(_ target: IDETarget, containerPort: Int, direction: PortForward.Direction,
                               remoteRoot: String? = nil, store: SessionStore?) -> DebugAttach {
        let record = (try? store?.load(target.name)) ?? nil
        let forward = (record?.forwards ?? []).first { $0.direction == direction && $0.port == containerPort }
        return DebugAttach(target: target, containerPort: containerPort, localPort: forward?.local ?? containerPort,
                           remoteRoot: remoteRoot, forwarded: forward)
    }

    /// Checks a port given on the command line.
    public static func validatePort(_ port: Int, option: String) throws {
        guard (1...65535).contains(port) else { throw DebugAttachError.portOutOfRange(option: option, port: port) }
    }

    /// "dbgbox: attach NAME": the configuration's name, which `--write` replaces on a rerun.
    public var configurationName: String { "dbgbox: attach \(target.name)" }

    /// Local path → container path: the open folder first (with --remote-root), then the mounts.
    public var mappings: [PathMapping] {
        (remoteRoot.map { [PathMapping(source: "${workspaceFolder}", target: $0)] } ?? []) + target.mounts
    }

    /// The interpreter the program runs under (the best one found, else python3).
    public var python: String { target.interpreters.first?.path ?? "python3" }

    /// The debugpy "attach" configuration as JSON text: its first line unindented, the others
    /// starting with `indent`, nested levels with `unit` more, lines joined with `newline`.
    public func vscodeConfiguration(indent: String = "", unit: String = "    ", newline: String = "\n") -> String {
        let i1 = indent + unit, i2 = indent + unit + unit
        var lines = ["{"]
        lines.append(i1 + "\"name\": " + LaunchJSON.quoted(configurationName) + ",")
        lines.append(i1 + "\"type\": \"debugpy\",")
        lines.append(i1 + "\"request\": \"attach\",")
        lines.append(i1 + "\"connect\": { \"host\": \"127.0.0.1\", \"port\": \(localPort) },")
        lines.append(i1 + "\"pathMappings\": [")
        let maps = mappings.map {
            i2 + "{ \"localRoot\": " + LaunchJSON.quoted($0.source) + ", \"remoteRoot\": " + LaunchJSON.quoted($0.target) + " }"
        }
        lines.append(contentsOf: maps.enumerated().map { $0.offset < maps.count - 1 ? $0.element + "," : $0.element })
        lines.append(i1 + "],")
        lines.append(i1 + "\"justMyCode\": false")
        lines.append(indent + "}")
        return lines.joined(separator: newline)
    }

    /// argv that starts a program under debugpy in the container, waiting for VS Code.
    public func debugpyArgv(program: String = "YOUR_SCRIPT.py") -> [String] {
        [python, "-m", "debugpy", "--listen", "127.0.0.1:\(containerPort)", "--wait-for-client", program]
    }

    var alias: String { target.alias ?? target.expectedAlias }

    /// What the user must run until `dbgbox forward` carries the port: an ssh forward through
    /// the Host block (it rides the session's ssh master).
    var forwardArgv: [String] {
        ["ssh", "-N", "-L", "127.0.0.1:\(localPort):127.0.0.1:\(containerPort)", alias]
    }

    var reverseArgv: [String] {
        ["ssh", "-N", "-R", "127.0.0.1:\(containerPort):127.0.0.1:\(localPort)", alias]
    }

    /// `dbgbox ide vscode NAME --attach PORT`: the configuration and the commands around it.
    /// `written`: where `--write` put it, and how.
    public func vscodeInstructions(written: (path: String, outcome: LaunchJSON.Outcome)? = nil) -> String {
        var out: [String] = []
        out.append("VS Code: attach the Python debugger (debugpy) to a program in dbgbox container \(target.name)")
        out.append("")
        if let written {
            out.append("Configuration \"\(configurationName)\" \(written.outcome.rawValue) \(written.path):")
        } else {
            out.append("Add to .vscode/launch.json, \"configurations\" (or rerun with --write PROJECT_DIR):")
        }
        out.append("")
        out.append("  " + vscodeConfiguration(indent: "  "))
        out.append("")
        out += portSteps(reverse: false)
        out.append("")
        out.append("Start the program in the container under debugpy (it waits for VS Code), e.g. in `ssh \(alias)`:")
        out.append("  " + debugpyArgv().map(IDEInstructions.quoteIfNeeded).joined(separator: " "))
        out.append("  (debugpy missing? `\(IDEInstructions.quoteIfNeeded(python)) -m pip install debugpy`)")
        out.append("")
        out.append("Then in VS Code: Run and Debug > \"\(configurationName)\" (needs the Python Debugger extension, ms-python.debugpy).")
        out += mappingNote()
        return out.joined(separator: "\n") + "\n"
    }

    /// `dbgbox ide pycharm NAME --debug-server PORT`: the Python Debug Server's values, the
    /// reverse forward, and the settrace line.
    public func pycharmDebugServerInstructions() -> String {
        var out: [String] = []
        out.append("PyCharm: the Python Debug Server for a program in dbgbox container \(target.name)")
        out.append("")
        out.append("In PyCharm: Run > Edit Configurations… > + > Python Debug Server:")
        out.append("   " + "IDE host name".padding(toLength: 20, withPad: " ", startingAt: 0) + "127.0.0.1")
        out.append("   " + "Port".padding(toLength: 20, withPad: " ", startingAt: 0) + String(localPort))
        out.append("   " + "Path mappings".padding(toLength: 20, withPad: " ", startingAt: 0) + "(local path = remote path)")
        for m in mappings { out.append("     \(m.source) = \(m.target)") }
        out.append("Start it with Debug: PyCharm then listens on 127.0.0.1:\(localPort) here.")
        out.append("")
        out += portSteps(reverse: true)
        out.append("")
        out.append("In the container, install the matching client (its version must match PyCharm's build, e.g. 241.*):")
        out.append("  \(IDEInstructions.quoteIfNeeded(python)) -m pip install 'pydevd-pycharm~=YOUR_PYCHARM_BUILD'")
        out.append("and put this where the program should connect (it stops there):")
        out.append("  import pydevd_pycharm")
        out.append("  pydevd_pycharm.settrace('127.0.0.1', port=\(containerPort), stdoutToServer=True, stderrToServer=True, suspend=True)")
        out += mappingNote()
        return out.joined(separator: "\n") + "\n"
    }

    private func portSteps(reverse: Bool) -> [String] {
        if let forwarded {
            return ["The port: the session forwards it (\(forwarded.summary), `dbgbox status` lists it); nothing else to run."]
        }
        let argv = (reverse ? reverseArgv : forwardArgv).map(IDEInstructions.quoteIfNeeded).joined(separator: " ")
        let what = reverse
            ? "127.0.0.1:\(containerPort) in the container must reach 127.0.0.1:\(localPort) here (a reverse forward)"
            : "127.0.0.1:\(localPort) here must reach 127.0.0.1:\(containerPort) in the container (a forward)"
        return [
            "The port: \(what). Let the session carry it: dbgbox forward \(target.name) \(reverse ? "--reverse \(localPort):\(containerPort)" : "\(containerPort):\(localPort)")",
            "(or keep this running in a terminal; it rides the session's ssh connection, through the Host block \(alias)):",
            "  " + argv,
        ]
    }

    private func mappingNote() -> [String] {
        guard target.node != nil else { return [] }
        var note = ["", "The mappings' local paths are the node's (the container's mounts): they match your files only where"]
        note.append("the laptop sees the same paths. Otherwise map your project with --remote-root CONTAINER_PATH (the")
        note.append("folder VS Code has open, ${workspaceFolder}, then maps to it).")
        return note
    }
}

public enum DebugAttachError: UserFacingError, Equatable {
    case portOutOfRange(option: String, port: Int)
    case notADirectory(path: String)
    case vscodeNotADirectory(path: String)
    case launchFile(path: String, why: String)

    public var description: String {
        switch self {
        case .portOutOfRange(let option, let port):
            return "\(option) \(port) is outside 1-65535: give the port the debugger listens on, e.g. \(option) 5678"
        case .notADirectory(let path):
            return "--write \(path): not an existing directory: give your project folder (where .vscode/ belongs)"
        case .vscodeNotADirectory(let path):
            return "\(path) is not a directory: VS Code keeps launch.json in a .vscode directory; move that file away"
        case .launchFile(let path, let why):
            return "\(path) \(why)"
        }
    }
}

/// `DIR/.vscode/launch.json`: read once (a regular file, at most 1 MiB), the configuration
/// merged in as text (`LaunchJSON.merge`), written back atomically. A symbolic link is followed
/// and the file it names is replaced; a file that is not JSONC is refused and left as it is.
public struct LaunchJSONFile {
    public let projectDirectory: String
    let fs: FileSystem

    public init(projectDirectory: String, fs: FileSystem = LocalFileSystem()) {
        self.projectDirectory = projectDirectory
        self.fs = fs
    }

    public var directory: String { projectDirectory + "/.vscode" }
    public var path: String { directory + "/launch.json" }

    /// Adds or replaces `attach`'s configuration; returns the path written and what was done.
    public func write(_ attach: DebugAttach) throws -> (path: String, outcome: LaunchJSON.Outcome) {
        guard fs.isDirectory(projectDirectory) else { throw DebugAttachError.notADirectory(path: projectDirectory) }
        if fs.exists(directory), !fs.isDirectory(directory) { throw DebugAttachError.vscodeNotADirectory(path: directory) }
        let existing: [UInt8]?
        var target = path
        if fs.exists(path) {
            do {
                existing = [UInt8](try fs.read(path, as: .launchConfig))
            } catch let error as FileSystemError {
                throw DebugAttachError.launchFile(path: path, why: error.reason)
            }
            target = try fs.realPath(path)
        } else {
            existing = nil
        }
        let merged: (bytes: [UInt8], outcome: LaunchJSON.Outcome)
        do {
            merged = try LaunchJSON.merge(existing, name: attach.configurationName) { indent, unit, newline in
                attach.vscodeConfiguration(indent: indent, unit: unit, newline: newline)
            }
        } catch let error as LaunchJSONError {
            throw DebugAttachError.launchFile(path: path, why: error.description)
        }
        if !fs.isDirectory(directory) { try fs.createDirectory(directory, mode: 0o755) }
        try fs.writeAtomically(Data(merged.bytes), to: target, mode: existing == nil ? 0o644 : nil)
        return (path, merged.outcome)
    }
}
