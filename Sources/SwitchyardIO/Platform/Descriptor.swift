import CSwitchyard
import Glibc

// Plain descriptor calls of the control threads and the workers, through the funnel: each
// returns its result or `-errno` without allocating.
enum Descriptor {
    /// open(2) of `path` with `flags` (close-on-exec added) and `mode` for a file it creates:
    /// the descriptor, or `-errno`.
    static func open(_ path: String, _ flags: Int32, mode: mode_t = 0) -> Int32 {
        Int32(systemCallResult { Int(Glibc.open(path, flags | O_CLOEXEC, mode)) })
    }

    /// One read(2) into `buffer`: the count read (0 at the end), or `-errno`.
    static func read(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer) -> Int {
        systemCallResult { Glibc.read(fd, buffer.baseAddress, buffer.count) }
    }

    /// One write(2) of `bytes`: the count written, or `-errno`.
    static func write(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) -> Int {
        systemCallResult { Glibc.write(fd, bytes.baseAddress, bytes.count) }
    }

    /// Adds one to the eventfd `fd`, waking whoever polls it; any thread. A full counter
    /// (EAGAIN) already wakes its reader, so errors are ignored.
    static func signalEvent(_ fd: Int32) {
        var one: UInt64 = 1
        _ = withUnsafeBytes(of: &one) { write(fd, $0) }
    }

    /// Marks a descriptor this process did not open itself (an inherited or handed-over
    /// socket) close-on-exec and non-blocking, as Switchyard opens its own. Errors are ignored:
    /// the flags only fail on a descriptor that is not open, which its first use reports.
    static func setCloseOnExecAndNonBlocking(_ fd: Int32) {
        let descriptorFlags = Int32(systemCallResult { Int(fcntl(fd, F_GETFD)) })
        if descriptorFlags >= 0 { _ = systemCallResult { Int(fcntl(fd, F_SETFD, descriptorFlags | FD_CLOEXEC)) } }
        let statusFlags = Int32(systemCallResult { Int(fcntl(fd, F_GETFL)) })
        if statusFlags >= 0 { _ = systemCallResult { Int(fcntl(fd, F_SETFL, statusFlags | O_NONBLOCK)) } }
    }

    /// poll(2) of `set` for at most `timeout` milliseconds (-1: no limit): the number of entries
    /// with events, or `-errno`. `-EINTR` is returned, not retried, so that the caller's loop
    /// computes its timeout again.
    static func poll(_ set: inout [pollfd], timeout: Int32) -> Int32 {
        let ready = Glibc.poll(&set, nfds_t(set.count), timeout)
        return ready >= 0 ? ready : -swy_errno()
    }

    /// poll(2) of one entry; as above.
    static func poll(_ entry: inout pollfd, timeout: Int32) -> Int32 {
        let ready = Glibc.poll(&entry, 1, timeout)
        return ready >= 0 ? ready : -swy_errno()
    }
}
