/// Who may do what over the admin socket (README, "Admin socket", "Access").
///
/// Both ends check the other with `SO_PEERCRED` (unix(7)): the server answers `takeover` and
/// every command that changes something only to a peer of its own uid or root, and the client
/// (`switchyard admin`, `serve --takeover`) talks only to a server of its own uid or root, so a
/// socket another user put at the path is refused rather than obeyed or believed.
public enum AdminAccess {
    /// Whether a process running as `peerUserID` may be trusted by one running as
    /// `ownUserID`: it is the same user, or root.
    public static func trusts(peerUserID: UInt32, ownUserID: UInt32) -> Bool {
        peerUserID == ownUserID || peerUserID == 0
    }

    /// The mode of a new admin socket file when `--admin-socket-mode` is not given.
    public static let defaultSocketMode: UInt32 = 0o600

    /// Parses `--admin-socket-mode` / `admin-socket-mode`: octal permission bits such as `0660`
    /// or `660`, at most `0777`, and always with read and write for the owner (who would
    /// otherwise lock itself out).
    public static func parseSocketMode(_ text: String) throws(ConfigError) -> UInt32 {
        let digits = text.hasPrefix("0o") ? text.dropFirst(2) : Substring(text)
        guard (1...4).contains(digits.count), digits.allSatisfy({ ("0"..."7").contains($0) }),
              let mode = UInt32(digits, radix: 8), mode <= 0o777 else {
            throw ConfigError("'\(text)' is not an octal file mode from 0600 to 0777, such as 0660")
        }
        guard mode & 0o600 == 0o600 else {
            throw ConfigError("mode \(text) must let the owner read and write the socket (0600 at least)")
        }
        return mode
    }

    /// Checks `--admin-socket-group` / `admin-socket-group`: a group name, or a numeric gid.
    /// The name is looked up when the socket is made.
    public static func checkSocketGroup(_ text: String) throws(ConfigError) {
        let allowed = text.unicodeScalars.allSatisfy { $0.properties.isAlphabetic || ("0"..."9").contains($0) || "_-.$".unicodeScalars.contains($0) }
        guard !text.isEmpty, text.utf8.count <= 64, allowed else {
            throw ConfigError("'\(text)' is not a group name or gid")
        }
    }

    /// The reply of the read-only socket (`--admin-socket-readonly`) to anything but
    /// `show` and `help`.
    public static let readOnlyRefusal = "read-only admin socket"

    /// The reply of a process that was taken over to a command it no longer answers.
    public static func handedOverRefusal(successor: Int32) -> String {
        "handed over to pid \(successor)"
    }

    /// The reply to a peer that may only read.
    public static func untrustedRefusal(peerUserID: UInt32, serverUserID: UInt32) -> String {
        "uid \(peerUserID) may only use show and help on this admin socket; other commands are for uid \(serverUserID) (the server's) or root"
    }
}

extension AdminCommand {
    /// Whether the command only reads (`show ...` and `help`): what any peer that can connect
    /// may send, what the read-only socket serves, and what a process that was taken over
    /// still answers.
    public var isReadOnly: Bool {
        switch self {
        case .help, .showBackends, .showServices, .showStats, .showSources, .showCertificates: true
        case .drain, .ready, .maint, .weight, .add, .remove, .wait, .shutdown, .reload, .instance, .takeover: false
        }
    }
}
