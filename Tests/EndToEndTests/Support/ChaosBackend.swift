import Foundation
import Glibc
import Synchronization

/// An echo backend that can be reset, stopped and started again on the same port while
/// clients stream through it, and that tells each client which connection it reached.
///
/// On accept it writes one line, `NAME CONNECTION\n` (CONNECTION numbers every connection this
/// backend ever accepted, from 1), then echoes every byte and answers a client's EOF with its own.
///
/// - `reset()`: every open connection is closed with SO_LINGER {on, 0}, so the peer gets RST.
///   The listener stays.
/// - `stop()`: the listener is closed (the kernel resets connections still in its accept queue)
///   and every open connection is reset as above, as when a backend process is killed.
/// - `start()`: listens again on the same port.
///
/// Each connection has a thread of its own with 50 ms socket timeouts, so a reset takes effect
/// within about 50 ms; `closeRecord(of:)` tells when and how a connection ended.
///
/// Thread ownership: any thread may call any method.
final class ChaosBackend: Sendable {
    /// How this backend ended one connection.
    enum CloseKind: Sendable, Equatable {
        /// Reset by `reset()` or `stop()` (RST sent).
        case killed
        /// The client's EOF was echoed and the connection closed normally (FIN).
        case finished
        /// The peer reset or a socket call failed (for example the proxy reset it first).
        case peerFailed
    }

    struct CloseRecord: Sendable {
        let kind: CloseKind
        let time: Date
    }

    let name: String
    let endpoint: TCPEndpoint

    private struct Connection {
        let fd: Int32
        var killRequested = false
    }

    private struct State {
        var listenerFD: Int32 = -1
        var listening = false
        var nextConnection = 1
        var open: [Int: Connection] = [:]
        var closed: [Int: CloseRecord] = [:]
        var kills = 0
        var finished = false
    }

    private let state = Mutex(State())
    private let threads = PeerThreads(stackSize: 1 << 19)

    /// Listens on a free loopback port (or `port`).
    init(name: String, host: String = Sockets.ipv4Loopback, port: UInt16 = 0) throws {
        self.name = name
        let (fd, bound) = try Sockets.makeListener(host: host, port: port, backlog: 256)
        endpoint = TCPEndpoint(host: host, port: bound)
        state.withLock {
            $0.listenerFD = fd
            $0.listening = true
        }
        threads.start { [self] in acceptLoop(fd) }
    }

    deinit { shutDown() }

    var isListening: Bool { state.withLock { $0.listening } }
    var openConnectionCount: Int { state.withLock { $0.open.count } }
    var acceptedCount: Int { state.withLock { $0.nextConnection - 1 } }
    /// How many connections `reset()` and `stop()` killed so far.
    var killedCount: Int { state.withLock { $0.kills } }

    /// When and how connection `number` ended; nil while it is open (or was never accepted).
    func closeRecord(of number: Int) -> CloseRecord? {
        state.withLock { $0.closed[number] }
    }

    /// Resets every open connection (RST); returns how many there were.
    @discardableResult
    func reset() -> Int {
        state.withLock { state in
            for key in state.open.keys { state.open[key]!.killRequested = true }
            return state.open.count
        }
    }

    /// Closes the listener and resets every open connection; returns how many there were.
    @discardableResult
    func stop() -> Int {
        state.withLock { state in
            guard state.listening else { return }
            state.listening = false
            // shutdown wakes the accept thread, which closes the listener, under this lock: so
            // the number is never shut down after the close (it may be another socket's by then).
            if state.listenerFD >= 0 { shutdown(state.listenerFD, Int32(SHUT_RDWR)) }
            state.listenerFD = -1
        }
        return reset()
    }

    /// Listens again on the same port; a no-op while listening.
    func start() throws {
        guard !isListening else { return }
        // The accept thread closes the old listener just after stop(); until then the port is
        // still taken, so retry for a moment.
        var attempt = 0
        var made: (fd: Int32, port: UInt16)?
        while made == nil {
            do {
                made = try Sockets.makeListener(host: endpoint.host, port: endpoint.port, backlog: 256)
            } catch let error as SocketError where error.code == EADDRINUSE && attempt < 100 {
                attempt += 1
                usleep(10_000)
            }
        }
        let fd = made!.fd
        state.withLock {
            $0.listenerFD = fd
            $0.listening = true
        }
        threads.start { [self] in acceptLoop(fd) }
    }

