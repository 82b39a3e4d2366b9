import Foundation
import XCTest
@testable import DbgboxKit

/// Rendering rules that do not need docker: quoting, family differences, identity checks,
/// the probe's parsing and the runtime contract's fixed names.
final class DockerfileRenderingTests: XCTestCase {
    let alice = DockerfileGoldenTests.alice

    func render(_ family: DistroFamily, bash: Bool = true, identity: UserIdentity? = nil,
                append: String? = nil, templates: ImageTemplates? = nil) throws -> String {
        let spec = DockerfileSpec(base: "example/base:1", name: "alice/ssh:latest",
                                  facts: BaseImageFacts(family: family, hasBash: bash),
                                  identity: identity ?? alice, append: append, appendName: "extra")
        return try DockerfileRenderer.render(spec, templates: templates ?? DockerfileGoldenTests.templates())
    }

    func testShellQuoteEscapesSingleQuotes() {
        XCTAssertEqual(DockerfileRenderer.shellQuote("plain"), "'plain'")
        XCTAssertEqual(DockerfileRenderer.shellQuote("it's"), "'it'\\''s'")
        XCTAssertEqual(DockerfileRenderer.shellQuote("''"), "''\\'''\\'''")
        XCTAssertEqual(DockerfileRenderer.shellQuote(""), "''")
    }

    /// Each printf argument, run through a real sh, gives back exactly the original lines.
    func testPrintfArgumentsRoundTripThroughShell() throws {
        let text = "a 'quoted' line\n\"double\" $HOME `cmd` \\n back\\slash\n\n  indented '\nlast \\\n"
        let script = "printf '%s\\n' \\\n" + DockerfileRenderer.printfArguments(text) + "\n"
        let out = try LocalProcessRunner().run(["/bin/sh", "-c", script])
        XCTAssertEqual(out.exitCode, 0, out.stderrText)
        XCTAssertEqual(out.stdoutText, text)
    }

    func testPrintfArgumentsAreOneQuotedLineEach() {
        XCTAssertEqual(DockerfileRenderer.printfArguments("x\ny'z\n"), "    'x' \\\n    'y'\\''z' \\")
    }

    func testFamiliesInstallOnlyOpensshServer() throws {
        let apt = try render(.apt)
        XCTAssertTrue(apt.contains("apt-get install -y --no-install-recommends openssh-server"))
        XCTAssertTrue(apt.contains("rm -rf /var/lib/apt/lists/*"))
        XCTAssertTrue(try render(.dnf).contains("dnf install -y openssh-server"))
        XCTAssertTrue(try render(.yum).contains("yum install -y openssh-server"))
        XCTAssertTrue(try render(.microdnf).contains("microdnf install -y openssh-server"))
        XCTAssertTrue(try render(.apk, bash: false).contains("apk add --no-cache openssh-server openssh-keygen"))
        for family in DistroFamily.allCases {
            let text = try render(family)
            XCTAssertFalse(text.lowercased().contains("sudo "), "\(family) must not install sudo")
            // The package's host keys go in the install step itself: a later RUN would leave them in a layer.
            let install = try XCTUnwrap(text.components(separatedBy: "\n\n").first { $0.contains("openssh-server") && $0.contains("\nRUN ") })
            XCTAssertTrue(install.contains("/etc/ssh/ssh_host_*"), "\(family): \(install)")
            for other in DistroFamily.allCases where other != family {
                XCTAssertFalse(text.contains("RUN \(other == .apt ? "export DEBIAN_FRONTEND" : other.rawValue)"),
                               "\(family) rendering has \(other)'s install step")
            }
        }
    }

    func testShellFollowsTheBase() throws {
        XCTAssertTrue(try render(.apk, bash: false).contains("shell='/bin/sh'"))
        XCTAssertTrue(try render(.apk, bash: true).contains("shell='/bin/bash'"))
        XCTAssertEqual(DistroFamily.apk.defaultShell, "/bin/sh")
        XCTAssertEqual(DistroFamily.dnf.defaultShell, "/bin/bash")
    }

