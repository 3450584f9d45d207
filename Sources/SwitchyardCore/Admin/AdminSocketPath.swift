/// Where the admin socket lives when `--admin-socket` is not given; `serve`, `serve --takeover`
/// and `admin` agree. Never under /tmp, where any user could create the path first.
public enum AdminSocketPath {
    /// The directory of root's default socket; `serve` creates it with mode 0700.
    public static let rootDirectory = "/run/switchyard"
    /// The default for root (effective uid 0).
    public static let rootPath = rootDirectory + "/admin.sock"

    /// The default path for a process of effective uid `userID`: `/run/switchyard/admin.sock` for
    /// root, else `$XDG_RUNTIME_DIR/switchyard.sock` (a per-user, mode 0700 directory on systemd
    /// machines). Throws when neither applies (no usable `XDG_RUNTIME_DIR`): the message tells
    /// the user to name a path with `option` (`--admin-socket`, or `--socket` for `admin`).
    public static func defaultPath(runtimeDirectory: String?, userID: UInt32, option: String = "--admin-socket") throws(ConfigError) -> String {
        if userID == 0 { return rootPath }
        guard let directory = runtimeDirectory, !directory.isEmpty else {
            throw ConfigError("no default admin socket for uid \(userID): XDG_RUNTIME_DIR is not set; pass \(option) PATH (a path in a directory only this user can write to)")
        }
        guard directory.hasPrefix("/") else {
            throw ConfigError("no default admin socket: XDG_RUNTIME_DIR '\(directory)' is not an absolute path; pass \(option) PATH")
        }
        guard directory != "/tmp", !directory.hasPrefix("/tmp/") else {
            throw ConfigError("no default admin socket: XDG_RUNTIME_DIR '\(directory)' is under /tmp, where other users can create files; pass \(option) PATH")
        }
        return directory.hasSuffix("/") ? "\(directory)switchyard.sock" : "\(directory)/switchyard.sock"
    }

    /// Whether `rootDirectory`, as lstat(2) found it, may hold root's socket: a directory (not a
    /// symbolic link) owned by root that neither group nor others can access. Throws a message
    /// saying what is wrong and how to fix it.
    public static func checkRootDirectory(isDirectory: Bool, ownerID: UInt32, mode: UInt32) throws(ConfigError) {
        guard isDirectory else {
            throw ConfigError("\(rootDirectory) exists and is not a directory; remove it or pass --admin-socket PATH")
        }
        guard ownerID == 0 else {
            throw ConfigError("\(rootDirectory) is owned by uid \(ownerID), not root; remove it or pass --admin-socket PATH")
        }
        guard mode & 0o077 == 0 else {
            throw ConfigError("\(rootDirectory) has mode 0\(String(mode & 0o7777, radix: 8)): group or others may access it; run 'chmod 700 \(rootDirectory)' or pass --admin-socket PATH")
        }
    }
}
