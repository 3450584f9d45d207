import Foundation
import Glibc
import Synchronization
import Testing

extension EndToEnd {
    /// `source` / `--source` (issue 13): backend connections are made from the given local
    /// addresses in rotation, and running out of ephemeral ports is a counted error that tries
    /// another backend, never a spin.
    @Suite struct SourceAddresses {
        @Test func backendConnectionsComeFromEverySourceAddressInTurn() throws {
            let backend = try PeerReportingBackend()
            // One worker: its rotation alone decides, so 10 clients split exactly 5 and 5.
            let proxy = try AdminProxy(workers: 1, options: ["--source", "127.0.0.2,127.0.0.3"], backends: [backend.endpoint.description])
            var peers: [String: Int] = [:]
            for client in 0..<10 {
                let (connection, peer) = try IdentifiedClients.connect(to: proxy.listen)
                defer { connection.close() }
                try connection.verifyEchoStream(seed: 0x50_0CE + UInt64(client), count: 64 << 10, timeout: 10)
                peers[peer, default: 0] += 1
            }
            #expect(peers == ["127.0.0.2": 5, "127.0.0.3": 5], "\(peers)")
        }

        @Test func healthChecksLeaveFromTheSourceAddressesToo() throws {
            let backend = try PeerReportingBackend()
            let proxy = try AdminProxy(workers: 1, healthChecks: true,
                                       options: ["--source", "127.0.0.5", "--health-interval", "50ms", "--rise", "1"],
                                       backends: [backend.endpoint.description])
            #expect(eventually(timeout: 5, interval: 0.05) { backend.acceptedPeers.count >= 6 }, "\(backend.acceptedPeers)")
            let (connection, peer) = try IdentifiedClients.connect(to: proxy.listen)
            connection.close()
            #expect(peer == "127.0.0.5")
            #expect(Set(backend.acceptedPeers) == ["127.0.0.5"], "\(backend.acceptedPeers)")
            #expect(try proxy.admin.backends()[backend.endpoint.description]?["health"] as? String == "up")
        }

        @Test func aSourceListInTheFileIsUsedAndAnIPv6BackendWithOnlyIPv4SourcesIsRefused() throws {
            let backend = try PeerReportingBackend()
            let listen = try Sockets.freeEndpoint()
            let proxy = try ConfiguredProxy(yaml: """
                services:
                  main:
                    listen: ["\(listen)"]
                    health: off
                    source: [127.0.0.4]
                    backends: ["\(backend.endpoint)"]

                """, listen: [listen])
            for _ in 0..<3 {
                let (connection, peer) = try IdentifiedClients.connect(to: listen)
                connection.close()
                #expect(peer == "127.0.0.4")
            }

            let folder = try ConfiguredProxy.makeFolder()
            defer { try? FileManager.default.removeItem(atPath: folder) }
            let path = folder + "/bad.yaml"
            try ConfiguredProxy.write("services:\n  main:\n    listen: [\"127.0.0.1:1\"]\n    source: 127.0.0.4\n    backends: [\"[::1]:5432\"]\n", to: path)
            let check = try SwitchyardProcess(arguments: ["check-config", path])
            #expect(check.waitForExit(timeout: 30) == 1)
            #expect(check.standardError.contains("bad.yaml:5:16: backend [::1]:5432 is IPv6 but source lists only IPv4 addresses (127.0.0.4)"),
                    "\(check.standardError)")
            _ = proxy
        }

