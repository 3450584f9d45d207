import CSwitchyard
import Glibc
import SwitchyardCore

// The plain socket calls the workers and the control threads repeat, through the funnel: each
// retries EINTR and returns its result or `-errno` without allocating (`systemCallResult`), so
// the data path may use them as freely as the control threads.
extension Socket {
    /// A non-blocking, close-on-exec TCP socket of `family` (`AF_INET`, `AF_INET6`): the
    /// descriptor, or `-errno`.
    static func openStream(family: Int32) -> Int32 {
        Int32(systemCallResult {
            Int(socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0))
        })
    }

    /// setsockopt(2) of an `Int32` option (a flag is 1 or 0): 0, or `-errno`.
    @discardableResult
    static func setOption(_ fd: Int32, _ level: Int32, _ name: Int32, _ value: Int32) -> Int32 {
        var value = value
        return Int32(systemCallResult {
            Int(setsockopt(fd, level, name, &value, socklen_t(MemoryLayout<Int32>.size)))
        })
    }

    /// setsockopt(2) of an option of any plain type (`timeval`, `linger`): 0, or `-errno`.
    @discardableResult
    static func setOption<Value: BitwiseCopyable>(_ fd: Int32, _ level: Int32, _ name: Int32, value: Value) -> Int32 {
        var value = value
        return Int32(systemCallResult {
            Int(setsockopt(fd, level, name, &value, socklen_t(MemoryLayout<Value>.size)))
        })
    }

    /// getsockopt(2) of an `Int32` option: its value, or nil when the call failed (`errno` set).
    static func option(_ fd: Int32, _ level: Int32, _ name: Int32) -> Int32? {
        var value: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        let result = systemCallResult { Int(getsockopt(fd, level, name, &value, &length)) }
        return result == 0 ? value : nil
    }

    /// One send(2) of `bytes` with `flags` (`MSG_NOSIGNAL` always added): the count sent, or `-errno`.
    static func send(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, flags: Int32 = 0) -> Int {
        systemCallResult { Glibc.send(fd, bytes.baseAddress, bytes.count, flags | Int32(MSG_NOSIGNAL)) }
    }

    /// One recv(2) into `buffer` with `flags`: the count received (0 at the end of the stream,
    /// or the datagram's whole length with `MSG_TRUNC`), or `-errno`.
    static func receive(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer, flags: Int32 = 0) -> Int {
        systemCallResult { recv(fd, buffer.baseAddress, buffer.count, flags) }
    }

    /// Starts connecting `fd` to `address`: 0, or `-errno` (`-EINPROGRESS` for a non-blocking
    /// socket whose connect goes on).
    static func connect(_ fd: Int32, to address: SocketAddress) -> Int32 {
        // EINTR is not retried: the connect goes on asynchronously (connect(2)), as with EINPROGRESS.
        let result = address.withSockaddr { Glibc.connect(fd, $0, $1) }
        return result == 0 ? 0 : -swy_errno()
    }

    /// The peer's (`peer`) or the local address of `fd` into `storage`: 0, or `-errno`.
    static func address(of fd: Int32, peer: Bool, into storage: inout sockaddr_storage) -> Int32 {
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        return Int32(systemCallResult {
            withUnsafeMutablePointer(to: &storage) { pointer in
                pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    Int(peer ? getpeername(fd, $0, &length) : getsockname(fd, $0, &length))
                }
            }
        })
    }

    /// shutdown(2) of `fd`'s writing side (a FIN after what is queued): 0, or `-errno`.
    @discardableResult
    static func shutdownWriting(_ fd: Int32) -> Int32 {
        Int32(systemCallResult { Int(shutdown(fd, Int32(SHUT_WR))) })
    }
}
