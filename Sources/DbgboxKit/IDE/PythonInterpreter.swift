import Foundation

/// A Python interpreter found inside a container.
public struct PythonInterpreter: Sendable, Equatable, Codable {
    /// Where it came from, which is also how good a default it is.
    public enum Kind: String, Sendable, Equatable, Codable {
        /// On the image's PATH outside the system directories (e.g. /usr/local/bin of python:3.x images).
        case path
        /// A conda root or env (a `conda-meta` directory beside `bin/`).
        case conda
        /// A venv (a `pyvenv.cfg` beside `bin/`).
        case venv
        /// /usr/bin or /bin: the distribution's python.
        case system
    }

    /// The path to give the IDE (not resolved: a venv's python is a symlink to its base).
    public var path: String
    /// `major.minor.micro`, as the interpreter itself reports.
    public var version: String
    public var kind: Kind

    public init(path: String, version: String, kind: Kind) {
        self.path = path
        self.version = version
        self.kind = kind
    }
}

/// How a command reaches the container: an argv prefix, and whether the far end joins the
/// remaining words into one shell line (ssh does; `docker exec` does not).
public struct CommandTransport: Sendable, Equatable {
    public var prefix: [String]
    /// True when the words after `prefix` are re-split by a remote shell, so they must be
    /// passed as one quoted command line.
    public var joinsArguments: Bool

    public init(prefix: [String], joinsArguments: Bool) {
        self.prefix = prefix
        self.joinsArguments = joinsArguments
    }

    /// `docker exec -u USER NAME …` on the machine the runner runs on.
    public static func dockerExec(container: String, user: String, docker: String = "docker") -> CommandTransport {
        CommandTransport(prefix: [docker, "exec", "-u", user, container], joinsArguments: false)
    }

    /// The runner itself runs in the container (`ContainerSessionRunner`: an exec channel over a
    /// session's tunnel, which quotes the argv for the remote shell).
    public static let session = CommandTransport(prefix: [], joinsArguments: false)

    /// `ssh HOST '…'`, never prompting (BatchMode): the alias carries port, user, key and host key.
    public static func ssh(host: String, ssh: String = "ssh") -> CommandTransport {
        CommandTransport(prefix: [ssh, "-o", "BatchMode=yes", host], joinsArguments: true)
    }

    /// The full argv that runs `command` at the far end.
    public func argv(_ command: [String]) -> [String] {
        guard joinsArguments else { return prefix + command }
        return prefix + [command.map(DockerfileRenderer.shellQuote).joined(separator: " ")]
    }
}

/// Finds Python interpreters inside a container by running one constant POSIX sh script there.
public enum InterpreterDiscovery {
    /// Candidates probed at most (each is started once to ask its version).
    public static let maxCandidates = 40

