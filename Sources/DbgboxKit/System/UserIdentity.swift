import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The user dbgbox acts for: the invoking user, or with `--user NAME` (root only) that user.
/// Images and containers mirror this identity; ownership checks compare against it.
public struct UserIdentity: Sendable, Equatable, Codable {
    public var name: String
    public var uid: UInt32
    public var gid: UInt32
    public var home: String

    public init(name: String, uid: UInt32, gid: UInt32, home: String) {
        self.name = name
        self.uid = uid
        self.gid = gid
        self.home = home
    }

    /// Looks up the passwd entry for a name.
    public static func lookup(name: String) -> UserIdentity? {
        guard let pw = getpwnam(name) else { return nil }
        return UserIdentity(name: String(cString: pw.pointee.pw_name), uid: pw.pointee.pw_uid,
                            gid: pw.pointee.pw_gid, home: String(cString: pw.pointee.pw_dir))
    }

    /// Looks up the passwd entry for a uid.
    public static func lookup(uid: UInt32) -> UserIdentity? {
        guard let pw = getpwuid(uid) else { return nil }
        return UserIdentity(name: String(cString: pw.pointee.pw_name), uid: pw.pointee.pw_uid,
                            gid: pw.pointee.pw_gid, home: String(cString: pw.pointee.pw_dir))
    }

    /// The identity to act for. Root must name a user: mirroring root into a container would
    /// give the IDE a root login and root-owned files in the mounted home.
    public static func resolve(requested: String?, realUID: UInt32 = getuid(),
                               users: UserDirectory = SystemUserDirectory()) throws -> UserIdentity {
        if let requested {
            guard realUID == 0 else {
                throw DbgboxError("--user is for root only: run dbgbox as \(requested) instead")
            }
            guard let user = users.lookup(name: requested) else {
                throw DbgboxError("--user \(requested): no such user on this machine: check the name with `getent passwd \(requested)`")
            }
            guard user.uid != 0 else {
                throw DbgboxError("--user \(requested) is root: name an ordinary user")
            }
            return user
        }
        guard realUID != 0 else {
            throw DbgboxError("dbgbox is running as root, and would mirror root into the container: run it as your own user, or pass --user NAME")
        }
        return try users.entry(uid: realUID)
    }
}

/// The passwd entries dbgbox looks users up in; tests give users of their own.
public protocol UserDirectory: Sendable {
    func lookup(uid: UInt32) -> UserIdentity?
    func lookup(name: String) -> UserIdentity?
}

extension UserDirectory {
    /// The entry of `uid`, or the one-line error every command gives without one.
    public func entry(uid: UInt32) throws -> UserIdentity {
        guard let user = lookup(uid: uid) else {
            throw DbgboxError("uid \(uid) has no passwd entry: dbgbox needs a user name and home directory")
        }
        return user
    }
}

/// This machine's passwd database (getpwuid, getpwnam).
public struct SystemUserDirectory: UserDirectory {
    public init() {}
    public func lookup(uid: UInt32) -> UserIdentity? { UserIdentity.lookup(uid: uid) }
    public func lookup(name: String) -> UserIdentity? { UserIdentity.lookup(name: name) }
}