    func testRuntimeContract() throws {
        let text = try render(.apt)
        XCTAssertTrue(text.contains("ENTRYPOINT [\"/usr/local/sbin/dbgbox-entrypoint\"]"))
        XCTAssertTrue(text.contains("EXPOSE 22"))
        for label in ["dbgbox.format=\"1\"", "dbgbox.user=\"alice\"", "dbgbox.uid=\"1000\"", "dbgbox.gid=\"1000\"",
                      "dbgbox.home=\"/home/alice\"", "dbgbox.base=\"example/base:1\""] {
            XCTAssertTrue(text.contains(label), "missing label \(label)")
        }
        for line in ["'AllowUsers alice'", "'PermitRootLogin no'", "'PasswordAuthentication no'",
                     "'KbdInteractiveAuthentication no'", "'AuthorizedKeysFile /etc/dbgbox/authorized_keys/%u'",
                     "'Subsystem sftp internal-sftp'", "'PrintMotd no'", "'PrintLastLog no'",
                     "'HostKey /etc/ssh/ssh_host_ed25519_key'"] {
            XCTAssertTrue(text.contains(line), "sshd_config lacks \(line)")
        }
        XCTAssertEqual(text.components(separatedBy: "HostKey ").count - 1, 1, "exactly one HostKey")
        // sshd runs with dbgbox's sshd_config behind the container's environment as one SetEnv line.
        for line in ["config=/etc/dbgbox/sshd_config", "/usr/sbin/sshd -D -e -f \"$session_config\"",
                     "SetEnv%s", "/usr/sbin/sshd -t -f \"$session_config\"", "ssh-keygen -q -t ed25519 -N \"\" -f \"$hostkey\"",
                     "DBGBOX_AUTHORIZED_KEY", "DBGBOX_TTL", "ready=/run/dbgbox-ready", "trap stop TERM INT"] {
            XCTAssertTrue(text.contains(line), "entrypoint lacks \(line)")
        }
        XCTAssertTrue(text.contains("rm -f /etc/motd"), "no motd")
        XCTAssertTrue(text.contains("printf '%s:*:::::::\\n'"), "shadow field must be * (not !)")
        XCTAssertFalse(text.contains("bash.bashrc"))
    }

    /// The entrypoint rendered from the template parses as POSIX sh.
    func testEntrypointIsValidShell() throws {
        let templates = try DockerfileGoldenTests.templates()
        let text = try MustacheRender.render(templates.entrypoint, ["user": "alice", "userQuoted": "'alice'"])
        XCTAssertTrue(text.hasPrefix("#!/bin/sh\n"))
        let check = try LocalProcessRunner().run(["/bin/sh", "-n", "-c", text])
        XCTAssertEqual(check.exitCode, 0, check.stderrText)
    }

    func testAppendGoesBeforeTheFinalPart() throws {
        let text = try render(.apt, append: "RUN echo extra-step\n")
        let step = try XCTUnwrap(text.range(of: "RUN echo extra-step"))
        let user = try XCTUnwrap(text.range(of: "\nUSER root\nLABEL"))
        let entry = try XCTUnwrap(text.range(of: "ENTRYPOINT"))
        XCTAssertLessThan(step.lowerBound, user.lowerBound)
        XCTAssertLessThan(step.lowerBound, entry.lowerBound)
        XCTAssertFalse(try render(.apt).contains("--append"))
    }

    func testCustomTemplateGetsTheSameContext() throws {
        var templates = try DockerfileGoldenTests.templates()
        templates.dockerfile = "{{% CONTENT_TYPE: TEXT}}\nFROM {{{base}}}\n# {{user}} {{uid}}:{{gid}} {{family}}\n"
        templates.dockerfileName = "mine.mustache"
        XCTAssertEqual(try render(.dnf, templates: templates), "FROM example/base:1\n# alice 1000:1000 dnf\n")
        templates.dockerfile = "{{#apt}}unclosed"
        XCTAssertThrowsError(try render(.apt, templates: templates)) { error in
            guard case ImageError.templateInvalid(let path, _) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(path, "mine.mustache")
        }
    }

    func testNamesWithDotsAreMatchedLiterally() throws {
        let text = try render(.apt, identity: UserIdentity(name: "a.b", uid: 1000, gid: 1000, home: "/home/a.b"))
        XCTAssertTrue(text.contains("pattern='a\\.b'"))
    }

