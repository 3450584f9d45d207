import CSwitchyard
import Glibc
import SwitchyardCore

/// Socket set-up done with plain system calls (each a few hundred nanoseconds, once per socket).
enum Socket {
    /// TCP_NODELAY (a proxy must not add Nagle delay to small writes) and TCP keepalive, so that
    /// a peer that vanished without a FIN is eventually noticed.
    static func configureStream(_ fd: Int32) {
        setOption(fd, Int32(IPPROTO_TCP), TCP_NODELAY, 1)
        setOption(fd, SOL_SOCKET, SO_KEEPALIVE, 1)
    }

    /// Makes a peer that vanished without a FIN or a reset (a host that lost power, a link that
    /// went dark) be noticed within about `timeout`, instead of after the kernel's defaults: two
    /// hours of silence before the first keepalive probe, and some fifteen minutes of
    /// retransmissions for data the peer never acknowledges. `fd` must have SO_KEEPALIVE (see
    /// `configureStream`). The connection then fails with ETIMEDOUT, which the relay treats like
    /// any other error: both sides are closed, the one still there with a reset.
    ///
    /// - `TCP_USER_TIMEOUT` = `timeout`: sent data may stay unacknowledged that long at most
    ///   (tcp(7), RFC 5482). With keepalive on, it also decides when unanswered probes end the
    ///   connection: once `timeout` has passed since the peer was last heard from.
    /// - `TCP_KEEPIDLE` = `timeout` / 2 and `TCP_KEEPINTVL` = `timeout` / 6 (whole seconds, at
    ///   least 1), `TCP_KEEPCNT` 3: a silent connection is probed after half the timeout, so the
    ///   probe that finds the peer gone falls at about `timeout`.
    ///
    /// Not yet called by the worker: a `--backend-timeout D` flag would apply it to every backend
    /// socket right after `configureStream` (issue 14). Returns false if the kernel refused an option.
    @discardableResult
    static func setDeadPeerTimeout(_ fd: Int32, _ timeout: Duration) -> Bool {
        let milliseconds = max(timeout.milliseconds, 1)
        let userTimeout = UInt32(clamping: milliseconds)
        let idle = Int32(clamping: max(milliseconds / 2_000, 1))
        let interval = Int32(clamping: max(milliseconds / 6_000, 1))
        return setOption(fd, Int32(IPPROTO_TCP), TCP_USER_TIMEOUT, value: userTimeout) == 0
            && setOption(fd, Int32(IPPROTO_TCP), TCP_KEEPIDLE, idle) == 0
            && setOption(fd, Int32(IPPROTO_TCP), TCP_KEEPINTVL, interval) == 0
            && setOption(fd, Int32(IPPROTO_TCP), TCP_KEEPCNT, 3) == 0
    }

    /// Caps the bytes `fd` holds queued but not yet sent (`TCP_NOTSENT_LOWAT`); bytes in flight
    /// are still bounded only by the congestion window, so a long fat path keeps its throughput.
    /// Without it the kernel lets a streaming socket queue megabytes that nobody reads for a
    /// while, and the receiving side then reads them back cold.
    static func limitUnsentBytes(_ fd: Int32, to bytes: Int32) {
        setOption(fd, Int32(IPPROTO_TCP), TCP_NOTSENT_LOWAT, bytes)
    }

    /// Whether `fd`'s connection was reset rather than ended with a FIN: its TCP state is
    /// CLOSE while this side has not shut its own writing down. A reset leaves its error on the
    /// socket for the first operation to take: when a send to that socket takes it, the receive
    /// beside it reads a plain end of stream, and forwarding that as a FIN would make a stream
    /// cut short look complete. (A clean FIN leaves CLOSE_WAIT; only after this side's own FIN
    /// can a clean end reach CLOSE, and then nothing else is sent there to take the error.)
    /// One `getsockopt` per end of stream; the first byte of `tcp_info` is the state.
    static func wasReset(_ fd: Int32) -> Bool {
        var state: UInt8 = 0
        var length = socklen_t(1)
        guard getsockopt(fd, Int32(IPPROTO_TCP), TCP_INFO, &state, &length) == 0, length >= 1 else { return false }
        return state == UInt8(TCP_CLOSE)
    }

    /// Makes `close(2)` send a reset instead of a FIN, so that a peer of a connection cut short
    /// by an error does not mistake it for a complete stream.
    static func setResetOnClose(_ fd: Int32) {
        setOption(fd, SOL_SOCKET, SO_LINGER, value: linger(l_onoff: 1, l_linger: 0))
    }

