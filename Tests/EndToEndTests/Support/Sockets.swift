import Foundation
import Glibc

/// A failed socket call, naming the call and the errno.
struct SocketError: Error, CustomStringConvertible {
    let call: String
    let code: Int32

    var description: String {
        "\(call) failed: \(String(cString: strerror(code))) (errno \(code))"
    }
}

/// A failure of the harness itself (binary missing, process not ready, malformed reply).
struct HarnessError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Runs a system call, retrying EINTR; throws `SocketError` naming `call` on any other failure.
@discardableResult
func systemCall<Result: BinaryInteger>(_ call: String, _ body: () -> Result) throws -> Result {
    while true {
        let result = body()
        if result >= 0 { return result }
        let code = errno
        if code != EINTR { throw SocketError(call: call, code: code) }
    }
}

/// A TCP address as written on the switchyard command line: `127.0.0.1:80` or `[::1]:80`.
struct TCPEndpoint: Sendable, Hashable, CustomStringConvertible {
    let host: String
    let port: UInt16

    var isIPv6: Bool { host.contains(":") }

    /// Whether a new connection here is refused (nothing listens, or the proxy stopped
    /// accepting); a connection that opens, or any other failure, is not a refusal.
    func refusesConnections(timeout: Double = 0.5) -> Bool {
        do {
            _ = try TCPConnection(to: self, timeout: timeout)
            return false
        } catch let error as SocketError {
            return error.code == ECONNREFUSED
        } catch {
            return false
        }
    }
    var description: String { isIPv6 ? "[\(host)]:\(port)" : "\(host):\(port)" }

    /// Calls `body` with this endpoint as a `sockaddr`. `host` must be a numeric address.
    func withSocketAddress<R>(_ body: (UnsafePointer<sockaddr>, socklen_t) throws -> R) throws -> R {
        if isIPv6 {
            var address = sockaddr_in6()
            address.sin6_family = sa_family_t(AF_INET6)
            address.sin6_port = port.bigEndian
            guard inet_pton(AF_INET6, host, &address.sin6_addr) == 1 else {
                throw HarnessError("not a numeric IPv6 address: \(host)")
            }
            return try withUnsafePointer(to: &address) {
                try $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    try body($0, socklen_t(MemoryLayout<sockaddr_in6>.size))
                }
            }
        } else {
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = port.bigEndian
            guard inet_pton(AF_INET, host, &address.sin_addr) == 1 else {
                throw HarnessError("not a numeric IPv4 address: \(host)")
            }
            return try withUnsafePointer(to: &address) {
                try $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    try body($0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
        }
    }
}

enum Sockets {
    static let ipv4Loopback = "127.0.0.1"
    static let ipv6Loopback = "::1"

    /// A new TCP socket for `host`'s address family, close-on-exec so the proxy never inherits it.
    static func makeTCPSocket(for host: String) throws -> Int32 {
        let family = host.contains(":") ? AF_INET6 : AF_INET
        return try systemCall("socket") {
            socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        }
    }

    /// A listening socket on `host:port` (port 0 picks a free one) with SO_REUSEADDR, so a
    /// test can bring a backend back on a port it used before. Returns the fd and the bound port.
    static func makeListener(host: String, port: UInt16 = 0, backlog: Int32 = 128) throws -> (fd: Int32, port: UInt16) {
        let fd = try makeTCPSocket(for: host)
        do {
            try setOption(fd, SOL_SOCKET, SO_REUSEADDR, Int32(1))
            _ = try TCPEndpoint(host: host, port: port).withSocketAddress { address, length in
                try systemCall("bind") { bind(fd, address, length) }
            }
            try systemCall("listen") { listen(fd, backlog) }
            return (fd, try localPort(of: fd))
        } catch {
            close(fd)
            throw error
        }
    }

    /// The local port a socket is bound to.
    static func localPort(of fd: Int32) throws -> UInt16 {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = try withUnsafeMutablePointer(to: &storage) {
            try $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { address in
                try systemCall("getsockname") { getsockname(fd, address, &length) }
            }
        }
        let family = storage.ss_family
        return withUnsafePointer(to: &storage) {
            if family == sa_family_t(AF_INET6) {
                return $0.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { UInt16(bigEndian: $0.pointee.sin6_port) }
            }
            return $0.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { UInt16(bigEndian: $0.pointee.sin_port) }
        }
    }

    /// A port on `host` that was free a moment ago: bound to port 0, read back, closed.
    /// Nothing listens there afterwards, so it also serves as a dead backend address.
    static func freeEndpoint(host: String = ipv4Loopback) throws -> TCPEndpoint {
        let (fd, port) = try makeListener(host: host)
        close(fd)
        return TCPEndpoint(host: host, port: port)
    }

