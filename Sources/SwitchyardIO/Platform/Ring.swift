import CSwitchyard
import Glibc

/// One operation to submit, described as a value. `Ring.submit(_:userData:)` is the only place
/// that turns these into submission entries.
///
/// Pointer lifetimes: every pointer must stay valid until the operation completes (the caller
/// keeps them in its connection slot or in the worker).
enum RingOperation {
    /// Multishot accept; accepted sockets are non-blocking and close-on-exec.
    case acceptMultishot(listener: Int32)
    /// One accept (a listener paced by `max-connection-rate` takes one client at a time).
    case accept(listener: Int32)
    /// Connect a non-blocking socket (the worker's tick enforces the deadline).
    case connect(socket: Int32, address: UnsafePointer<sockaddr>, length: socklen_t)
    /// Multishot receive: one completion per chunk, each in a buffer from group `group`, until
    /// an error, end of stream, an empty buffer pool (-ENOBUFS) or a cancel ends it (a completion
    /// without `IORING_CQE_F_MORE`). A nonzero `limit` also ends it once that many bytes have
    /// been received (kernel 6.16+; see `Ring.supportsReceiveLimit`), its last completion
    /// carrying data.
    case receiveMultishot(socket: Int32, group: UInt16, limit: UInt32)
    /// Cancels the one operation submitted with `userData`.
    case cancel(userData: UInt64)
    /// Send `length` bytes without raising SIGPIPE. `more` adds `MSG_MORE`: the bytes wait in the
    /// socket for the `shutdown(2)` or `close(2)` that follows at once, and leave with its FIN.
    case send(socket: Int32, bytes: UnsafeRawPointer, length: UInt32, more: Bool)
    /// One-shot readiness poll (`POLLIN`/`POLLOUT`, plus `POLLRDHUP`).
    case poll(fd: Int32, events: UInt32)
    /// A relative timer; completes with -ETIME when it fires.
    case timeout(UnsafePointer<__kernel_timespec>)
    /// Read into `buffer` (the worker's wake-up eventfd).
    case read(fd: Int32, buffer: UnsafeMutableRawPointer, length: UInt32)
    /// Cancels every pending operation on `fd` (kernel 5.19+).
    case cancelAll(fd: Int32)
}

/// An io_uring instance owned by exactly one thread.
///
/// Thread ownership: created, used and destroyed on its worker's thread (the ring is set up with
/// `SINGLE_ISSUER`, and with `DEFER_TASKRUN` completions are only run inside this thread's waits).
final class Ring {
    private let ring: UnsafeMutablePointer<io_uring>
    /// Flags the ring was created with (DEFER_TASKRUN is dropped on kernels that lack it).
    let flags: UInt32
    private var completions: [UnsafeMutablePointer<io_uring_cqe>?]
    /// How many times queued entries were handed to the kernel: an entry queued since the last
    /// time is still only in this process's memory, and may be changed (see `addMoreFlag`).
    private var handOvers: UInt64 = 0

    /// A queued entry, recognised as unsubmitted by the hand-over it was queued in.
    struct QueuedEntry {
        fileprivate let sqe: UnsafeMutablePointer<io_uring_sqe>
        fileprivate let handOver: UInt64
    }

