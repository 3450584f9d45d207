import CSwitchyard
import Glibc

/// A failed system call: which one and its errno, shown as `connect: Connection refused`.
public struct SystemCallError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The call, with its subject when that helps (`bind /run/user/1000/switchyard.sock`).
    public var call: String
    public var errno: Int32

    public init(call: String, errno: Int32) {
        self.call = call
        self.errno = errno
    }

    public var description: String { "\(call): \(Errno.describe(errno))" }
}

/// The syscall funnel of the control threads: runs `body` again while it fails with EINTR and
/// throws a `SystemCallError` naming `call` for any other -1.
@discardableResult
func systemCall<Result: FixedWidthInteger>(_ call: @autoclosure () -> String, _ body: () -> Result) throws(SystemCallError) -> Result {
    while true {
        let result = body()
        if result != -1 { return result }
        let code = Glibc.errno
        if code == EINTR { continue }
        throw SystemCallError(call: call(), errno: code)
    }
}

/// Closes `fd`, ignoring errors: after close(2) fails the descriptor is gone anyway (see the
/// NOTES in close(2)), and it must not be retried on EINTR.
func closeDescriptor(_ fd: Int32) {
    _ = Glibc.close(fd)
}

/// Like `systemCall`, but returns `-errno` instead of throwing (for the data path, where an
/// expected `EAGAIN` must not cost an error allocation).
@inline(__always)
func systemCallResult(_ body: () -> Int) -> Int {
    while true {
        let result = body()
        if result >= 0 { return result }
        let code = swy_errno()
        if code == EINTR { continue }
        return -Int(code)
    }
}