    /// Whether an IPv6 loopback socket can be bound on this machine.
    static var ipv6LoopbackAvailable: Bool {
        guard let (fd, _) = try? makeListener(host: ipv6Loopback) else { return false }
        close(fd)
        return true
    }

    /// Sets a socket option whose value is a plain C value (an Int32, timeval or linger).
    static func setOption<Value: BitwiseCopyable>(_ fd: Int32, _ level: Int32, _ name: Int32, _ value: Value) throws {
        var value = value
        try withUnsafeBytes(of: &value) { bytes in
            _ = try systemCall("setsockopt") {
                setsockopt(fd, level, name, bytes.baseAddress, socklen_t(bytes.count))
            }
        }
    }

    static func timeval(seconds: Double) -> Glibc.timeval {
        let clamped = max(seconds, 0.001)
        let whole = clamped.rounded(.down)
        return Glibc.timeval(tv_sec: Int(whole), tv_usec: Int((clamped - whole) * 1_000_000))
    }

    /// Sends every byte, retrying short writes. MSG_NOSIGNAL: a peer that went away must
    /// surface as EPIPE, not kill the test process with SIGPIPE.
    static func sendAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) throws {
        var offset = 0
        while offset < bytes.count {
            let sent = try systemCall("send") {
                send(fd, bytes.baseAddress! + offset, bytes.count - offset, Int32(MSG_NOSIGNAL))
            }
            offset += sent
        }
    }
}

/// How a byte stream ended as seen by a reader.
enum StreamEnd: Equatable, CustomStringConvertible {
    /// Orderly close: recv returned 0.
    case endOfFile
    /// ECONNRESET: the peer (or the proxy) aborted the connection.
    case reset
    /// Nothing arrived before the deadline.
    case timedOut
    case failed(errno: Int32)

    /// EOF or RST: either counts as "the connection was closed".
    var isClosed: Bool { self == .endOfFile || self == .reset }

    var description: String {
        switch self {
        case .endOfFile: "EOF"
        case .reset: "connection reset"
        case .timedOut: "timed out"
        case .failed(let code): "failed: \(String(cString: strerror(code)))"
        }
    }
}

/// What `readToEnd` saw: a checksum of every byte, the first bytes if asked for, and how it ended.
struct ReadOutcome {
    var checksum = Checksum()
    var keptBytes: [UInt8] = []
    var end = StreamEnd.timedOut
    var elapsed: Double = 0

    var keptText: String { String(decoding: keptBytes, as: UTF8.self) }
}

/// A blocking client TCP connection with bounded send and receive timeouts.
///
/// Thread ownership: one thread may send while another receives (the kernel allows a
/// full-duplex socket to be used that way); `close` must only be called once both are done.
final class TCPConnection: @unchecked Sendable {
    let fd: Int32
    private var isClosed = false

    /// Connects to `endpoint`. `timeout` bounds the connect (SO_SNDTIMEO applies to connect
    /// on Linux) and every later send and receive unless changed. With `localPort` the socket
    /// is bound to that port first, so it takes none of the ephemeral range; with `localHost`
    /// it is bound to that address (a client from 127.0.0.2, 127.0.0.3, ...).
    init(to endpoint: TCPEndpoint, timeout: Double = 5, localPort: UInt16? = nil, localHost: String? = nil) throws {
        fd = try Sockets.makeTCPSocket(for: endpoint.host)
        do {
            try Sockets.setOption(fd, SOL_SOCKET, SO_SNDTIMEO, Sockets.timeval(seconds: timeout))
            try Sockets.setOption(fd, SOL_SOCKET, SO_RCVTIMEO, Sockets.timeval(seconds: timeout))
            if localPort != nil || localHost != nil {
                _ = try TCPEndpoint(host: localHost ?? endpoint.host, port: localPort ?? 0).withSocketAddress { address, length in
                    try systemCall("bind") { bind(fd, address, length) }
                }
            }
            _ = try endpoint.withSocketAddress { address, length in
                try systemCall("connect") { connect(fd, address, length) }
            }
        } catch {
            // deinit runs even though init throws (every property is set): close here once
            // and mark it, or deinit closes the number again, by then perhaps another socket's.
            Glibc.close(fd)
            isClosed = true
            throw error
        }
    }

    deinit { close() }

    func setReceiveTimeout(_ seconds: Double) throws {
        try Sockets.setOption(fd, SOL_SOCKET, SO_RCVTIMEO, Sockets.timeval(seconds: seconds))
    }

