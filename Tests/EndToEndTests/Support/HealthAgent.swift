import Foundation
import Glibc
import Synchronization

/// A tiny HTTP agent on its own port, as Patroni's REST API is beside Postgres: it answers
/// `GET /primary` with `200` or `503` (switchable while running), anything else with `404`,
/// then closes. One thread serves connections one at a time, each bounded by a 1 s receive
/// timeout; `stop()` (also on deinit) ends it.
final class HealthAgent: Sendable {
    let endpoint: TCPEndpoint
    private let state: Mutex<State>
    private let finished = Atomic<Bool>(false)

    private struct State {
        var listenerFD: Int32
        var isPrimary: Bool
        var requests: [String] = []
        var stopped = false
    }

    init(primary: Bool, host: String = Sockets.ipv4Loopback) throws {
        let (fd, port) = try Sockets.makeListener(host: host)
        endpoint = TCPEndpoint(host: host, port: port)
        state = Mutex(State(listenerFD: fd, isPrimary: primary))
        let thread = Thread { [self] in serve(listener: fd) }
        thread.stackSize = 1 << 20
        thread.start()
    }

    deinit { stop() }

    /// Whether `GET /primary` gets 200 (true) or 503 from now on.
    var isPrimary: Bool {
        get { state.withLock { $0.isPrimary } }
        set { state.withLock { $0.isPrimary = newValue } }
    }

    /// The request lines received so far.
    var requestLines: [String] { state.withLock { $0.requests } }

    func stop() {
        let fd: Int32 = state.withLock { state in
            guard !state.stopped else { return -1 }
            state.stopped = true
            return state.listenerFD
        }
        guard fd >= 0 else { return }
        shutdown(fd, Int32(SHUT_RDWR))
        _ = eventually(timeout: 2, interval: 0.005) { finished.load(ordering: .relaxed) }
    }

    private func serve(listener: Int32) {
        defer {
            close(listener)
            finished.store(true, ordering: .relaxed)
        }
        while true {
            let fd = accept(listener, nil, nil)
            if fd < 0 {
                if errno == EINTR || errno == ECONNABORTED { continue }
                return
            }
            if state.withLock({ $0.stopped }) {
                close(fd)
                return
            }
            answer(fd)
            close(fd)
        }
    }

    private func answer(_ fd: Int32) {
        _ = try? Sockets.setOption(fd, SOL_SOCKET, SO_RCVTIMEO, Sockets.timeval(seconds: 1))
        var request: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1024)
        let end = Array("\r\n\r\n".utf8)
        while request.count < 8192 && !request.ends(with: end) {
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            guard n > 0 else { return }
            request += chunk[0..<n]
        }
        let line = String(decoding: request.prefix { $0 != UInt8(ascii: "\r") }, as: UTF8.self)
        let primary = state.withLock { state in
            state.requests.append(line)
            return state.isPrimary
        }
        let status = !line.hasPrefix("GET /primary ") ? "404 Not Found" : primary ? "200 OK" : "503 Service Unavailable"
        let reply = Array("HTTP/1.1 \(status)\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".utf8)
        _ = try? reply.withUnsafeBytes { try Sockets.sendAll(fd, $0) }
    }
}

private extension Array where Element == UInt8 {
    func ends(with suffix: [UInt8]) -> Bool {
        count >= suffix.count && self[(count - suffix.count)...].elementsEqual(suffix)
    }
}