    /// `StableHash` of the peer's IP address (not its port), without allocating; 0 if it cannot
    /// be read. Equals `StableHash.hash(address.bytes)`.
    static func peerAddressKey(_ fd: Int32) -> UInt64 {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let result = withUnsafeMutablePointer(to: &storage) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { getpeername(fd, $0, &length) }
        }
        guard result == 0 else { return 0 }
        let family = Int32(storage.ss_family)
        return withUnsafeBytes(of: &storage) { raw -> UInt64 in
            // Addresses are stored in network order; reading them little-endian puts byte i of the
            // address at byte i of the words, as StableHash expects.
            switch family {
            case AF_INET:
                let offset = MemoryLayout<sockaddr_in>.offset(of: \.sin_addr)!
                let word = UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
                return StableHash.hash(low: UInt64(word), byteCount: 4)
            case AF_INET6:
                let offset = MemoryLayout<sockaddr_in6>.offset(of: \.sin6_addr)!
                let low = UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
                let high = UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: offset + 8, as: UInt64.self))
                return StableHash.hash(low: low, high: high, byteCount: 16)
            default:
                return 0
            }
        }
    }

    /// Opens a listening socket on `endpoint` with `SO_REUSEPORT`, so that every worker can have
    /// its own and the kernel spreads connections between them.
    static func listen(on endpoint: Endpoint, backlog: Int32 = 4096) throws(SystemCallError) -> (fd: Int32, port: UInt16) {
        guard let address = endpoint.address else { throw SystemCallError(call: "listen(\(endpoint)): unresolved", errno: EINVAL) }
        let fd = try systemCall("socket") {
            socket(SocketAddress.family(of: address), Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        }
        do {
            var on: Int32 = 1
            let size = socklen_t(MemoryLayout<Int32>.size)
            _ = try systemCall("setsockopt(SO_REUSEADDR)") { setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, size) }
            _ = try systemCall("setsockopt(SO_REUSEPORT)") { setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, size) }
            if address.isIPv6 {
                _ = try systemCall("setsockopt(IPV6_V6ONLY)") { setsockopt(fd, Int32(IPPROTO_IPV6), IPV6_V6ONLY, &on, size) }
            }
            // Accepted sockets inherit TCP_NODELAY and SO_KEEPALIVE from the listener (the kernel
            // clones the listening socket), which saves two system calls per client.
            configureStream(fd)
            try bind(fd, endpoint: endpoint, address: address)
            _ = try systemCall("listen(\(endpoint))") { Glibc.listen(fd, backlog) }
            return (fd, try localPort(fd))
        } catch {
            closeDescriptor(fd)
            throw error
        }
    }

    /// Fails with EADDRINUSE if anything, including another Switchyard, already listens on
    /// `endpoint`: a plain socket without `SO_REUSEPORT` cannot share the port, so its bind tells.
    static func checkAvailable(_ endpoint: Endpoint) throws(SystemCallError) {
        guard endpoint.port != 0, let address = endpoint.address else { return }
        let fd = try systemCall("socket") {
            socket(SocketAddress.family(of: address), Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        }
        defer { closeDescriptor(fd) }
        setOption(fd, SOL_SOCKET, SO_REUSEADDR, 1)
        if address.isIPv6 { setOption(fd, Int32(IPPROTO_IPV6), IPV6_V6ONLY, 1) }
        try bind(fd, endpoint: endpoint, address: address)
    }

    private static func bind(_ fd: Int32, endpoint: Endpoint, address: IPAddress) throws(SystemCallError) {
        var storage = sockaddr_storage()
        let length = SocketAddress.fill(&storage, address: address, port: endpoint.port)
        _ = try systemCall("bind(\(endpoint))") {
            withUnsafePointer(to: &storage) { pointer in
                pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.bind(fd, $0, length) }
            }
        }
    }

    static func localPort(_ fd: Int32) throws(SystemCallError) -> UInt16 {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = try systemCall("getsockname") {
            withUnsafeMutablePointer(to: &storage) { pointer in
                pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
            }
        }
        return SocketAddress.port(of: storage)
    }
}

// Non-blocking connects of the control threads' checks (agent checks, issue 22).
extension Socket {
    /// How a non-blocking connect began.
    enum ConnectStart {
        /// Connected at once (loopback may); `fd` is the socket.
        case connected(Int32)
        /// In progress: poll `fd` for POLLOUT, then read `connectError`.
        case inProgress(Int32)
        /// socket(2) failed with this errno (EMFILE, ENFILE: this process's shortage, not the peer's).
        case noSocket(Int32)
        /// connect(2) failed at once with this errno; the socket is already closed.
        case failed(Int32)
    }

    /// Opens a non-blocking, close-on-exec TCP socket and starts connecting it to `address`.
    static func startConnect(to address: SocketAddress) -> ConnectStart {
        let fd = openStream(family: address.family)
        guard fd >= 0 else { return .noSocket(-fd) }
        let result = connect(fd, to: address)
        let code = -result
        if result == 0 { return .connected(fd) }
        // EINTR: the connect goes on asynchronously (connect(2)), as with EINPROGRESS.
        if code == EINPROGRESS || code == EINTR { return .inProgress(fd) }
        closeDescriptor(fd)
        return .failed(code)
    }

    /// The outcome of a non-blocking connect once `fd` polled writable: 0 when connected, else
    /// its errno (SO_ERROR).
    static func connectError(_ fd: Int32) -> Int32 {
        option(fd, SOL_SOCKET, SO_ERROR) ?? swy_errno()
    }
}