    /// Creates a ring with `entries` submission slots and a completion queue `completionFactor`
    /// times larger, so bursts of completions do not overflow. `taskRunFlag` asks the kernel to
    /// raise `IORING_SQ_TASKRUN` when completions wait for this thread to enter (kernel 6.1+ with
    /// `DEFER_TASKRUN`), which `hasPendingWork` reads without a system call (busy polling).
    init(entries: UInt32, completionFactor: UInt32 = 4, taskRunFlag: Bool = false) throws(SystemCallError) {
        ring = .allocate(capacity: 1)
        ring.initialize(to: io_uring())
        completions = Array(repeating: nil, count: 256)
        let deferred = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_SUBMIT_ALL | IORING_SETUP_CQSIZE
        var attempts: [UInt32] = (taskRunFlag ? [deferred | IORING_SETUP_TASKRUN_FLAG] : []) + [
            deferred,
            IORING_SETUP_SUBMIT_ALL | IORING_SETUP_CQSIZE,
        ]
        var lastError: Int32 = 0
        while !attempts.isEmpty {
            let candidate = attempts.removeFirst()
            var params = io_uring_params()
            params.flags = candidate
            params.cq_entries = entries * completionFactor
            let result = io_uring_queue_init_params(entries, ring, &params)
            if result == 0 {
                flags = candidate
                return
            }
            lastError = -result
            if lastError != EINVAL { break }
        }
        ring.deallocate()
        throw SystemCallError(call: "io_uring_setup", errno: lastError)
    }

    deinit {
        io_uring_queue_exit(ring)
        ring.deallocate()
    }

    var fd: Int32 { ring.pointee.ring_fd }

    /// Queues `operation`; submitted by the next `submitAndWait`. When the submission queue is
    /// full, pending entries are submitted first so no operation is ever dropped.
    @discardableResult
    func submit(_ operation: RingOperation, userData: UInt64) -> QueuedEntry {
        var sqe = io_uring_get_sqe(ring)
        if sqe == nil {
            handOvers &+= 1
            _ = io_uring_submit(ring)
            sqe = io_uring_get_sqe(ring)
        }
        guard let sqe else {
            fatalError("io_uring submission queue still full after submit")
        }
        switch operation {
        case let .acceptMultishot(listener):
            io_uring_prep_multishot_accept(sqe, listener, nil, nil, Int32(SOCK_NONBLOCK.rawValue | SOCK_CLOEXEC.rawValue))
        case let .accept(listener):
            io_uring_prep_accept(sqe, listener, nil, nil, Int32(SOCK_NONBLOCK.rawValue | SOCK_CLOEXEC.rawValue))
        case let .connect(socket, address, length):
            io_uring_prep_connect(sqe, socket, address, length)
        case let .receiveMultishot(socket, group, limit):
            io_uring_prep_recv_multishot(sqe, socket, nil, 0, 0)
            sqe.pointee.flags |= UInt8(swy_IOSQE_BUFFER_SELECT)
            sqe.pointee.buf_group = group
            // The kernel's UAPI names this field `optlen` (6.16+); liburing 2.3 only `file_index`.
            sqe.pointee.file_index = limit
        case let .cancel(userData):
            io_uring_prep_cancel64(sqe, userData, 0)
        case let .send(socket, bytes, length, more):
            io_uring_prep_send(sqe, socket, bytes, Int(length), Int32(MSG_NOSIGNAL) | (more ? Int32(MSG_MORE) : 0))
        case let .poll(fd, events):
            io_uring_prep_poll_add(sqe, fd, events)
        case let .timeout(timespec):
            io_uring_prep_timeout(sqe, UnsafeMutablePointer(mutating: timespec), 0, 0)
        case let .read(fd, buffer, length):
            io_uring_prep_read(sqe, fd, buffer, length, 0)
        case let .cancelAll(fd):
            io_uring_prep_cancel_fd(sqe, fd, UInt32(IORING_ASYNC_CANCEL_ALL))
        }
        io_uring_sqe_set_data64(sqe, userData)
        return QueuedEntry(sqe: sqe, handOver: handOvers)
    }

    /// Adds `MSG_MORE` to the send queued as `entry` (tagged `userData`) if the kernel has not
    /// read it yet; false when it has (or the slot now holds another entry). With no SQPOLL
    /// thread the kernel reads entries only inside `io_uring_enter`, so this is race-free.
    @discardableResult
    func addMoreFlag(_ entry: QueuedEntry, userData: UInt64) -> Bool {
        guard entry.handOver == handOvers, entry.sqe.pointee.user_data == userData,
              entry.sqe.pointee.opcode == UInt8(IORING_OP_SEND.rawValue) else { return false }
        entry.sqe.pointee.msg_flags |= UInt32(MSG_MORE)
        return true
    }