    func testUnsafeIdentitiesAreRefused() {
        let bad = [
            UserIdentity(name: "al ice", uid: 1000, gid: 1000, home: "/home/alice"),
            UserIdentity(name: "al'ice", uid: 1000, gid: 1000, home: "/home/alice"),
            UserIdentity(name: "-alice", uid: 1000, gid: 1000, home: "/home/alice"),
            UserIdentity(name: "", uid: 1000, gid: 1000, home: "/home/alice"),
            UserIdentity(name: "alice", uid: 0, gid: 0, home: "/root"),
            UserIdentity(name: "alice", uid: 1000, gid: 1000, home: "home/alice"),
            UserIdentity(name: "alice", uid: 1000, gid: 1000, home: "/"),
            UserIdentity(name: "alice", uid: 1000, gid: 1000, home: "/home/a:b"),
            UserIdentity(name: "alice", uid: 1000, gid: 1000, home: "/home/$x"),
            UserIdentity(name: "alice", uid: 1000, gid: 1000, home: "/home/a\"b"),
            UserIdentity(name: "alice", uid: 1000, gid: 1000, home: "/home/a\nb"),
        ]
        for identity in bad {
            XCTAssertThrowsError(try DockerfileRenderer.validate(identity), "\(identity)") { error in
                let text = "\(error)"
                XCTAssertFalse(text.contains("\n"), "one line: \(text)")
            }
        }
        XCTAssertNoThrow(try DockerfileRenderer.validate(UserIdentity(name: "Bob_2.x-y", uid: 5, gid: 0, home: "/data/users/bob 2")))
    }

    func testProbeOutputParsing() {
        XCTAssertEqual(BaseImageFacts.parse(probeOutput: "pm=apt-get\nbash=yes\n"), BaseImageFacts(family: .apt, hasBash: true))
        XCTAssertEqual(BaseImageFacts.parse(probeOutput: "pm=dnf\nbash=yes\n")?.family, .dnf)
        XCTAssertEqual(BaseImageFacts.parse(probeOutput: "pm=microdnf\nbash=no\n")?.family, .microdnf)
        XCTAssertEqual(BaseImageFacts.parse(probeOutput: "pm=yum\nbash=yes\n")?.family, .yum)
        XCTAssertEqual(BaseImageFacts.parse(probeOutput: "pm=apk\nbash=no\n"), BaseImageFacts(family: .apk, hasBash: false))
        XCTAssertNil(BaseImageFacts.parse(probeOutput: "bash=yes\n"))
        XCTAssertNil(BaseImageFacts.parse(probeOutput: "pm=pacman\nbash=yes\n"))
    }

    /// The probe script, run by a local sh against this machine, finds apt-get (the test host is Debian).
    func testProbeScriptRunsInSh() throws {
        let out = try LocalProcessRunner().run(["/bin/sh", "-c", BaseImageFacts.probeScript])
        XCTAssertEqual(out.exitCode, 0)
        XCTAssertNotNil(BaseImageFacts.parse(probeOutput: out.stdoutText), out.stdoutText)
    }

    func testErrorsAreOneLine() {
        let errors: [ImageError] = [
            .invalidName("X", why: "uppercase"), .defaultNameInvalid(user: "Al"), .invalidBase("-x"),
            .baseNotFound("nope:1"), .baseNotInspectable("b", why: "no /bin/sh"), .unknownFamily("b"),
            .invalidFamily("pacman"), .unsupportedIdentity("why"), .templateInvalid(path: "p", why: "w"),
            .unreadableFile(option: "--append", path: "/x", why: "is a directory, not a file"), .buildFailed(name: "n", exitCode: 1),
        ]
        for error in errors {
            XCTAssertFalse(error.description.contains("\n"), error.description)
            XCTAssertTrue(error.description.contains(":"), error.description)
        }
        XCTAssertEqual(ImageError.baseNotFound("foo:1").description,
                       "base image foo:1 not found: docker pull foo:1, or docker images to list local ones")
    }
}

/// Renders one template with a context, for tests of a single template.
enum MustacheRender {
    static func render(_ template: String, _ context: [String: Any]) throws -> String {
        try DockerfileRenderer.renderTemplate(template, name: "test", context)
    }
}
