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
}

extension AdminSocketPath {
    /// The default path for this process: `$XDG_RUNTIME_DIR/switchyard.sock`, else
    /// `/tmp/switchyard-UID.sock` (see `defaultPath(runtimeDirectory:userID:)`).
    public static func current() -> String {
        let runtime = getenv("XDG_RUNTIME_DIR").map { String(cString: $0) }
        return defaultPath(runtimeDirectory: runtime, userID: getuid())
    }
}

/// The admin socket could not be set up or used; `message` says why, naming the path, the
/// system call and its errno text where there is one.
public struct AdminSocketError: Error, Equatable, Sendable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