        /// The proxy runs in a namespace of its own whose ephemeral range is shrunk to 4 ports
        /// (`net.ipv4.ip_local_port_range`), so from one source address it can hold at most 4
        /// connections to each backend.
        @Test(.enabled(if: NetworkLab.isAvailable, "network namespaces cannot be created here"))
        func exhaustedEphemeralPortsAreACountedErrorThatTriesAnotherBackendAndNeverSpins() throws {
            let lab = try NetworkLab()
            let namespace = try lab.namespace("ports")
            // Fixed ports outside the range-to-be, so that nothing but backend connects uses it.
            let backends = try namespace.run {
                [try TestBackend(.identify(name: "b1"), host: "127.0.0.1", port: 41_000),
                 try TestBackend(.identify(name: "b2"), host: "127.0.0.1", port: 41_001)]
            }
            let listen = TCPEndpoint(host: "127.0.0.1", port: 41_002)
            let admin = AdminSocket(path: SwitchyardProcess.temporaryAdminSocketPath())
            defer { unlink(admin.path) }
            let proxy = try namespace.run {
                let process = try SwitchyardProcess(arguments: [
                    "serve", "--listen", listen.description, "--workers", "1", "--no-health-check", "--balance", "round-robin",
                    "--source", "127.0.0.2", "--admin-socket", admin.path, backends[0].endpoint.description, backends[1].endpoint.description,
                ], listenEndpoints: [listen])
                try process.waitUntilReady(timeout: 10)
                return process
            }
            defer { proxy.kill() }
            let slow = EndToEnd.sanitizerSlowdown
            func stats() -> [String: Any]? { try? admin.send("show stats json").jsonObject() }
            func exhausted() -> Int? { stats()?["source_port_exhausted"] as? Int }

            // The readiness probe went through the proxy to b1. Its session must be over before
            // the range shrinks: a slow proxy (a sanitizer's) would otherwise connect it after,
            // from one of the 4 ports, and leave that port in TIME_WAIT, so that b1 could take
            // only 3 of the clients below and one of them was closed ("EOF after 0 of 1 bytes",
            // under ThreadSanitizer and once under AddressSanitizer).
            let probeEnded = eventually(timeout: 5 * slow, interval: 0.05) {
                guard let figures = stats() else { return false }
                return (figures["total_connections"] as? Int ?? 0) >= 1 && figures["open_connections"] as? Int == 0
            }
            try #require(probeEnded, "the readiness probe's session did not end: \(String(describing: stats()))")
            // sysctl net.ipv4.ip_local_port_range, written from a thread inside the namespace
            // (/proc/sys/net shows the writer's namespace), so no other one is touched. The 4
            // ports lie above the namespace's range so far, so the probe's port is not one of them.
            let path = "/proc/sys/net/ipv4/ip_local_port_range"
            let (previous, range) = try namespace.run { () throws -> (String, String) in
                let previous = try String(contentsOfFile: path, encoding: .utf8)
                try "61000 61003\n".write(toFile: path, atomically: false, encoding: .utf8)
                return (previous, try String(contentsOfFile: path, encoding: .utf8))
            }
            try #require(range.split(whereSeparator: \.isWhitespace) == ["61000", "61003"], "range is \(range)")
            let previousHigh = previous.split(whereSeparator: \.isWhitespace).last.flatMap { Int($0) }
            try #require(previousHigh.map { $0 < 61_000 } == true, "the namespace's range was \(previous)")
            let outside = try String(contentsOfFile: path, encoding: .utf8)
            try #require(!outside.hasPrefix("61000"), "the test's own namespace got the tiny range: \(outside)")

            // 8 clients fit, 4 ports towards each backend. One worker and round-robin: the picks
            // alternate, so each backend takes 4 and no connect finds its ports used up.
            var clients: [TCPConnection] = []
            var reached: [String: Int] = [:]
            for index in 0..<8 {
                let client = try namespace.run { try TCPConnection(to: listen, timeout: 3 * slow, localPort: 50_000 + UInt16(index)) }
                reached[try client.receiveLine(timeout: 3 * slow), default: 0] += 1
                clients.append(client)
            }
            #expect(reached == ["b1": 4, "b2": 4], "\(reached); stderr:\n\(proxy.standardError)")
            #expect(exhausted() == 0, "a connect of the first 8 found no free port; stderr:\n\(proxy.standardError)")

            // The 9th finds both backends full: it is closed, and both attempts are counted (on
            // the worker's next tick, so however late it comes the count ends at 2, not more).
            let ninth = try namespace.run { try TCPConnection(to: listen, timeout: 3 * slow, localPort: 50_100) }
            let ninthOutcome = ninth.readToEnd(timeout: 3 * slow)
            #expect(ninthOutcome.end.isClosed && ninthOutcome.checksum.byteCount == 0,
                    "the 9th client was not closed: \(ninthOutcome.end), \(ninthOutcome.checksum.byteCount) bytes")
            let counted = eventually(timeout: 3 * slow, interval: 0.05) { exhausted() == 2 }
            #expect(counted, "source_port_exhausted is \(String(describing: exhausted())), not 2")

