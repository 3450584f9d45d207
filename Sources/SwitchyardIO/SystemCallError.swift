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

/// strerror(3) text for `code`, e.g. `Connection refused`.
func errnoText(_ code: Int32) -> String {
    String(cString: strerror(code))
}

/// strerror(3) text starting lower case, for the middle of a sentence (`connection refused`).
func errnoPhrase(_ code: Int32) -> String {
    let text = errnoText(code)
    guard let first = text.first else { return text }
    return first.lowercased() + text.dropFirst()
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

/// An eventfd(2) used to wake a control thread's poll(2) from another thread.
struct WakeupEvent: Sendable {
    let fd: Int32

    init() throws(SystemCallError) {
        fd = try systemCall("eventfd") { eventfd(0, Int32(EFD_NONBLOCK | EFD_CLOEXEC)) }
    }

    /// Any thread: makes the descriptor readable.
    func signal() {
        var one: UInt64 = 1
        _ = withUnsafeBytes(of: &one) { write(fd, $0.baseAddress, 8) }
    }

    /// The owning thread, after poll reports it readable: resets it.
    func drain() {
        var value: UInt64 = 0
        _ = withUnsafeMutableBytes(of: &value) { read(fd, $0.baseAddress, 8) }
    }

    func close() { closeDescriptor(fd) }
}
