import Foundation
import XCTest
@testable import DbgboxKit

/// `dbgbox image create` against the real engine, run as the ordinary test user, and the image's
/// runtime contract exercised with plain docker and OpenSSH (what `container create` relies on).
final class ImageIntegrationTests: XCTestCase {
    private var images: [String] = []
    private var containers: [String] = []
    private var dirs: [String] = []

    /// One image from IT.baseImage for the tests that only run it; removing an image also prunes
    /// its untagged layers, so building per test would redo apt-get every time.
    nonisolated(unsafe) private static var shared: (image: String, home: String, key: String)?

    override class func tearDown() {
        if let shared {
            _ = try? IT.runner.run(["docker", "image", "rm", "-f", shared.image])
            try? FileManager.default.removeItem(atPath: shared.home)
        }
        shared = nil
        super.tearDown()
    }

    private func sharedImage() throws -> (image: String, home: String, key: String) {
        if let shared = Self.shared { return shared }
        let (home, key) = try homeWithKey(keep: true)
        let image = try createImage(base: IT.baseImage, home: home, keep: true)
        Self.shared = (image, home, key)
        return (image, home, key)
    }

    override func tearDown() {
        for name in containers { _ = try? IT.runner.run(["docker", "rm", "-f", name]) }
        for image in images.reversed() { _ = try? IT.runner.run(["docker", "image", "rm", "-f", image]) }
        for dir in dirs { try? FileManager.default.removeItem(atPath: dir) }
        super.tearDown()
    }

    // MARK: helpers

    private func suffix() -> String { String(UUID().uuidString.prefix(8)).lowercased() }

    private func docker(_ args: [String], input: Data? = nil, file: StaticString = #filePath, line: UInt = #line) throws -> ProcessResult {
        let result = try IT.runner.run(["docker"] + args, input: input)
        XCTAssertEqual(result.exitCode, 0, "docker \(args.prefix(3).joined(separator: " ")): \(result.stderrText)", file: file, line: line)
        return result
    }

    /// A home for the test user with an ed25519 key pair in it, made before any build, so that the
    /// build cannot pick it up without the test noticing.
    private func homeWithKey(keep: Bool = false) throws -> (home: String, key: String) {
        let home = try IT.scratchDir("image-home")
        if !keep { dirs.append(home) }
        let keygen = try IT.asUser(["sh", "-c", "mkdir -m 700 -p \"$HOME/.ssh\" && ssh-keygen -q -t ed25519 -N '' -C it -f \"$HOME/.ssh/id_dbgbox\""], home: home)
        XCTAssertEqual(keygen.exitCode, 0, keygen.stderrText)
        return (home, "\(home)/.ssh/id_dbgbox")
    }

    /// Runs `dbgbox image create` as the test user; returns the image name.
    @discardableResult
    private func createImage(base: String, home: String, extra: [String] = [], keep: Bool = false) throws -> String {
        let name = "dbgbox-it/ssh-\(suffix()):latest"
        if !keep { images.append(name) }
        let started = Date()
        let result = try IT.dbgbox(["image", "create", "--base", base, "--name", name] + extra, home: home)
        XCTAssertEqual(result.exitCode, 0, "image create: \(result.stderrText.suffix(2000))")
        XCTAssertEqual(result.stdoutText, "\(name)\n", "stdout carries the result only")
        XCTAssertTrue(result.stderrText.contains("Step 1/"), "docker's build output goes to stderr")
        print("image create \(name) from \(base): \(String(format: "%.1f", Date().timeIntervalSince(started))) s")
        return name
    }