    /// Stops for good and waits (bounded) for every thread.
    func shutDown(timeout: Double = 3) {
        state.withLock { $0.finished = true }
        stop()
        threads.waitUntilDone(timeout: timeout)
    }

    private func acceptLoop(_ listener: Int32) {
        while true {
            let fd = accept(listener, nil, nil)
            if fd < 0 {
                if errno == EINTR || errno == ECONNABORTED { continue }
                break  // stop() shut the listener down.
            }
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
            let number: Int? = state.withLock { state in
                guard state.listening, !state.finished else { return nil }
                let number = state.nextConnection
                state.nextConnection += 1
                state.open[number] = Connection(fd: fd)
                return number
            }
            guard let number else {
                Self.closeWithReset(fd)
                break
            }
            threads.start { [self] in serve(fd, number: number) }
        }
        state.withLock { _ in close(listener) }
    }

    private static func closeWithReset(_ fd: Int32) {
        var option = linger(l_onoff: 1, l_linger: 0)
        _ = setsockopt(fd, SOL_SOCKET, SO_LINGER, &option, socklen_t(MemoryLayout<linger>.size))
        close(fd)
    }

    private func killRequested(_ number: Int) -> Bool {
        state.withLock { $0.open[number]?.killRequested ?? true }
    }

    /// Runs on the connection's own thread and closes `fd` before it returns.
    private func serve(_ fd: Int32, number: Int) {
        let kind = echo(fd, number: number)
        state.withLock { state in
            state.open[number] = nil
            state.closed[number] = CloseRecord(kind: kind, time: Date())
            if kind == .killed { state.kills += 1 }
        }
        if kind == .killed {
            Self.closeWithReset(fd)
        } else {
            close(fd)
        }
    }

    private func echo(_ fd: Int32, number: Int) -> CloseKind {
        let timeout = Sockets.timeval(seconds: 0.05)
        guard (try? Sockets.setOption(fd, SOL_SOCKET, SO_RCVTIMEO, timeout)) != nil,
              (try? Sockets.setOption(fd, SOL_SOCKET, SO_SNDTIMEO, timeout)) != nil else { return .peerFailed }
        let greeting = Array("\(name) \(number)\n".utf8)
        guard let kind = sendAll(fd, greeting[...], number: number) else { return .peerFailed }
        if kind == .killed { return .killed }
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            if killRequested(number) { return .killed }
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n == 0 {
                shutdown(fd, Int32(SHUT_WR))
                return .finished
            }
            if n < 0 {
                if errno == EAGAIN || errno == EINTR { continue }
                return .peerFailed
            }
            guard let sent = sendAll(fd, buffer[0..<n], number: number) else { return .peerFailed }
            if sent == .killed { return .killed }
        }
    }

    /// Sends every byte, checking for a kill between tries; `.finished` when all went out,
    /// `.killed` when a kill came first, nil when the socket failed.
    private func sendAll(_ fd: Int32, _ bytes: ArraySlice<UInt8>, number: Int) -> CloseKind? {
        var offset = bytes.startIndex
        while offset < bytes.endIndex {
            if killRequested(number) { return .killed }
            let sent = bytes[offset...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if sent < 0 {
                if errno == EAGAIN || errno == EINTR { continue }
                return nil
            }
            offset += sent
        }
        return .finished
    }
}

/// SplitMix64: a small seeded generator, so a failing chaos run can be repeated from its seed.
struct SeededRandom: RandomNumberGenerator {
    private var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9e37_79b9_7f4a_7c15
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }
}

/// Resident memory and open descriptors of a process, from /proc.
enum ProcessMetrics {
    /// VmRSS of `pid` in KiB; nil once the process is gone.
    static func residentKiB(of pid: pid_t) -> Int? {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
        for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            return Int(line.split(separator: " ", omittingEmptySubsequences: true)[1])
        }
        return nil
    }

    /// How many descriptors `pid` has open.
    static func openDescriptors(of pid: pid_t) -> Int? {
        (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd"))?.count
    }
}
