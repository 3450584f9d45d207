import Foundation
import Glibc
import Synchronization

/// What a test backend does with each accepted connection.
enum BackendBehavior: Sendable {
    /// Echoes every byte; on EOF from the client it half-closes back.
    case echo
    /// Writes `name` + "\n" on accept, then echoes, so a test can tell which backend it reached.
    case identify(name: String)
    /// Sends `byteCount` bytes of `DeterministicBytes(seed:)`, then closes (FIN).
    case sendThenClose(byteCount: Int, seed: UInt64)
    /// Closes at once with SO_LINGER {on, 0}, so the peer receives RST.
    case reset
    /// Reads until EOF, then replies "<byte count> <checksum in hex>\n" and closes.
    case sinkThenReply
    /// Accepts and holds the connection, never reading or writing, until stopped.
    case silent
    /// Closes (FIN) a connection whose client sends nothing for `seconds` (a database's
    /// authentication timeout, a server's header timeout); echoes one that speaks in time.
    case closeWhenSilent(seconds: Double)
}

/// An in-process TCP backend on the loopback interface, served by blocking sockets on its
/// own threads: one accept thread, plus one thread per connection (none for `.silent`).
///
/// `stop()`, also run on deinit, closes the listener and every connection and waits, bounded,
/// for the threads to finish, after which the port can be bound again. The threads hold only
/// the inner `Server`, never this object, so dropping the last reference does stop it.
final class TestBackend: Sendable {
    let behavior: BackendBehavior
    let endpoint: TCPEndpoint
    private let server: Server

    /// Starts listening on `host:port` (port 0 picks a free port).
    convenience init(_ behavior: BackendBehavior, host: String = Sockets.ipv4Loopback, port: UInt16 = 0) throws {
        try self.init(behavior, host: host, listener: Sockets.makeListener(host: host, port: port))
    }

    /// Starts a backend listening on `endpoint`, which must be free (for example a dead address).
    /// A dead address's port came from the ephemeral range, so a proxy's connect to it may have
    /// taken that very port as its own for a moment (a self-connect): binding is retried for up
    /// to 3 s while the port is in use.
    convenience init(_ behavior: BackendBehavior, at endpoint: TCPEndpoint) throws {
        let deadline = Date().addingTimeInterval(3)
        var listener: (fd: Int32, port: UInt16)?
        while listener == nil {
            do {
                listener = try Sockets.makeListener(host: endpoint.host, port: endpoint.port)
            } catch let error as SocketError where error.code == EADDRINUSE && Date() < deadline {
                usleep(50_000)
            }
        }
        try self.init(behavior, host: endpoint.host, listener: listener!)
    }

    private init(_ behavior: BackendBehavior, host: String, listener: (fd: Int32, port: UInt16)) throws {
        self.behavior = behavior
        self.endpoint = TCPEndpoint(host: host, port: listener.port)
        self.server = Server(behavior: behavior, listenerFD: listener.fd)
    }

    deinit { server.stop() }

    /// Connections accepted so far.
    var acceptedCount: Int { server.acceptedCount }

    /// Connections accepted and not yet closed by this backend.
    var openConnectionCount: Int { server.openConnectionCount }

    /// Closes the listener and all connections; waits up to `timeout` seconds for the threads.
    func stop(timeout: Double = 2) { server.stop(timeout: timeout) }

    /// The line a `.sinkThenReply` backend sends after receiving the bytes summarised by `checksum`.
    static func sinkReply(for checksum: Checksum) -> String {
        "\(checksum.byteCount) \(String(checksum.value, radix: 16))\n"
    }
}

/// The listener, connections and threads behind a `TestBackend`.
private final class Server: Sendable {
    private let behavior: BackendBehavior

    private struct State {
        var listenerFD: Int32
        /// Accepted connections still open; a connection thread removes its fd before closing it.
        var connectionFDs: Set<Int32> = []
        var acceptedCount = 0
        var isStopped = false
    }

    private let state: Mutex<State>
    private let threads = PeerThreads()

    init(behavior: BackendBehavior, listenerFD: Int32) {
        self.behavior = behavior
        self.state = Mutex(State(listenerFD: listenerFD))
        threads.start { [self] in acceptLoop(listener: listenerFD) }
    }