            // No spin: over one second the proxy uses almost no CPU.
            let startCPU = try #require(ProcessCPU.seconds(of: proxy.pid))
            usleep(1_000_000)
            let usedCPU = try #require(ProcessCPU.seconds(of: proxy.pid)) - startCPU
            #expect(usedCPU < 0.2, "the proxy used \(usedCPU) s of CPU in 1 s after the exhaustion")
            #expect(exhausted() == 2, "the 9th client's connects were retried: source_port_exhausted is \(String(describing: exhausted()))")

            // The open connections are untouched: every byte still crosses both ways.
            for (index, client) in clients.enumerated() {
                try client.verifyEchoStream(seed: 0xE0_0000 + UInt64(index), count: 256 << 10, timeout: 10 * slow)
            }
            #expect(proxy.standardError.contains("no free local port to connect to backend"), "stderr:\n\(proxy.standardError)")
            #expect(!proxy.standardError.contains("is down"), "a local port shortage was held against a backend:\n\(proxy.standardError)")
            for client in clients { client.close() }
            _ = backends
        }
    }
}

/// A backend that writes the client's address as it sees it (the proxy's source address) and
/// a newline on accept, then echoes; so `IdentifiedClients.connect` reads the peer address.
final class PeerReportingBackend: Sendable {
    let endpoint: TCPEndpoint
    private let listenerFD: Int32
    private let peers = PeerList()

    /// The peer address of every connection accepted so far, health checks included.
    var acceptedPeers: [String] { peers.all }

    private final class PeerList: Sendable {
        private let list = Mutex<[String]>([])
        func add(_ peer: String) { list.withLock { $0.append(peer) } }
        var all: [String] { list.withLock { $0 } }
    }

    init(host: String = Sockets.ipv4Loopback) throws {
        let (fd, port) = try Sockets.makeListener(host: host)
        listenerFD = fd
        endpoint = TCPEndpoint(host: host, port: port)
        // Ends when deinit shuts the listener down (accept then fails); the thread closes it.
        let thread = Thread { [fd, peers] in
            defer { close(fd) }
            while true {
                var storage = sockaddr_in()
                var length = socklen_t(MemoryLayout<sockaddr_in>.size)
                let client = withUnsafeMutablePointer(to: &storage) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { accept(fd, $0, &length) }
                }
                if client < 0 {
                    if errno == EINTR || errno == ECONNABORTED { continue }
                    return
                }
                var text = [CChar](repeating: 0, count: Int(INET_ADDRSTRLEN))
                inet_ntop(AF_INET, &storage.sin_addr, &text, socklen_t(text.count))
                peers.add(String(cString: text))
                let line = String(cString: text) + "\n"
                let worker = Thread {
                    defer { close(client) }
                    _ = try? Sockets.setOption(client, SOL_SOCKET, SO_RCVTIMEO, Sockets.timeval(seconds: 10))
                    guard (try? Array(line.utf8).withUnsafeBytes({ try Sockets.sendAll(client, $0) })) != nil else { return }
                    var buffer = [UInt8](repeating: 0, count: 1 << 16)
                    while true {
                        let n = buffer.withUnsafeMutableBytes { recv(client, $0.baseAddress, $0.count, 0) }
                        if n <= 0 {
                            shutdown(client, Int32(SHUT_WR))
                            return
                        }
                        guard (try? buffer.withUnsafeBytes({ try Sockets.sendAll(client, UnsafeRawBufferPointer(rebasing: $0[0..<n])) })) != nil else { return }
                    }
                }
                worker.stackSize = 1 << 20
                worker.start()
            }
        }
        thread.stackSize = 1 << 20
        thread.start()
    }

    deinit {
        shutdown(listenerFD, Int32(SHUT_RDWR))
    }
}

