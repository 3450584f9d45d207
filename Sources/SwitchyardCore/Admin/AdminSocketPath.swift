/// Where the admin socket lives when `--admin-socket` is not given; `serve` and `admin` agree.
public enum AdminSocketPath {
    /// `$XDG_RUNTIME_DIR/switchyard.sock` when that variable is set and not empty (a per-user,
    /// mode 0700 directory on systemd machines), else `/tmp/switchyard-UID.sock`.
    public static func defaultPath(runtimeDirectory: String?, userID: UInt32) -> String {
        if let directory = runtimeDirectory, !directory.isEmpty {
            return directory.hasSuffix("/") ? "\(directory)switchyard.sock" : "\(directory)/switchyard.sock"
        }
        return "/tmp/switchyard-\(userID).sock"
    }
}
