import CSwitchyard
import Glibc
import SwitchyardCore

/// Helpers for the admin socket's AF_UNIX stream sockets.
enum UnixSocket {
    /// A `sockaddr_un` for `path`. Throws when the path does not fit `sun_path` (108 bytes with
    /// its terminating NUL, see unix(7)).
    static func address(_ path: String) throws(AdminSocketError) -> sockaddr_un {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard !bytes.isEmpty, bytes.count < capacity else {
            throw AdminSocketError("admin socket path '\(path)' must be 1 to \(capacity - 1) bytes long")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
        return address
    }

    static func withAddress<Result>(_ address: sockaddr_un, _ body: (UnsafePointer<sockaddr>, socklen_t) -> Result) -> Result {
        withUnsafeBytes(of: address) {
            body($0.baseAddress!.assumingMemoryBound(to: sockaddr.self), socklen_t(MemoryLayout<sockaddr_un>.size))
        }
    }

    /// A new AF_UNIX stream socket, close-on-exec, optionally non-blocking.
    static func make(nonBlocking: Bool) throws(SystemCallError) -> Int32 {
        var type = Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
        if nonBlocking { type |= Int32(SOCK_NONBLOCK.rawValue) }
        return try systemCall("socket(AF_UNIX)") { socket(AF_UNIX, type, 0) }
    }

    /// The credentials of the process at the other end of a connected AF_UNIX socket
    /// (SO_PEERCRED, unix(7): those it had when it connected, or called listen(2) for the
    /// server's side); nil when the kernel does not say.
    static func peerCredentials(_ fd: Int32) -> (processID: Int32, userID: UInt32)? {
        // struct ucred { pid_t pid; uid_t uid; gid_t gid; } (a _GNU_SOURCE name), read as three words.
        var credentials: (Int32, UInt32, UInt32) = (0, 0, 0)
        var length = socklen_t(MemoryLayout.size(ofValue: credentials))
        guard getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &credentials, &length) == 0 else { return nil }
        return (credentials.0, credentials.1)
    }

    /// Throws unless the server at the other end of `fd` (connected to `path`) runs as this
    /// process's effective uid or as root (`AdminAccess.trusts`): a socket another user created
    /// at the path must be neither obeyed nor believed.
    static func checkServer(_ fd: Int32, path: String) throws(AdminSocketError) {
        let ownUserID = geteuid()
        guard let server = peerCredentials(fd) else {
            throw AdminSocketError(SystemCallError(call: "getsockopt SO_PEERCRED \(path)", errno: Glibc.errno).description)
        }
        guard AdminAccess.trusts(peerUserID: server.userID, ownUserID: ownUserID) else {
            throw AdminSocketError("refusing to talk to \(path): the process serving it (pid \(server.processID)) runs as uid \(server.userID), neither this user (uid \(ownUserID)) nor root; another user may have created that socket")
        }
    }
}

extension AdminSocketPath {
    /// The default path for this process (see `defaultPath(runtimeDirectory:userID:option:)`),
    /// by its effective uid. For root, `/run/switchyard` must be a private directory owned by
    /// root; with `creatingDirectory` (`serve`) it is made, mode 0700, when missing. Throws a
    /// message that says what is wrong and names `option`.
    public static func current(option: String = "--admin-socket", creatingDirectory: Bool = false) throws(AdminSocketError) -> String {
        let runtime = getenv("XDG_RUNTIME_DIR").map { String(cString: $0) }
        let path: String
        do {
            path = try defaultPath(runtimeDirectory: runtime, userID: geteuid(), option: option)
        } catch {
            throw AdminSocketError(error.message)
        }
        guard path == rootPath else { return path }
        if creatingDirectory && mkdir(rootDirectory, 0o700) != 0 && Glibc.errno != EEXIST {
            throw AdminSocketError(SystemCallError(call: "mkdir \(rootDirectory)", errno: Glibc.errno).description + "; pass \(option) PATH")
        }
        var status = stat()
        guard lstat(rootDirectory, &status) == 0 else {
            let code = Glibc.errno
            let hint = code == ENOENT ? " (it is made when switchyard serve starts with the default path)" : ""
            throw AdminSocketError(SystemCallError(call: "stat \(rootDirectory)", errno: code).description + hint)
        }
        do {
            try checkRootDirectory(isDirectory: status.st_mode & S_IFMT == S_IFDIR, ownerID: status.st_uid, mode: status.st_mode)
        } catch {
            throw AdminSocketError(error.message)
        }
        return path
    }
}

/// The admin socket could not be set up or used; `message` says why, naming the path, the
/// system call and its errno text where there is one.
public struct AdminSocketError: Error, Equatable, Sendable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
