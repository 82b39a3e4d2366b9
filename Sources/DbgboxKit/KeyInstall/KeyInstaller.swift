import Foundation

/// Appends a public key to ~/.ssh/authorized_keys on a host, as `ssh-copy-id` would but stricter:
/// idempotent (an identical line is never added twice), existing lines never rewritten (a missing
/// final newline gets one before the new line), ~/.ssh 0700 and the file 0600.
///
/// The key travels on the remote command's stdin, never inside the command string.
public enum KeyInstaller {
    /// A constant POSIX sh script: reads one key line on stdin; prints `added` or `present`.
    public static let script = #"""
    umask 077
    set -e
    IFS= read -r key
    [ -n "$key" ] || { echo "no key on stdin" >&2; exit 2; }
    mkdir -p "$HOME/.ssh"
    chmod 700 "$HOME/.ssh"
    f="$HOME/.ssh/authorized_keys"
    [ -e "$f" ] || : > "$f"
    chmod 600 "$f"
    if grep -qxF -- "$key" "$f"; then echo present; exit 0; fi
    if [ -s "$f" ] && [ -n "$(tail -c 1 "$f")" ]; then printf '\n' >> "$f"; fi
    printf '%s\n' "$key" >> "$f"
    echo added
    """#

    /// The remote command line: the script run by `sh -c`.
    public static var command: String { shellQuote(["sh", "-c", script]) }

    public enum Outcome: String, Sendable, Equatable {
        case added
        case present
    }

    /// The key line to send: `TYPE BASE64 [COMMENT]`, validated (one line, a public key, not RSA).
    public static func keyLine(from publicKeyFile: Data, path: String) throws -> String {
        let text = String(decoding: publicKeyFile, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard !text.isEmpty, !text.contains("\n") else {
            throw DbgboxError("\(path) is not a single public key line: pass the .pub file made by dbgbox keygen")
        }
        let key: SSHPublicKey
        do { key = try SSHPublicKey(line: text) } catch {
            throw DbgboxError("\(path) is not a public key (\(error)): pass the .pub file made by dbgbox keygen")
        }
        if key.type == "ssh-rsa" {
            throw DbgboxError("\(path) is an RSA key: libssh2 1.10 cannot sign with rsa-sha2, so dbgbox's tunnel could not use it: run dbgbox keygen and install ~/.ssh/id_dbgbox.pub")
        }
        return text
    }

    public static func outcome(_ stdout: Data) -> Outcome? {
        Outcome(rawValue: String(decoding: stdout, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))
    }
}
