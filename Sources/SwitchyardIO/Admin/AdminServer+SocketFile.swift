import CSwitchyard
import Glibc
import Logging
import Synchronization
import SwitchyardCore

// Creating the admin socket file: bound privately and linked into place, after removing a
// stale socket nothing serves.
extension AdminServer {
    /// Binds `fd` and listens so that `path` appears only as the finished socket: mode 0600, already
    /// accepting. bind(2) creates the file with the process umask (0755 under the usual 022), so
    /// binding at `path` and then chmod-ing it would leave a moment in which anyone could connect.
    /// Instead the socket is bound in a private directory (mkdtemp(3), mode 0700, next to `path`
    /// so that both are on one file system), tightened and set listening there, then linked into
    /// place with link(2), which fails with EEXIST rather than replace a socket another process
    /// put at `path` meanwhile (rename(2) would replace it). The private name and directory are
    /// removed on every path out.
    static func bindPrivately(_ fd: Int32, at path: String, address: sockaddr_un, access: AdminSocketAccess) throws(AdminSocketError) {
        let directory: String
        if let slash = path.lastIndex(of: "/") {
            directory = slash == path.startIndex ? "/" : String(path[..<slash])
        } else {
            directory = "."
        }
        let prefix = directory == "/" ? "/.swy-" : "\(directory)/.swy-"
        // mkdtemp replaces the six X; the socket is then "s" inside.
        let limit = MemoryLayout.size(ofValue: address.sun_path) - 1
        guard prefix.utf8.count + 8 <= limit else {
            throw AdminSocketError("admin socket directory '\(directory)' is too long: at most \(limit - 8 - (prefix.utf8.count - directory.utf8.count)) bytes, to leave room for a private name while the socket is set up")
        }
        var template = Array((prefix + "XXXXXX").utf8CString)
        guard template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) != nil else {
            throw AdminSocketError(SystemCallError(call: "mkdtemp \(prefix)XXXXXX (for the admin socket \(path))", errno: Glibc.errno).description)
        }
        let privateDirectory = String(decoding: template.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let privatePath = privateDirectory + "/s"
        defer {
            _ = systemCallResult { Int(unlink(privatePath)) }
            _ = systemCallResult { Int(rmdir(privateDirectory)) }
        }
        let privateAddress = try UnixSocket.address(privatePath)  // fits: checked above
        do {
            try systemCall("bind \(privatePath)") { UnixSocket.withAddress(privateAddress) { bind(fd, $0, $1) } }
            // Only this user can reach the private directory, so this sets the group and mode
            // before the socket has a name anyone else could use.
            if let group = access.groupID {
                try systemCall("chown \(privatePath) to gid \(group)") { chown(privatePath, uid_t.max, group) }
            }
            try systemCall("chmod \(privatePath)") { chmod(privatePath, mode_t(access.mode)) }
            try systemCall("listen \(privatePath)") { listen(fd, 64) }
        } catch {
            throw AdminSocketError(error.description)
        }
        for attempt in 0..<2 {
            let linked = systemCallResult { Int(link(privatePath, path)) }
            if linked == 0 { return }
            let code = Int32(-linked)
            guard code == EEXIST, attempt == 0 else {
                throw AdminSocketError(SystemCallError(call: "link \(privatePath) to \(path)", errno: code).description)
            }
            // Something was created at `path` since the stale check: try the check once more (it
            // throws for a live instance or a file that is not a socket).
            try removeStaleSocket(at: path, address: address)
        }
    }

    /// Removes a socket file nothing listens on; throws if something does or if it is not a socket.
    static func removeStaleSocket(at path: String, address: sockaddr_un) throws(AdminSocketError) {
        var status = stat()
        let found = systemCallResult { Int(lstat(path, &status)) }
        guard found == 0 else {
            let code = Int32(-found)
            if code == ENOENT { return }
            throw AdminSocketError(SystemCallError(call: "stat \(path)", errno: code).description)
        }
        guard status.st_mode & S_IFMT == S_IFSOCK else {
            throw AdminSocketError("admin socket path \(path) exists and is not a socket; remove it or choose another --admin-socket")
        }
        let probe: Int32
        do {
            probe = try UnixSocket.make(nonBlocking: false)
        } catch {
            throw AdminSocketError(error.description)
        }
        defer { closeDescriptor(probe) }
        do {
            try systemCall("connect \(path)") { UnixSocket.withAddress(address) { connect(probe, $0, $1) } }
        } catch {
            guard error.errno == ECONNREFUSED else { throw AdminSocketError(error.description) }
            let removed = systemCallResult { Int(unlink(path)) }
            guard removed == 0 || removed == -Int(ENOENT) else {
                throw AdminSocketError(SystemCallError(call: "unlink stale socket \(path)", errno: Int32(-removed)).description)
            }
            return
        }
        if let server = UnixSocket.peerCredentials(probe), !AdminAccess.trusts(peerUserID: server.userID, ownUserID: geteuid()) {
            throw AdminSocketError("the admin socket path \(path) is served by pid \(server.processID) of uid \(server.userID), another user; choose a path in a directory only this user can write to (--admin-socket)")
        }
        throw AdminSocketError("another switchyard is already serving the admin socket \(path); stop it or choose another --admin-socket")
    }
}
