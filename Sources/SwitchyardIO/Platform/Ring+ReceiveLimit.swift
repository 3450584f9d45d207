import CSwitchyard
import Glibc

extension Ring {
    /// Whether a multishot receive honours a byte limit (`sqe->optlen`, kernel 6.16+), probed
    /// once on a socket pair: with the limit at one byte and two bytes waiting, a kernel that
    /// knows it ends the receive with its first completion (which still carries both bytes: the
    /// limit ends the receive once reached, it does not shorten a read); an older one fails it
    /// with `EINVAL` or ignores the field and keeps the receive armed (then the pair's end of
    /// stream ends it).
    ///
    /// Call on the ring's thread before any other operation is in flight: every completion seen
    /// here is the probe's. Buffers the probe receives go back to `buffers`.
    func supportsReceiveLimit(buffers: ProvidedBuffers) -> Bool {
        var fds: [Int32] = [-1, -1]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &fds) == 0 else {
            return false
        }
        defer {
            closeDescriptor(fds[0])
            closeDescriptor(fds[1])
        }
        let bytes: [UInt8] = [1, 2]
        guard write(fds[1], bytes, 2) == 2 else { return false }
        let probe = UInt64.max
        submit(.receiveMultishot(socket: fds[0], group: buffers.group, limit: 1), userData: probe)
        var supported = false
        var finished = false
        for _ in 0..<4 where !finished {
            do { try submitAndWait() } catch { return false }
            drainCompletions { userData, result, flags in
                guard userData == probe else { return }
                if flags & IORING_CQE_F_BUFFER != 0 {
                    let id = UInt16(flags >> IORING_CQE_BUFFER_SHIFT)
                    buffers.took(id)
                    buffers.recycle(id)
                }
                if flags & IORING_CQE_F_MORE == 0 {
                    finished = true
                    supported = result > 0
                } else {
                    // The limit was ignored: end the receive with an end of stream.
                    shutdown(fds[1], Int32(SHUT_WR))
                }
            }
        }
        return supported && finished
    }
}