    /// Connections accepted so far.
    var acceptedCount: Int { state.withLock { $0.acceptedCount } }

    /// Connections accepted and not yet closed by this backend.
    var openConnectionCount: Int { state.withLock { $0.connectionFDs.count } }

    /// Closes the listener and all connections; waits up to `timeout` seconds for the threads.
    func stop(timeout: Double = 2) {
        let silentFDs: [Int32] = state.withLock { state in
            guard !state.isStopped else { return [] }
            state.isStopped = true
            // shutdown wakes a thread blocked in accept or recv; each owner thread then closes its fd.
            if state.listenerFD >= 0 { shutdown(state.listenerFD, Int32(SHUT_RDWR)) }
            for fd in state.connectionFDs { shutdown(fd, Int32(SHUT_RDWR)) }
            guard case .silent = behavior else { return [] }
            defer { state.connectionFDs.removeAll() }
            return Array(state.connectionFDs)
        }
        for fd in silentFDs { close(fd) }
        threads.waitUntilDone(timeout: timeout)
    }

    private func acceptLoop(listener: Int32) {
        while true {
            let fd = accept(listener, nil, nil)
            if fd < 0 {
                if errno == EINTR || errno == ECONNABORTED { continue }
                break  // EINVAL after stop() shut the listener down.
            }
            // accept4 is _GNU_SOURCE-only; keep the proxy from inheriting test sockets another way.
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
            let admitted = state.withLock { state -> Bool in
                guard !state.isStopped else { return false }
                state.acceptedCount += 1
                state.connectionFDs.insert(fd)
                return true
            }
            guard admitted else {
                close(fd)
                break
            }
            if case .silent = behavior { continue }
            threads.start { [self] in
                serve(fd)
                state.withLock { _ = $0.connectionFDs.remove(fd) }
                close(fd)
            }
        }
        state.withLock { $0.listenerFD = -1 }
        close(listener)
    }

    /// Runs on the connection's own thread; the caller closes `fd` afterwards.
    private func serve(_ fd: Int32) {
        do {
            switch behavior {
            case .echo:
                try echo(fd)
            case .identify(let name):
                try Array((name + "\n").utf8).withUnsafeBytes { try Sockets.sendAll(fd, $0) }
                try echo(fd)
            case .sendThenClose(let byteCount, let seed):
                try sendGenerated(fd, byteCount: byteCount, seed: seed)
            case .reset:
                try Sockets.setOption(fd, SOL_SOCKET, SO_LINGER, linger(l_onoff: 1, l_linger: 0))
            case .sinkThenReply:
                try sinkThenReply(fd)
            case .silent:
                break
            case .closeWhenSilent(let seconds):
                var request = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                if poll(&request, 1, Int32(seconds * 1000)) > 0 { try echo(fd) }
            }
        } catch {
            // The peer went away or the backend was stopped: the connection just ends.
        }
    }

    private func echo(_ fd: Int32) throws {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 16, alignment: 8)
        defer { buffer.deallocate() }
        while true {
            let n = try systemCall("recv") { recv(fd, buffer.baseAddress, buffer.count, 0) }
            if n == 0 {
                shutdown(fd, Int32(SHUT_WR))
                return
            }
            try Sockets.sendAll(fd, UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
        }
    }

    private func sendGenerated(_ fd: Int32, byteCount: Int, seed: UInt64) throws {
        var generator = DeterministicBytes(seed: seed)
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 16, alignment: 8)
        defer { buffer.deallocate() }
        var remaining = byteCount
        while remaining > 0 {
            let chunk = UnsafeMutableRawBufferPointer(rebasing: buffer[0..<min(remaining, buffer.count)])
            generator.fill(chunk)
            try Sockets.sendAll(fd, UnsafeRawBufferPointer(chunk))
            remaining -= chunk.count
        }
    }

    private func sinkThenReply(_ fd: Int32) throws {
        var checksum = Checksum()
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 18, alignment: 8)
        defer { buffer.deallocate() }
        while true {
            let n = try systemCall("recv") { recv(fd, buffer.baseAddress, buffer.count, 0) }
            if n == 0 { break }
            checksum.update(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
        }
        let reply = TestBackend.sinkReply(for: checksum)
        try Array(reply.utf8).withUnsafeBytes { try Sockets.sendAll(fd, $0) }
    }
}