    func send(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try Sockets.sendAll(fd, $0) }
    }

    func send(_ text: String) throws {
        try send(Array(text.utf8))
    }

    /// Sends the first `count` bytes of `DeterministicBytes(seed:)` and returns their checksum.
    @discardableResult
    func sendGenerated(seed: UInt64, count: Int) throws -> Checksum {
        var generator = DeterministicBytes(seed: seed)
        var checksum = Checksum()
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 16, alignment: 8)
        defer { buffer.deallocate() }
        var remaining = count
        while remaining > 0 {
            let chunk = UnsafeMutableRawBufferPointer(rebasing: buffer[0..<min(remaining, buffer.count)])
            generator.fill(chunk)
            checksum.update(UnsafeRawBufferPointer(chunk))
            try Sockets.sendAll(fd, UnsafeRawBufferPointer(chunk))
            remaining -= chunk.count
        }
        return checksum
    }

    /// Streams `count` generated bytes through an echo path while reading them back on this
    /// thread, half-closes, and throws unless exactly the same bytes come back followed by EOF.
    func verifyEchoStream(seed: UInt64, count: Int, timeout: Double) throws {
        let sender = BackgroundTask { [self] in
            try sendGenerated(seed: seed, count: count)
            try shutdownWrite()
        }
        let received = readToEnd(timeout: timeout)
        if let failure = sender.join(timeout: 5) {
            throw HarnessError("sending \(count) bytes: \(failure)")
        }
        let expected = DeterministicBytes.checksum(seed: seed, count: count)
        guard received.end == .endOfFile, received.checksum == expected else {
            throw HarnessError("sent \(expected), received \(received.checksum) ending with \(received.end)")
        }
    }

    /// Half-close: the peer reads EOF, while this side can still receive.
    func shutdownWrite() throws {
        try systemCall("shutdown") { shutdown(fd, Int32(SHUT_WR)) }
    }

    /// Exactly `count` bytes, or throws on EOF, reset or timeout (`timeout` overall).
    func receive(exactly count: Int, timeout: Double = 5) throws -> [UInt8] {
        var result = [UInt8](repeating: 0, count: count)
        var received = 0
        let deadline = Date().addingTimeInterval(timeout)
        while received < count {
            let remaining = deadline.timeIntervalSinceNow
            guard remaining > 0 else { throw HarnessError("timed out after \(received) of \(count) bytes") }
            try setReceiveTimeout(remaining)
            let n = result.withUnsafeMutableBytes { buffer in
                recv(fd, buffer.baseAddress! + received, count - received, 0)
            }
            if n > 0 {
                received += n
            } else if n == 0 {
                throw HarnessError("EOF after \(received) of \(count) bytes")
            } else if errno != EINTR {
                throw SocketError(call: "recv", code: errno)
            }
        }
        return result
    }

    /// Sends `bytes` and expects the same bytes back (an echo round trip).
    func roundTrip(_ bytes: [UInt8], timeout: Double = 5) throws {
        try send(bytes)
        let echoed = try receive(exactly: bytes.count, timeout: timeout)
        guard echoed == bytes else { throw HarnessError("echo returned different bytes") }
    }

    /// Reads until EOF, reset or `timeout` seconds in total, checksumming every byte and
    /// keeping the first `keepingUpTo` of them.
    func readToEnd(timeout: Double, keepingUpTo keepLimit: Int = 0) -> ReadOutcome {
        var outcome = ReadOutcome()
        let start = Date()
        let deadline = start.addingTimeInterval(timeout)
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 18, alignment: 8)
        defer { buffer.deallocate() }
        while true {
            let remaining = deadline.timeIntervalSinceNow
            guard remaining > 0, (try? setReceiveTimeout(remaining)) != nil else {
                outcome.end = .timedOut
                break
            }
            let n = recv(fd, buffer.baseAddress, buffer.count, 0)
            if n > 0 {
                let chunk = UnsafeRawBufferPointer(rebasing: buffer[0..<n])
                outcome.checksum.update(chunk)
                if outcome.keptBytes.count < keepLimit {
                    outcome.keptBytes += chunk.prefix(keepLimit - outcome.keptBytes.count)
                }
                continue
            }
            if n == 0 { outcome.end = .endOfFile; break }
            let code = errno
            if code == EINTR { continue }
            outcome.end = switch code {
            case ECONNRESET: .reset
            case EAGAIN: .timedOut  // SO_RCVTIMEO expired (EWOULDBLOCK is the same value on Linux)
            default: .failed(errno: code)
            }
            break
        }
        outcome.elapsed = Date().timeIntervalSince(start)
        return outcome
    }

    func close() {
        guard !isClosed else { return }
        isClosed = true
        Glibc.close(fd)
    }
}