    /// Prints `SOURCE<TAB>MARK<TAB>PATH<TAB>REALPATH<TAB>VERSION` per working interpreter, where
    /// SOURCE is path|conda|venv|system (how it was found) and MARK is conda|venv|- (what its
    /// prefix holds). It takes no input and interpolates nothing: HOME and PATH are read inside.
    ///
    /// The shell's own PATH is searched: `docker exec` inherits Docker's ENV, and so does an ssh
    /// session (the entrypoint passes it to sshd as SetEnv). The image's PATH is also read from
    /// /proc/1/environ when readable, for containers of images made before that. Venvs are
    /// searched under $HOME to depth 4, skipping caches and VCS/package directories, with a
    /// bounded count.
    public static let script: String = #"""
        n=0
        emit() {
          [ "$n" -lt 40 ] || return 0
          [ -f "$2" ] && [ -x "$2" ] || return 0
          n=$((n + 1))
          v=$("$2" -E -c 'import sys; print("%d.%d.%d" % tuple(sys.version_info[:3]))' 2>/dev/null) || return 0
          [ -n "$v" ] || return 0
          r=$(readlink -f "$2" 2>/dev/null) || r=$2
          [ -n "$r" ] || r=$2
          p=${2%/*}; p=${p%/*}
          m=-
          if [ -f "$p/pyvenv.cfg" ]; then m=venv; elif [ -d "$p/conda-meta" ]; then m=conda; fi
          printf '%s\t%s\t%s\t%s\t%s\n' "$1" "$m" "$2" "$r" "$v"
        }
        imagepath=
        if [ -r /proc/1/environ ]; then
          imagepath=$(tr '\000' '\n' < /proc/1/environ 2>/dev/null | sed -n 's/^PATH=//p' | head -n 1)
        fi
        oldifs=$IFS
        IFS=:
        for d in $imagepath $PATH; do
          IFS=$oldifs
          [ -n "$d" ] || continue
          emit path "$d/python3"
          emit path "$d/python"
        done
        IFS=$oldifs
        h=${HOME:-/nonexistent}
        for root in /opt/conda /opt/miniconda3 /opt/miniforge3 /opt/mambaforge "$h/miniconda3" "$h/anaconda3" "$h/miniforge3" "$h/mambaforge" "$h/.conda"; do
          [ -d "$root" ] || continue
          emit conda "$root/bin/python"
          for e in "$root"/envs/*/bin/python; do emit conda "$e"; done
        done
        if [ -f "$h/.conda/environments.txt" ]; then
          while IFS= read -r e; do
            [ -n "$e" ] && emit conda "$e/bin/python"
          done < "$h/.conda/environments.txt"
        fi
        if [ -d "$h" ]; then
          find "$h" -maxdepth 4 \( -name node_modules -o -name .git -o -name .cache -o -name site-packages -o -name .local \) -prune -o -name pyvenv.cfg -type f -print 2>/dev/null | head -n 20 | while IFS= read -r cfg; do
            emit venv "${cfg%/pyvenv.cfg}/bin/python"
          done
        fi
        emit system /usr/bin/python3
        emit system /usr/bin/python
        emit system /usr/local/bin/python3
        exit 0
        """#

    /// Runs the script through `transport` and parses its output, best first.
    public static func discover(runner: ProcessRunner, transport: CommandTransport, target: String) throws -> [PythonInterpreter] {
        let argv = transport.argv(["sh", "-c", script])
        let result: ProcessResult
        do {
            result = try runner.run(argv, input: nil)
        } catch ProcessError.notFound(let program) {
            throw IDEError.transportMissing(program)
        }
        guard result.succeeded else {
            throw IDEError.discoveryFailed(target: target, why: condense(result.stderrText.isEmpty ? "exit code \(result.exitCode)" : result.stderrText, limit: 200))
        }
        let found = parse(result.stdoutText)
        guard !found.isEmpty else { throw IDEError.noPython(target: target) }
        return found
    }

    static let systemDirectories: Set<String> = ["/usr/bin", "/bin", "/usr/sbin", "/sbin"]

    /// Parses the script's lines: malformed lines are skipped; duplicates (the same path, or the
    /// same real file in the same directory such as python and python3) are kept once; the order is
    /// the image's PATH first, then conda, then venvs, then the system python, each in the order found.
    public static func parse(_ output: String) -> [PythonInterpreter] {
        var seenPaths = Set<String>()
        var seenTargets = Set<String>()
        var ranked: [(rank: Int, index: Int, interpreter: PythonInterpreter)] = []
        for line in output.split(whereSeparator: \.isNewline) {
            let fields = line.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
            guard fields.count == 5, fields[2].hasPrefix("/"), !fields[4].isEmpty,
                  fields[4].allSatisfy({ $0.isNumber || $0 == "." }) else { continue }
            let (source, mark, path, real, version) = (fields[0], fields[1], fields[2], fields[3], fields[4])
            let dir = Templates.parent(path)
            let kind: PythonInterpreter.Kind
            switch mark {
            case "venv": kind = .venv
            case "conda": kind = .conda
            default: kind = systemDirectories.contains(dir) || source == "system" ? .system : .path
            }
            // A venv's python is a symlink to its base, so only the system python is keyed by its
            // real file alone (/bin/python3 and /usr/bin/python3 on a merged /usr are one).
            let targetKey = kind == .system ? real : dir + "\u{0}" + real
            guard seenPaths.insert(path).inserted, seenTargets.insert(targetKey).inserted else { continue }
            let rank: Int
            if source == "path" && kind != .system {
                rank = 0
            } else {
                switch kind {
                case .path, .conda: rank = 1
                case .venv: rank = 2
                case .system: rank = 3
                }
            }
            ranked.append((rank, ranked.count, PythonInterpreter(path: path, version: version, kind: kind)))
        }
        return ranked.sorted { ($0.rank, $0.index) < ($1.rank, $1.index) }.map(\.interpreter)
    }
}
