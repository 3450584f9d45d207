import Foundation
import Glibc
import Testing

extension EndToEnd {
    /// Issue 27: slow, silent and hostile clients hurt nobody else, and a cut is never a clean end.
    /// One worker and a small provided-buffer pool, so that a client holding buffers it should
    /// not would starve everyone at once.
    @Suite(.timeLimit(.minutes(3))) struct HostileClients {
        /// A ClientHello record header announcing a 4 KiB hello, then the start of the hello: the
        /// reader waits for the rest, which a trickler sends a byte at a time.
        static let helloStart: [UInt8] = [0x16, 0x03, 0x01, 0x10, 0x00, 0x01, 0x00, 0x0f, 0xfc, 0x03, 0x03]

        @Test func tricklingClientHellosLeaveOtherListenersRelaying() throws {
            let echo = try TestBackend(.echo), tls = try TestBackend(.echo)
            let edge = try Sockets.freeEndpoint(), plain = try Sockets.freeEndpoint()
            let proxy = try ConfiguredProxy(yaml: """
                workers: 1
                relay: copy
                buffers: 64
                defaults: {health: off}
                services:
                  tls-edge:
                    listen: ["\(edge)"]
                    sni-timeout: 30s
                    route-by-sni: {default: tls}
                  tls: {backends: ["\(tls.endpoint)"]}
                  plain:
                    listen: ["\(plain)"]
                    backends: ["\(echo.endpoint)"]
                """, listen: [edge, plain])

            // Ten clients send a ClientHello one byte every 10 ms: 150 receives each, far more
            // than the 64 buffers, all within the 30 s sni-timeout.
            let tricklers = (0..<10).map { _ in
                BackgroundTask {
                    let client = try TCPConnection(to: edge, timeout: 10)
                    try Sockets.setOption(client.fd, Int32(IPPROTO_TCP), TCP_NODELAY, Int32(1))  // a segment per byte
                    try client.send(Self.helloStart)
                    for _ in 0..<150 {
                        try client.send([0])
                        usleep(10_000)
                    }
                }
            }
            usleep(300_000)
            for round in 0..<3 {
                let client = try TCPConnection(to: plain, timeout: 10)
                try client.verifyEchoStream(seed: 0x7121_c000 + UInt64(round), count: 256 << 10, timeout: 10)
            }
            for trickler in tricklers { #expect(trickler.join(timeout: 20) == nil) }
            _ = proxy
        }

        @Test func clientsThatStopReadingLeaveOthersRelaying() throws {
            let downloads = try TestBackend(.sendThenClose(byteCount: 64 << 20, seed: 0xd0)), echo = try TestBackend(.echo)
            let big = try Sockets.freeEndpoint(), plain = try Sockets.freeEndpoint(), metrics = try Sockets.freeEndpoint()
            let proxy = try ConfiguredProxy(yaml: """
                metrics: \(metrics)
                workers: 1
                relay: copy
                buffers: 64
                defaults: {health: off}
                services:
                  downloads:
                    listen: ["\(big)"]
                    backends: ["\(downloads.endpoint)"]
                  echo:
                    listen: ["\(plain)"]
                    backends: ["\(echo.endpoint)"]
                """, listen: [big, plain])

            // 40 downloads that never read, and 20 clients that send 1 MiB through the echo
            // and never read it back: every direction stalls on a full socket.
            var idle: [TCPConnection] = []
            for _ in 0..<40 { idle.append(try TCPConnection(to: big, timeout: 10)) }
            let senders = (0..<20).map { index in
                BackgroundTask {
                    let client = try TCPConnection(to: plain, timeout: 3)
                    // The send stops once every buffer on the way is full; that is the point.
                    _ = try? client.sendGenerated(seed: UInt64(index), count: 1 << 20)
                    usleep(3_000_000)
                    client.close()
                }
            }
            usleep(1_500_000)
            for round in 0..<3 {
                let client = try TCPConnection(to: plain, timeout: 10)
                try client.verifyEchoStream(seed: 0x5707_0000 + UInt64(round), count: 256 << 10, timeout: 10)
            }
            for sender in senders { #expect(sender.join(timeout: 10) == nil) }
            // The stalled downloads still get their bytes, in order, once they read.
            let first = idle.removeFirst()
            let received = first.readToEnd(timeout: 30)
            #expect(received.end == .endOfFile && received.checksum == DeterministicBytes.checksum(seed: 0xd0, count: 64 << 20),
                    "a parked download ended \(received.end) after \(received.checksum.byteCount) bytes")
            let exposition = try httpGet(metrics, "/metrics")
            let parked = exposition.split(separator: "\n").filter { $0.hasPrefix("switchyard_parked_directions_total{") }
                .compactMap { Double($0.split(separator: " ").last ?? "") }.reduce(0, +)
            #expect(parked > 0, "no direction was parked")
            idle.removeAll()
            _ = proxy
        }

        /// `parked-memory` bounds what one worker parks: twenty stalled downloads would park
        /// about 6 MiB (five 64 KiB buffers each); with a 1 MiB ceiling the gauge never passes it,
        /// the rest keep their buffers, and every download still arrives whole once they read.
        /// They read together: past the ceiling a stalled direction keeps its buffers, so one
        /// reader alone may wait for buffers the others hold (README, "The edge"); an ASan run
        /// that read them one by one saw exactly that.
        @Test func parkingStopsAtTheWorkersCeilingAndEveryDownloadStillArrives() throws {
            let size = 16 << 20
            let downloads = try TestBackend(.sendThenClose(byteCount: size, seed: 0xce11))
            let big = try Sockets.freeEndpoint(), metrics = try Sockets.freeEndpoint()
            let proxy = try ConfiguredProxy(yaml: """
                metrics: \(metrics)
                workers: 1
                relay: copy
                buffers: 64
                parked-memory: 1
                defaults: {health: off}
                services:
                  downloads:
                    listen: ["\(big)"]
                    backends: ["\(downloads.endpoint)"]
                """, listen: [big])
            func figure(_ name: String) throws -> Double {
                try httpGet(metrics, "/metrics").split(separator: "\n").filter { $0.hasPrefix(name + " ") || $0.hasPrefix(name + "{") }
                    .compactMap { Double($0.split(separator: " ").last ?? "") }.reduce(0, +)
            }
            var idle: [TCPConnection] = []
            for _ in 0..<20 { idle.append(try TCPConnection(to: big, timeout: 10)) }
            #expect(eventually(timeout: 10, interval: 0.1) { ((try? figure("switchyard_parked_directions_total")) ?? 0) > 0 },
                    "no direction was parked")
            var highest = 0.0
            for _ in 0..<10 {
                highest = max(highest, try figure("switchyard_parked_bytes"))
                usleep(200_000)
            }
            #expect(highest > 0 && highest <= Double(1 << 20), "parked \(highest) bytes against a 1 MiB ceiling")
            let readers = idle.enumerated().map { index, client in
                BackgroundTask {
                    let received = client.readToEnd(timeout: 60)
                    guard received.end == .endOfFile, received.checksum == DeterministicBytes.checksum(seed: 0xce11, count: size) else {
                        throw HarnessError("download \(index) ended \(received.end) after \(received.checksum.byteCount) bytes")
                    }
                }
            }
            for reader in readers { #expect(reader.join(timeout: 90) == nil) }
            idle.removeAll()
            #expect(eventually(timeout: 5, interval: 0.1) { (try? figure("switchyard_parked_bytes")) == 0 },
                    "parked bytes were not given back after every download ended")
            _ = proxy
        }

        /// A backend that closes a client who said nothing (an authentication or header timeout)
        /// has answered: the client sees that clean end, and the backend stays up.
        @Test(arguments: RelayMode.allCases)
        func aBackendClosingSilentClientsIsNeitherAFailureNorRedispatched(relay: RelayMode) throws {
            let first = try TestBackend(.closeWhenSilent(seconds: 0.5)), second = try TestBackend(.closeWhenSilent(seconds: 0.5))
            let proxy = try AdminProxy(relay: relay, healthChecks: true, options: ["--health-interval", "5s"],
                                       backends: [first.endpoint.description, second.endpoint.description])
            #expect(eventually(timeout: 5) {
                let rows = (try? proxy.admin.backends()) ?? [:]
                return rows.values.filter { $0["health"] as? String == "up" }.count == 2
            })
            let acceptedBefore = first.acceptedCount + second.acceptedCount
            let clients = try (0..<20).map { _ in try TCPConnection(to: proxy.listen, timeout: 10) }
            for client in clients {
                let outcome = client.readToEnd(timeout: 5)
                #expect(outcome.end == .endOfFile && outcome.checksum.byteCount == 0, "a silent client got \(outcome.end)")
            }
            let rows = try proxy.admin.backends()
            #expect(rows.count == 2 && rows.values.allSatisfy { $0["health"] as? String == "up" }, "\(rows)")
            // Health probes (every 5 s) may add one connection per backend.
            let reached = first.acceptedCount + second.acceptedCount - acceptedBefore
            #expect(reached >= 20 && reached <= 22, "20 silent clients made \(reached) backend connections: some were sent on")
        }

        /// `--idle-timeout` cutting a download whose reader paused: the client must see a reset,
        /// never an end that looks like the whole stream.
        @Test(arguments: RelayMode.allCases)
        func idleTimeoutCutsAPausedDownloadWithAReset(relay: RelayMode) throws {
            let size = 32 << 20
            let backend = try TestBackend(.sendThenClose(byteCount: size, seed: 0x1d7e))
            let proxy = try SwitchyardProcess(relay: relay, options: ["--no-health-check", "--idle-timeout", "1s"],
                                              backends: [backend.endpoint.description])
            let client = try TCPConnection(to: proxy.listen, timeout: 10)
            _ = try client.receive(exactly: 1 << 20)
            usleep(3_500_000)
            let rest = client.readToEnd(timeout: 20)
            #expect(rest.checksum.byteCount + (1 << 20) < size, "the whole download arrived despite the idle timeout")
            #expect(rest.end == .reset, "a download cut by the idle timeout ended with \(rest.end)")
        }
    }
}
