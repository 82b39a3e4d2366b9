import ArgumentParser
import DbgboxKit
import Foundation

struct Container: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run, list and remove your dbgbox containers.",
        subcommands: [ContainerCreate.self, ContainerList.self, ContainerRm.self])
}

/// The production wiring of the container domain, shared by the container and cleanup commands.
enum ContainerWiring {
    static func service(_ node: NodeEnvironment = .local()) -> ContainerService {
        ContainerService(docker: DockerClient(runner: node.runner), portProbe: node.portProbe)
    }

    /// Where the user's dot files live (keys, known_hosts, config): $HOME when acting for yourself,
    /// as ssh and `dbgbox keygen` do; with --user, that user's passwd home. The container mounts the
    /// passwd home, which is what the image was built with.
    static func dotHome(_ user: UserIdentity, options: UserOptions, node: NodeEnvironment = .local()) -> String {
        if options.user == nil, let home = ProcessInfo.processInfo.environment["HOME"], home.hasPrefix("/") { return home }
        // Remote: `user` is the node's user; the dot files are this machine's.
        if node.isRemote, let me = UserIdentity.lookup(uid: getuid()) { return me.home }
        return user.home
    }

    /// Run by root for `--user NAME`, files dbgbox created in that user's home must be theirs.
    static func giveToUser(_ user: UserIdentity, paths: [String]) {
        for path in paths where FileManager.default.fileExists(atPath: path) {
            _ = chown(path, user.uid, user.gid)
        }
    }

    static func warn(_ message: String) {
        FileHandle.standardError.write(Data("dbgbox: warning: \(OneLine.message(message))\n".utf8))
    }

    /// Makes a path the user typed absolute (relative to the working directory).
    static func absolute(_ path: String) -> String {
        if path.hasPrefix("/") { return path }
        if path == "~" || path.hasPrefix("~/") {
            return (ProcessInfo.processInfo.environment["HOME"] ?? "") + path.dropFirst()
        }
        return FileManager.default.currentDirectoryPath + "/" + path
    }

    /// Quotes an argv word for a POSIX shell when it needs it.
    static func shellQuote(_ word: String) -> String {
        let safe = CharacterSet(charactersIn: "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789@%+=:,./-_")
        if !word.isEmpty, word.unicodeScalars.allSatisfy(safe.contains) { return word }
        return "'" + word.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }

    static func printJSON<T: Encodable>(_ value: T) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let data = try encoder.encode(value)
        print(String(decoding: data, as: UTF8.self))
    }
}
