import Foundation
import Glibc
import Synchronization
import SwitchyardCore

/// A backend that requires a PROXY header (read with the project's own parser), answers with a
/// line naming the addresses it carried (`SOURCE DESTINATION\n`, `- -` for none, or
/// `invalid REASON\n` and a close), then echoes every payload byte (those that came with the
/// header first) and half-closes back on EOF.
final class ProxyHeaderBackend: Sendable {
    let endpoint: TCPEndpoint
    private let state: Mutex<State>
    private let threads = PeerThreads()

    private struct State {
        var listenerFD: Int32
        var connectionFDs: Set<Int32> = []
        var stopped = false
        var headers: [ProxyHeader] = []
    }

    init(host: String = Sockets.ipv4Loopback) throws {
        let (fd, port) = try Sockets.makeListener(host: host)
        endpoint = TCPEndpoint(host: host, port: port)
        state = Mutex(State(listenerFD: fd))
        threads.start { [self] in acceptLoop(fd) }
    }

    deinit { stop() }

    /// Every complete header received so far, in order.
    var headers: [ProxyHeader] { state.withLock { $0.headers } }

    func stop(timeout: Double = 2) {
        state.withLock { state in
            guard !state.stopped else { return }
            state.stopped = true
            shutdown(state.listenerFD, Int32(SHUT_RDWR))
            for fd in state.connectionFDs { shutdown(fd, Int32(SHUT_RDWR)) }
        }
        threads.waitUntilDone(timeout: timeout)
    }

    private func acceptLoop(_ listener: Int32) {
        while true {
            let fd = accept(listener, nil, nil)
            if fd < 0 {
                if errno == EINTR || errno == ECONNABORTED { continue }
                break
            }
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
            let admitted = state.withLock { state -> Bool in
                guard !state.stopped else { return false }
                state.connectionFDs.insert(fd)
                return true
            }
            guard admitted else {
                close(fd)
                break
            }
            threads.start { [self] in
                serve(fd)
                state.withLock { _ = $0.connectionFDs.remove(fd) }
                close(fd)
            }
        }
        close(listener)
    }

