import CSwitchyard
import Glibc

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
