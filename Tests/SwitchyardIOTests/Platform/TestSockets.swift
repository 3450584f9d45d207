import Glibc
import Synchronization
@testable import SwitchyardIO

/// A loopback TCP listener the test controls, standing in for a backend.
///
/// - `.answering(reply)`: accepts, reads what the checker sends, writes `reply` (if any), closes.
/// - `.silent`: listens but never accepts; the kernel still completes handshakes, so a connect
///   succeeds and no reply ever comes.
/// - `.flooding`: accepts and writes `x` bytes without end, until the peer closes.
final class TestBackend: Sendable {
    enum Behaviour: Sendable {
        case answering([UInt8]?)
        case silent
        case flooding
    }

    let port: UInt16
    let host: String
    private let fd: Int32
    private let thread: ControlThread?

    /// Listens on `host` (an IP literal), port `port` or a free one when 0.
    init(_ behaviour: Behaviour, host: String = "127.0.0.1", port: UInt16 = 0) throws {
        let v6 = host.contains(":")
        let fd = socket(v6 ? AF_INET6 : AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SystemCallError(call: "socket", errno: errno) }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var storage = sockaddr_storage()
        var length: socklen_t
        if v6 {
            var sin6 = sockaddr_in6()
            sin6.sin6_family = sa_family_t(AF_INET6)
            sin6.sin6_port = port.bigEndian
            inet_pton(AF_INET6, host, &sin6.sin6_addr)
            withUnsafeBytes(of: sin6) { source in withUnsafeMutableBytes(of: &storage) { $0.copyMemory(from: source) } }
            length = socklen_t(MemoryLayout<sockaddr_in6>.size)
        } else {
            var sin = sockaddr_in()
            sin.sin_family = sa_family_t(AF_INET)
            sin.sin_port = port.bigEndian
            inet_pton(AF_INET, host, &sin.sin_addr)
            withUnsafeBytes(of: sin) { source in withUnsafeMutableBytes(of: &storage) { $0.copyMemory(from: source) } }
            length = socklen_t(MemoryLayout<sockaddr_in>.size)
        }
        let bound = withUnsafePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
        }
        guard bound == 0, listen(fd, 64) == 0 else {
            let code = errno
            Glibc.close(fd)
            throw SystemCallError(call: "bind/listen \(host):\(port)", errno: code)
        }
        _ = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        let actualPort = v6
            ? withUnsafeBytes(of: storage) { UInt16(bigEndian: $0.load(fromByteOffset: 2, as: UInt16.self)) }
            : withUnsafeBytes(of: storage) { UInt16(bigEndian: $0.load(fromByteOffset: 2, as: UInt16.self)) }
        self.fd = fd
        self.port = actualPort
        self.host = host
        if case let .answering(reply) = behaviour {
            thread = try ControlThread(name: "test-backend") {
                while true {
                    let client = accept(fd, nil, nil)
                    if client < 0 {
                        if errno == EINTR { continue }
                        return  // shutdown(2) of the listener ends the loop.
                    }
                    var timeout = timeval(tv_sec: 0, tv_usec: 300_000)
                    setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
                    var buffer = [UInt8](repeating: 0, count: 512)
                    _ = recv(client, &buffer, buffer.count, 0)
                    if let reply { _ = send(client, reply, reply.count, Int32(MSG_NOSIGNAL)) }
                    Glibc.close(client)
                }
            }
        } else if case .flooding = behaviour {
            thread = try ControlThread(name: "test-flood") {
                let chunk = [UInt8](repeating: UInt8(ascii: "x"), count: 65536)
                while true {
                    let client = accept(fd, nil, nil)
                    if client < 0 {
                        if errno == EINTR { continue }
                        return
                    }
                    while send(client, chunk, chunk.count, Int32(MSG_NOSIGNAL)) > 0 {}
                    Glibc.close(client)
                }
            }
        } else {
            thread = nil
        }
    }

    var endpointText: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }

    /// Stops listening: later connects to the port are refused.
    func close() {
        shutdown(fd, Int32(SHUT_RDWR))
        thread?.join()
        Glibc.close(fd)
    }
}

/// A free loopback port with nothing listening on it (connects are refused).
func refusedPort() throws -> UInt16 {
    let backend = try TestBackend(.silent)
    backend.close()
    return backend.port
}

/// Polls `condition` every 5 ms until it holds or `limit` passes; returns the time it took, or
/// nil on timeout.
func timeUntil(_ limit: Duration, _ condition: () -> Bool) -> Duration? {
    let clock = ContinuousClock()
    let start = clock.now
    while clock.now - start < limit {
        if condition() { return clock.now - start }
        usleep(5_000)
    }
    return condition() ? clock.now - start : nil
}

/// A raw admin connection for tests that need to send bytes the real client would not.
final class RawAdminConnection {
    let fd: Int32
    private var buffer: [UInt8] = []

    init(path: String) throws {
        let address = try UnixSocket.address(path)
        fd = try UnixSocket.make(nonBlocking: false)
        try systemCall("connect") { UnixSocket.withAddress(address) { connect(fd, $0, $1) } }
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit { Glibc.close(fd) }

    func write(_ bytes: [UInt8]) {
        _ = send(fd, bytes, bytes.count, Int32(MSG_NOSIGNAL))
    }

    func write(_ text: String) { write(Array(text.utf8)) }

    /// The next reply without its terminating empty line, or nil on EOF or a 5 s timeout.
    func readReply() -> String? {
        while true {
            if buffer.count >= 2, let end = (1..<buffer.count).first(where: { buffer[$0] == 0x0A && buffer[$0 - 1] == 0x0A }) {
                let text = String(decoding: buffer[..<(end - 1)], as: UTF8.self)
                buffer.removeSubrange(...end)
                return text
            }
            var chunk = [UInt8](repeating: 0, count: 4096)
            let count = recv(fd, &chunk, chunk.count, 0)
            if count <= 0 { return nil }
            buffer += chunk[..<count]
        }
    }

    /// Whether the server closed the connection (EOF) within 5 s.
    func closedByServer() -> Bool {
        var chunk = [UInt8](repeating: 0, count: 64)
        return recv(fd, &chunk, chunk.count, 0) == 0
    }
}