    private func serve(_ fd: Int32) {
        var reader = ProxyHeaderReader()
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        do {
            while case .needMoreData = reader.result {
                let n = try buffer.withUnsafeMutableBytes { raw in
                    try systemCall("recv") { recv(fd, raw.baseAddress, raw.count, 0) }
                }
                if n == 0 { return }
                reader.feed(buffer[0..<n])
            }
            switch reader.result {
            case let .complete(header):
                state.withLock { $0.headers.append(header) }
                let line = "\(header.source?.description ?? "-") \(header.destination?.description ?? "-")\n"
                try Array(line.utf8).withUnsafeBytes { try Sockets.sendAll(fd, $0) }
                let payload = Array(reader.payload)
                if !payload.isEmpty { try payload.withUnsafeBytes { try Sockets.sendAll(fd, $0) } }
            case let .invalid(error):
                try Array("invalid \(error)\n".utf8).withUnsafeBytes { try Sockets.sendAll(fd, $0) }
                return
            case .needMoreData:
                return
            }
            while true {
                let n = try buffer.withUnsafeMutableBytes { raw in
                    try systemCall("recv") { recv(fd, raw.baseAddress, raw.count, 0) }
                }
                if n == 0 {
                    shutdown(fd, Int32(SHUT_WR))
                    return
                }
                try buffer.withUnsafeBytes { try Sockets.sendAll(fd, UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
            }
        } catch {
            // The peer went away or the backend was stopped.
        }
    }
}

/// One HAProxy process (Debian's `haproxy`, run in the foreground with `-db`) from a
/// configuration the test writes; its log goes to standard output, kept in a file.
final class HAProxyProcess: Sendable {
    let folder: String
    private let process: Process
    private let logPath: String

    /// `sections` is everything after `global` and `defaults` (frontends and backends). The log
    /// line of each session is `log-format`, written when the session ends.
    init(sections: String, logFormat: String = "client=%ci:%cp frontend=%fi:%fp bytes_in=%U bytes_out=%B", listen: [TCPEndpoint]) throws {
        folder = try ConfiguredProxy.makeFolder()
        logPath = folder + "/haproxy.log"
        let config = """
        global
            log stdout format raw local0
            maxconn 200
        defaults
            mode tcp
            log global
            log-format "\(logFormat)"
            timeout connect 2s
            timeout client 20s
            timeout server 20s
        \(sections)

        """
        try ConfiguredProxy.write(config, to: folder + "/haproxy.cfg")
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/sbin/haproxy")
        process.arguments = ["-db", "-f", folder + "/haproxy.cfg"]
        process.standardInput = FileHandle.nullDevice
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        process.standardOutput = handle
        process.standardError = handle
        try SwitchyardProcess.runWithDefaultSignalMask(process)
        for endpoint in listen {
            guard eventually(timeout: 10, interval: 0.02, {
                (try? TCPConnection(to: endpoint, timeout: 1)).map { $0.close(); return true } ?? false
            }) else {
                stop()
                throw HarnessError("haproxy did not listen on \(endpoint): \(log)")
            }
        }
    }

    deinit {
        stop()
        try? FileManager.default.removeItem(atPath: folder)
    }

    /// Everything HAProxy has written (its log lines and any warnings).
    var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    /// Stops the process this started, by its pid, while it has not been reaped.
    func stop() {
        guard process.isRunning else { return }
        Glibc.kill(process.processIdentifier, SIGKILL)
        _ = eventually(timeout: 5, interval: 0.01) { !process.isRunning }
    }
}

extension Sockets {
    /// The local address a connected socket was given, as `TCPEndpoint`.
    static func localEndpoint(of fd: Int32) throws -> TCPEndpoint {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = try withUnsafeMutablePointer(to: &storage) {
            try $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { address in
                try systemCall("getsockname") { getsockname(fd, address, &length) }
            }
        }
        var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        if storage.ss_family == sa_family_t(AF_INET6) {
            let address = withUnsafeBytes(of: &storage) { $0.load(as: sockaddr_in6.self) }
            var raw = address.sin6_addr
            inet_ntop(AF_INET6, &raw, &text, socklen_t(text.count))
            return TCPEndpoint(host: String(cString: text), port: UInt16(bigEndian: address.sin6_port))
        }
        let address = withUnsafeBytes(of: &storage) { $0.load(as: sockaddr_in.self) }
        var raw = address.sin_addr
        inet_ntop(AF_INET, &raw, &text, socklen_t(text.count))
        return TCPEndpoint(host: String(cString: text), port: UInt16(bigEndian: address.sin_port))
    }
}

extension TCPConnection {
    /// The local end of the connection.
    var localEndpoint: TCPEndpoint { get throws { try Sockets.localEndpoint(of: fd) } }
}

/// Connects from `source` (the socket is bound to that address, port 0, before connecting) to
/// `endpoint`, sends `bytes`, and reads until the peer closes or `timeout` passes; returns how
/// the stream ended and what was read. For clients from another loopback address (127.0.0.2).
func exchange(from source: String, to endpoint: TCPEndpoint, sending bytes: [UInt8], timeout: Double = 5) throws -> (end: StreamEnd, received: [UInt8]) {
    let fd = try Sockets.makeTCPSocket(for: endpoint.host)
    defer { close(fd) }
    try Sockets.setOption(fd, SOL_SOCKET, SO_SNDTIMEO, Sockets.timeval(seconds: timeout))
    try Sockets.setOption(fd, SOL_SOCKET, SO_RCVTIMEO, Sockets.timeval(seconds: timeout))
    _ = try TCPEndpoint(host: source, port: 0).withSocketAddress { address, length in
        try systemCall("bind") { bind(fd, address, length) }
    }
    _ = try endpoint.withSocketAddress { address, length in
        try systemCall("connect") { connect(fd, address, length) }
    }
    do {
        try bytes.withUnsafeBytes { try Sockets.sendAll(fd, $0) }
    } catch let error as SocketError where error.code == ECONNRESET || error.code == EPIPE {
        return (.reset, []) // closed before everything was sent
    }
    var received: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 4096)
    while true {
        let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        if n > 0 {
            received += buffer[0..<n]
            continue
        }
        if n == 0 { return (.endOfFile, received) }
        let code = errno
        if code == EINTR { continue }
        return (code == ECONNRESET ? .reset : code == EAGAIN ? .timedOut : .failed(errno: code), received)
    }
}