    /// Submits queued entries and waits for at least one completion. EINTR and EBUSY (completion
    /// queue momentarily full) return normally; the caller drains and calls again.
    func submitAndWait() throws(SystemCallError) {
        handOvers &+= 1
        let result = io_uring_submit_and_wait(ring, 1)
        if result < 0 && result != -EINTR && result != -EBUSY && result != -EAGAIN {
            throw SystemCallError(call: "io_uring_enter", errno: -result)
        }
    }

    /// Submits queued entries and runs the completions waiting for this thread, without sleeping
    /// (`io_uring_enter` with `GETEVENTS` and no minimum). Errors as `submitAndWait`.
    func submitWithoutWaiting() throws(SystemCallError) {
        handOvers &+= 1
        let result = io_uring_submit_and_get_events(ring)
        if result < 0 && result != -EINTR && result != -EBUSY && result != -EAGAIN {
            throw SystemCallError(call: "io_uring_enter", errno: -result)
        }
    }

    /// Completions are ready to drain.
    var hasCompletions: Bool { io_uring_cq_ready(ring) > 0 }

    /// Entries are queued that the kernel has not been handed yet.
    var hasQueuedEntries: Bool { io_uring_sq_ready(ring) > 0 }

    /// Whether `hasPendingWork` sees every completion coming: with `DEFER_TASKRUN` they wait
    /// unseen in the kernel unless `TASKRUN_FLAG` announces them (a kernel that refused the flag).
    var announcesPendingWork: Bool {
        flags & IORING_SETUP_DEFER_TASKRUN == 0 || flags & IORING_SETUP_TASKRUN_FLAG != 0
    }

    /// Completions are ready, or wait for this thread to enter the kernel (`IORING_SQ_TASKRUN`,
    /// set only on a ring made with `taskRunFlag`). Reads shared memory only: no system call.
    var hasPendingWork: Bool {
        io_uring_cq_ready(ring) > 0 || swy_sq_flags(ring) & IORING_SQ_TASKRUN != 0
    }

    /// Calls `body(userData, result, flags)` for every available completion, in a batch, then
    /// advances the completion queue once per batch. Returns how many were seen.
    @discardableResult
    func drainCompletions(_ body: (UInt64, Int32, UInt32) -> Void) -> Int {
        var total = 0
        while true {
            let count = completions.withUnsafeMutableBufferPointer { buffer in
                Int(io_uring_peek_batch_cqe(ring, buffer.baseAddress, UInt32(buffer.count)))
            }
            if count == 0 { return total }
            for index in 0..<count {
                let cqe = completions[index]!.pointee
                body(cqe.user_data, cqe.res, cqe.flags)
            }
            io_uring_cq_advance(ring, UInt32(count))
            total += count
            if count < completions.count { return total }
        }
    }

    /// Registers a provided-buffer ring (kernel 5.19+) for `group`.
    func registerBufferRing(_ bufferRing: UnsafeMutablePointer<io_uring_buf_ring>, entries: UInt32, group: UInt16) throws(SystemCallError) {
        var registration = io_uring_buf_reg()
        registration.ring_addr = UInt64(UInt(bitPattern: bufferRing))
        registration.ring_entries = entries
        registration.bgid = group
        let result = io_uring_register_buf_ring(ring, &registration, 0)
        if result < 0 { throw SystemCallError(call: "io_uring_register_buf_ring", errno: -result) }
    }
}

/// Probes whether io_uring can be used at all (it may be disabled by
/// `kernel.io_uring_disabled` or a seccomp policy), so startup can fail with one clear line.
public func probeIOUring() throws(SystemCallError) {
    _ = try Ring(entries: 4, completionFactor: 2)
}
