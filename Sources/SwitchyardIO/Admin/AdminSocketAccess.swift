import Glibc
import SwitchyardCore

/// Who can reach an admin socket file, and what it serves: `--admin-socket-mode`,
/// `--admin-socket-group`, and whether it is the read-only socket (`--admin-socket-readonly`).
/// What a peer may do once connected is decided by its uid (`AdminAccess`).
public struct AdminSocketAccess: Sendable, Equatable {
    /// Permission bits of the socket file; connect(2) needs write permission.
    public var mode: UInt32
    /// Group of the socket file; nil leaves the process's.
    public var groupID: UInt32?
    /// Serve only `show` and `help`; anything else gets `ERROR: read-only admin socket`.
    public var readOnly: Bool

    public init(mode: UInt32 = AdminAccess.defaultSocketMode, groupID: UInt32? = nil, readOnly: Bool = false) {
        self.mode = mode
        self.groupID = groupID
        self.readOnly = readOnly
    }

    /// The access `global` gives the admin socket, or the read-only one; the group name is
    /// looked up (getgrnam_r(3)) here. Throws when no such group exists.
    public init(_ global: GlobalSettings, readOnly: Bool) throws(AdminSocketError) {
        self.init(mode: global.adminSocketMode, groupID: try global.adminSocketGroup.map(Self.groupID), readOnly: readOnly)
    }

    /// The gid of `text`: a number as it is, else the group of that name.
    static func groupID(_ text: String) throws(AdminSocketError) -> UInt32 {
        if let number = UInt32(text) { return number }
        var entry = group()
        var found: UnsafeMutablePointer<group>?
        var scratch = [CChar](repeating: 0, count: 16384)
        let code = getgrnam_r(text, &entry, &scratch, scratch.count, &found)
        guard code == 0, let found else {
            let why = code == 0 ? "no such group" : errnoText(code)
            throw AdminSocketError("admin-socket-group '\(text)': \(why)")
        }
        return found.pointee.gr_gid
    }
}