    /// `docker run -d --rm` with the key, published on an ephemeral 127.0.0.1 port; waits for
    /// /run/dbgbox-ready. Returns the container name and the port.
    private func runContainer(_ image: String, key: String, env: [String: String] = [:]) throws -> (name: String, port: Int) {
        let name = "dbgbox-it-img-\(suffix())"
        containers.append(name)
        let pub = try String(contentsOfFile: key + ".pub", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        var args = ["run", "-d", "--rm", "--name", name, "-e", "DBGBOX_AUTHORIZED_KEY=\(pub)", "-p", "127.0.0.1::22"]
        for (k, v) in env.sorted(by: { $0.key < $1.key }) { args += ["-e", "\(k)=\(v)"] }
        _ = try docker(args + [image])
        try waitReady(name)
        let mapping = try docker(["port", name, "22/tcp"]).stdoutText
        let port = try XCTUnwrap(mapping.split(whereSeparator: \.isNewline).first.flatMap { $0.split(separator: ":").last }.flatMap { Int($0) },
                                 "docker port: \(mapping)")
        return (name, port)
    }

    private func waitReady(_ name: String, timeout: TimeInterval = 30) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if (try? IT.runner.run(["docker", "exec", name, "cat", "/run/dbgbox-ready"]))?.succeeded == true { return }
            Thread.sleep(forTimeInterval: 0.1)
        }
        let logs = (try? IT.runner.run(["docker", "logs", name])).map { $0.stdoutText + $0.stderrText } ?? ""
        XCTFail("container \(name) never became ready; logs: \(logs)")
        throw XCTSkip("not ready")
    }

    /// A known_hosts with only the container's own host key, readable by the test user.
    private func knownHosts(for container: String, port: Int, in home: String) throws -> String {
        let pub = try docker(["exec", container, "cat", "/etc/ssh/ssh_host_ed25519_key.pub"]).stdoutText
        let fields = pub.split(separator: " ")
        XCTAssertEqual(fields.first, "ssh-ed25519")
        let path = "\(home)/known_hosts-\(port)"
        try "[127.0.0.1]:\(port) \(fields[0]) \(fields[1])\n".write(toFile: path, atomically: true, encoding: .utf8)
        _ = try IT.runner.run(["chown", "\(IT.user.uid):\(IT.user.gid)", path])
        return path
    }

    private func sshOptions(key: String, knownHosts: String) -> [String] {
        ["-F", "/dev/null", "-i", key, "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
         "-o", "StrictHostKeyChecking=yes", "-o", "UserKnownHostsFile=\(knownHosts)",
         "-o", "GlobalKnownHostsFile=/dev/null", "-o", "ConnectTimeout=10"]
    }

    private func ssh(_ port: Int, key: String, knownHosts: String, home: String, _ command: String) throws -> ProcessResult {
        try IT.asUser(["ssh"] + sshOptions(key: key, knownHosts: knownHosts) + ["-p", String(port), "\(IT.testUser)@127.0.0.1", command], home: home)
    }

    /// Logs in with OpenSSH, strict host-key checking against the container's key, and checks the
    /// session is the test user's, quiet, with sftp.
    private func assertLogin(_ container: String, port: Int, key: String, home: String) throws {
        let hosts = try knownHosts(for: container, port: port, in: home)
        let quiet = try ssh(port, key: key, knownHosts: hosts, home: home, "true")
        XCTAssertEqual(quiet.exitCode, 0, quiet.stderrText)
        XCTAssertEqual(quiet.stdoutText, "", "ssh host true must print nothing")
        XCTAssertEqual(quiet.stderrText, "", "ssh host true must print nothing")
        let ids = try ssh(port, key: key, knownHosts: hosts, home: home, "id -u; id -g; id -un")
        XCTAssertEqual(ids.exitCode, 0, ids.stderrText)
        XCTAssertEqual(ids.stdoutText, "\(IT.user.uid)\n\(IT.user.gid)\n\(IT.testUser)\n")
        let batch = "\(home)/sftp-batch"
        try "pwd\nls /etc/dbgbox\n".write(toFile: batch, atomically: true, encoding: .utf8)
        let sftp = try IT.asUser(["sftp"] + sshOptions(key: key, knownHosts: hosts) + ["-P", String(port), "-b", batch, "\(IT.testUser)@127.0.0.1"], home: home)
        XCTAssertEqual(sftp.exitCode, 0, sftp.stderrText)
        XCTAssertTrue(sftp.stdoutText.contains("sshd_config"), sftp.stdoutText)
        // Root cannot log in even with the right key.
        let root = try IT.asUser(["ssh"] + sshOptions(key: key, knownHosts: hosts) + ["-p", String(port), "root@127.0.0.1", "true"], home: home)
        XCTAssertNotEqual(root.exitCode, 0)
    }

    private func containerExists(_ name: String) -> Bool {
        (try? IT.runner.run(["docker", "container", "inspect", name]))?.succeeded == true
    }

    // MARK: tests

    /// The image builds from the local base; a container stays up; OpenSSH logs in as the user with
    /// StrictHostKeyChecking=yes; `ssh … true` is silent; docker stop is prompt and --rm removes it;
    /// no private-key bytes are in `docker save`, and no host key is baked into the image.
    func testBuildServeLoginStopAndNoKeysInImage() throws {
        try IT.requireDocker()
        let (image, home, key) = try sharedImage()
        // The same request again is all cache hits.
        let warmStart = Date()
        try createImage(base: IT.baseImage, home: home)
        XCTAssertLessThan(Date().timeIntervalSince(warmStart), 10, "a rebuild with a warm cache is quick")

        let labels = try DockerClient(runner: IT.runner).imageLabels(image) ?? [:]
        let user = IT.user
        XCTAssertEqual(labels["dbgbox.user"], user.name)
        XCTAssertEqual(labels["dbgbox.uid"], String(user.uid))
        XCTAssertEqual(labels["dbgbox.gid"], String(user.gid))
        XCTAssertEqual(labels["dbgbox.home"], user.home)
        XCTAssertEqual(labels["dbgbox.base"], IT.baseImage)
        XCTAssertEqual(labels["dbgbox.format"], "1")
        let hostKeys = try docker(["run", "--rm", "--entrypoint", "/bin/sh", image, "-c", "ls /etc/ssh | grep ssh_host_ || true"])
        XCTAssertEqual(hostKeys.stdoutText, "", "host keys must not be baked into the image")

        let (name, port) = try runContainer(image, key: key)
        Thread.sleep(forTimeInterval: 1)
        XCTAssertEqual(try docker(["inspect", "-f", "{{.State.Running}}", name]).stdoutText, "true\n", "container stays up")
        try assertLogin(name, port: port, key: key, home: home)

        let started = Date()
        _ = try docker(["stop", name])
        let took = Date().timeIntervalSince(started)
        print("docker stop took \(String(format: "%.2f", took)) s")
        XCTAssertLessThan(took, 3, "the entrypoint must handle SIGTERM promptly")
        let deadline = Date().addingTimeInterval(10)
        while containerExists(name) && Date() < deadline { Thread.sleep(forTimeInterval: 0.2) }
        XCTAssertFalse(containerExists(name), "--rm removes the stopped container")

        // No private-key bytes in the saved image: every base64 line of the key generated in HOME
        // before the build is searched for in the tar.
        let tar = "\(home)/image.tar"
        _ = try docker(["save", "-o", tar, image])
        let privateKey = try String(contentsOfFile: key, encoding: .utf8)
        let body = privateKey.split(whereSeparator: \.isNewline).filter { !$0.hasPrefix("-----") }.map(String.init)
        XCTAssertFalse(body.isEmpty)
        for line in body {
            let grep = try IT.runner.run(["grep", "-c", "-F", "-a", line, tar])
            XCTAssertEqual(grep.exitCode, 1, "private-key bytes found in docker save output")
        }
        try? FileManager.default.removeItem(atPath: tar)
    }

    /// The base already has a user with the test user's UID, a group with its GID and a user with its
    /// name (other ids): the build still works, the existing group is reused and the login is ours.
    func testBuildWhenUIDGIDAndNameAlreadyExistInTheBase() throws {
        try IT.requireDocker()
        let user = IT.user
        let base = "dbgbox-it/clash-base-\(suffix()):latest"
        images.append(base)
        let dockerfile = """
            FROM \(IT.baseImage)
            RUN groupadd -g \(user.gid) clashgrp \\
             && useradd -M -u \(user.uid) -g \(user.gid) -s /bin/sh clashusr \\
             && groupadd -g 4242 \(user.name) \\
             && useradd -M -u 4242 -g 4242 -d /nonexistent -s /bin/false \(user.name)

            """
        _ = try docker(["build", "-q", "-t", base, "-"], input: Data(dockerfile.utf8))
        let (home, key) = try homeWithKey()
        let image = try createImage(base: base, home: home)
        let passwd = try docker(["run", "--rm", "--entrypoint", "/bin/sh", image, "-c",
                                 "grep -c '^\(user.name):' /etc/passwd; getent group \(user.gid) | cut -d: -f1; getent passwd \(user.uid) | cut -d: -f1"])
        XCTAssertEqual(passwd.stdoutText, "1\nclashgrp\n\(user.name)\n", "one entry for the name, GID's group reused, UID maps to the user")
        let (name, port) = try runContainer(image, key: key)
        try assertLogin(name, port: port, key: key, home: home)
    }

    /// DBGBOX_TTL=3: the entrypoint stops sshd and exits, and --rm removes the container.
    /// Also: each container makes its own host key.
    func testTTLStopsTheContainerAndHostKeysArePerContainer() throws {
        try IT.requireDocker()
        let (image, _, key) = try sharedImage()
        let started = Date()
        let (name, _) = try runContainer(image, key: key, env: ["DBGBOX_TTL": "3"])
        let (other, _) = try runContainer(image, key: key)
        let first = try docker(["exec", name, "cat", "/etc/ssh/ssh_host_ed25519_key.pub"]).stdoutText
        let second = try docker(["exec", other, "cat", "/etc/ssh/ssh_host_ed25519_key.pub"]).stdoutText
        XCTAssertNotEqual(first, second, "host keys are made per container")
        let deadline = Date().addingTimeInterval(20)
        while containerExists(name) && Date() < deadline { Thread.sleep(forTimeInterval: 0.25) }
        let took = Date().timeIntervalSince(started)
        XCTAssertFalse(containerExists(name), "TTL expiry removes the container")
        XCTAssertGreaterThanOrEqual(took, 3)
        print("container with DBGBOX_TTL=3 gone after \(String(format: "%.1f", took)) s")
        XCTAssertTrue(containerExists(other), "no TTL: stays up")
    }

    /// Without a key the entrypoint refuses with a clear message and exit 1.
    func testMissingKeyExitsWithAMessage() throws {
        try IT.requireDocker()
        let (image, _, _) = try sharedImage()
        let result = try IT.runner.run(["docker", "run", "--rm", image])
        XCTAssertEqual(result.exitCode, 1)
        XCTAssertTrue(result.stderrText.contains("DBGBOX_AUTHORIZED_KEY is empty"), result.stderrText)
        let ttl = try IT.runner.run(["docker", "run", "--rm", "-e", "DBGBOX_AUTHORIZED_KEY=ssh-ed25519 AAAA x", "-e", "DBGBOX_TTL=12h", image])
        XCTAssertEqual(ttl.exitCode, 1)
        XCTAssertTrue(ttl.stderrText.contains("DBGBOX_TTL must be whole seconds"), ttl.stderrText)
    }

    /// --print renders and builds nothing; --append lands in the Dockerfile; bad inputs give one line.
    func testPrintAppendAndBadInputs() throws {
        try IT.requireDocker()
        let home = try IT.scratchDir("image-print")
        dirs.append(home)
        let extra = "\(home)/extra.Dockerfile"
        try "RUN echo dbgbox-extra-step\n".write(toFile: extra, atomically: true, encoding: .utf8)
        _ = try IT.runner.run(["chmod", "0644", extra])
        let name = "dbgbox-it/print-\(suffix()):latest"
        let printed = try IT.dbgbox(["image", "create", "--base", IT.baseImage, "--name", name, "--print", "--append", extra], home: home)
        XCTAssertEqual(printed.exitCode, 0, printed.stderrText)
        XCTAssertTrue(printed.stdoutText.contains("FROM \(IT.baseImage)\n"))
        XCTAssertTrue(printed.stdoutText.contains("RUN echo dbgbox-extra-step"))
        XCTAssertTrue(printed.stdoutText.contains("apt-get install -y --no-install-recommends openssh-server"), "apt family found by probing")
        XCTAssertFalse(containerExists(name))
        XCTAssertFalse((try IT.runner.run(["docker", "image", "inspect", name])).succeeded, "--print builds nothing")
        let family = try IT.dbgbox(["image", "create", "--base", "alpine:3.20", "--print", "--family", "apk"], home: home)
        XCTAssertEqual(family.exitCode, 0, family.stderrText)
        XCTAssertTrue(family.stdoutText.contains("apk add --no-cache openssh-server openssh-keygen"))

        let template = "\(home)/mine.mustache"
        try "{{% CONTENT_TYPE: TEXT}}\nFROM {{{base}}}\nLABEL who=\"{{user}} {{uid}}:{{gid}} {{family}}\"\n".write(toFile: template, atomically: true, encoding: .utf8)
        _ = try IT.runner.run(["chmod", "0644", template])
        let custom = try IT.dbgbox(["image", "create", "--base", IT.baseImage, "--template", template, "--print", "--family", "apt"], home: home)
        XCTAssertEqual(custom.exitCode, 0, custom.stderrText)
        XCTAssertEqual(custom.stdoutText, "FROM \(IT.baseImage)\nLABEL who=\"\(IT.testUser) \(IT.user.uid):\(IT.user.gid) apt\"\n")

        let cases: [([String], String)] = [
            (["--base", "dbgbox-it/no-such-base:\(suffix())"], "not found: docker pull"),
            (["--base", IT.baseImage, "--name", "Bad/Name"], "is not valid"),
            (["--base=-v"], "not a valid image reference"),
            (["--base", IT.baseImage, "--family", "pacman", "--print"], "unknown --family"),
            (["--base", IT.baseImage, "--append", "/nonexistent/extra"], "--append /nonexistent/extra"),
            (["--base", IT.baseImage, "--template", "/nonexistent/t.mustache", "--print"], "--template"),
            (["--base", IT.baseImage, "--user", "root"], "--user is for root only"),
        ]
        for (args, expected) in cases {
            let result = try IT.dbgbox(["image", "create"] + args, home: home)
            XCTAssertNotEqual(result.exitCode, 0, "\(args)")
            let lines = result.stderrText.split(whereSeparator: \.isNewline)
            XCTAssertEqual(lines.count, 1, "one line for \(args): \(result.stderrText)")
            XCTAssertTrue(result.stderrText.contains(expected), "\(args): \(result.stderrText)")
            XCTAssertEqual(result.stdoutText, "")
        }
    }

    /// A base without a known package manager is named as such.
    func testUnknownFamily() throws {
        try IT.requireDocker()
        let base = "dbgbox-it/nopm-\(suffix()):latest"
        images.append(base)
        _ = try docker(["build", "-q", "-t", base, "-"], input: Data("FROM \(IT.baseImage)\nRUN rm -f /usr/bin/apt-get\n".utf8))
        let home = try IT.scratchDir("image-nopm")
        dirs.append(home)
        let result = try IT.dbgbox(["image", "create", "--base", base, "--print"], home: home)
        XCTAssertNotEqual(result.exitCode, 0)
        XCTAssertTrue(result.stderrText.contains("has none of apt-get, dnf, microdnf, yum or apk"), result.stderrText)
    }
}
