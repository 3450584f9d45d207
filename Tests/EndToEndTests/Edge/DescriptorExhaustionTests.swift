import Foundation
import Glibc
import Testing

extension EndToEnd {
    /// Running out of file descriptors is survived: no crash, no spin, recovery once they free up.
    @Suite struct DescriptorExhaustion {
        /// Opens 40 echo clients through `proxy` (run with `descriptorLimit: 40`), one at a time,
        /// and returns those that were served: the proxy has no descriptor left after them.
        private func holdClientsUntilDescriptorsRunOut(_ proxy: SwitchyardProcess) -> [TCPConnection] {
            var held: [TCPConnection] = []
            for index in 0..<40 {
                guard let connection = try? TCPConnection(to: proxy.listen, timeout: 1) else { continue }
                if (try? connection.roundTrip(Array("client \(index)".utf8), timeout: 0.3)) != nil {
                    held.append(connection)
                } else {
                    connection.close()
                }
            }
            return held
        }

        @Test(arguments: [RelayMode.copy, .splice])
        func runningOutOfDescriptorsNeitherSpinsNorBreaksOpenConnectionsAndRecovers(relay: RelayMode) throws {
            let backend = try TestBackend(.echo)
            // 40 descriptors: after the process's own (stdio, ring, eventfd, listener, buffers),
            // room for only a dozen or so connections of 2 descriptors each.
            let proxy = try SwitchyardProcess(
                relay: relay,
                options: ["--max-connections", "500", "--no-health-check", "--no-admin-socket"],
                backends: [backend.endpoint.description],
                descriptorLimit: 40)
            try #require(eventually(timeout: 2) { backend.openConnectionCount == 0 })

            // Open far more clients than descriptors allow, one at a time, keeping those that work.
            var working: [TCPConnection] = []
            var turnedAway = 0
            for index in 0..<40 {
                guard let connection = try? TCPConnection(to: proxy.listen, timeout: 2) else {
                    turnedAway += 1
                    continue
                }
                if (try? connection.roundTrip(Array("client \(index)".utf8), timeout: 0.5)) != nil {
                    working.append(connection)
                } else {
                    turnedAway += 1
                    connection.close()
                }
            }
            #expect(working.count >= 5, "only \(working.count) clients were served before descriptors ran out")
            #expect(turnedAway > 0, "the descriptor limit was never reached")

            // Exhausted: the process must stay up and idle, not retry accept in a loop.
            let before = try #require(proxy.cpuSeconds())
            usleep(1_000_000)
            let after = try #require(proxy.cpuSeconds())
            #expect(proxy.isRunning)
            #expect(after - before < 0.3, "the proxy used \(after - before) CPU-s in 1 s while out of descriptors")

            // Connections admitted before the limit still work.
            for (index, connection) in working.enumerated() {
                #expect((try? connection.roundTrip(Array("still here \(index)".utf8))) != nil, "client \(index) broke")
            }

            // Free the descriptors: new clients are served again.
            for connection in working { connection.close() }
            var recovered = false
            let deadline = Date().addingTimeInterval(5)
            while !recovered && Date() < deadline {
                if let connection = try? TCPConnection(to: proxy.listen, timeout: 1) {
                    recovered = (try? connection.roundTrip(Array("after recovery".utf8), timeout: 1)) != nil
                    connection.close()
                }
                if !recovered { usleep(100_000) }
            }
            #expect(recovered, "no client was served within 5 s after descriptors were freed")
        }
    
        /// A health probe that cannot get a socket says nothing about its backend: the round is
        /// skipped with one warning, and no backend goes down (before, every one did).
        @Test func healthChecksSkipTheirRoundWhileOutOfDescriptorsAndNoBackendGoesDown() throws {
            let backends = try [TestBackend(.echo), TestBackend(.echo)]
            // `fall 1`: a single probe recorded as failed would take its backend down, and
            // `rise 100` would keep it down for the rest of the test. `--accept-proxy`: a client
            // that sends nothing holds one descriptor (no backend socket yet) for 3 s, so silent
            // clients take every descriptor there is, whatever the process holds of its own.
            let proxy = try SwitchyardProcess(
                relay: .copy,
                options: ["--max-connections", "500", "--no-admin-socket", "--accept-proxy", "--health-interval", "50ms",
                          "--health-timeout", "1s", "--rise", "100", "--fall", "1"],
                backends: backends.map(\.endpoint.description),
                descriptorLimit: 40)
            let warning = "health checks skipped"

            // More silent clients than descriptors: those not accepted wait in the backlog.
            let silent = (0..<60).compactMap { _ in try? TCPConnection(to: proxy.listen, timeout: 2) }
            #expect(silent.count == 60)
            // Out of descriptors for long enough that probes were due many times over.
            // (Silent clients are closed after 3 s; those in the backlog take their place.)
            let warned = eventually(timeout: 5) { proxy.standardError.contains(warning) }
            usleep(500_000)
            let log = proxy.standardError
            for connection in silent { connection.close() }

            #expect(warned, "no probe ran out of descriptors; stderr:\n\(log)")
            #expect(log.components(separatedBy: warning).count - 1 == 1, "not one warning; stderr:\n\(log)")
            #expect(!log.contains(" is down"), "a backend went down; stderr:\n\(log)")
            // A client is served once descriptors are free again (with every backend down it
            // would be closed).
            let served = eventually(timeout: 5) {
                guard let client = try? TCPConnection(to: proxy.listen, timeout: 1) else { return false }
                defer { client.close() }
                guard (try? client.send("PROXY TCP4 127.0.0.9 127.0.0.1 4000 80\r\n")) != nil else { return false }
                return (try? client.roundTrip(Array("after".utf8), timeout: 1)) != nil
            }
            #expect(served, "no client was served within 5 s after descriptors were freed")
            #expect(!proxy.standardError.contains(" is down"), "stderr:\n\(proxy.standardError)")
        }

        /// A client waiting on the admin socket while accept(2) fails with EMFILE: the admin
        /// thread pauses and retries as the workers do (one warning a second), rather than
        /// polling a socket that stays readable; the client is answered once descriptors free up.
        @Test func theAdminThreadBacksOffWhileOutOfDescriptors() throws {
            let backend = try TestBackend(.echo)
            let proxy = try SwitchyardProcess(
                relay: .copy, options: ["--max-connections", "500", "--no-health-check"],
                backends: [backend.endpoint.description], descriptorLimit: 40)
            let path = try #require(proxy.adminSocketPath)
            let held = holdClientsUntilDescriptorsRunOut(proxy)
            // The admin connection completes in the backlog; accepting it needs a descriptor.
            let waiting = try AdminConnection(path: path, timeout: 10)
            try waiting.send(line: "show stats json")
            usleep(200_000)
            let before = try #require(proxy.cpuSeconds())
            usleep(1_000_000)
            let after = try #require(proxy.cpuSeconds())
            #expect(proxy.isRunning)
            #expect(after - before < 0.3, "the proxy used \(after - before) CPU-s in 1 s while a client waited on the admin socket")
            let warnings = proxy.standardError.components(separatedBy: "admin accept:").count - 1
            #expect(warnings >= 1 && warnings <= 5, "\(warnings) admin accept warnings; stderr:\n\(proxy.standardError)")

            for connection in held { connection.close() }
            let reply = try waiting.readReply(timeout: 5)
            #expect(try reply.jsonObject()["pid"] as? Int == Int(proxy.pid))
        }

        @Test func sigtermWhileOutOfDescriptorsStillExitsZero() throws {
            let backend = try TestBackend(.echo)
            let proxy = try SwitchyardProcess(
                relay: .copy,
                options: ["--max-connections", "500", "--no-health-check", "--no-admin-socket", "--shutdown-grace", "1s"],
                backends: [backend.endpoint.description],
                descriptorLimit: 40)
            let held = holdClientsUntilDescriptorsRunOut(proxy)
            // Accepting may be paused (backing off after EMFILE) with no accept armed: the
            // listener must still be closed and the process must still exit.
            proxy.terminate()
            let status = proxy.waitForExit(timeout: 30)
            #expect(status == 0, "exit status \(String(describing: status)); stderr:\n\(proxy.standardError)")
            for connection in held { connection.close() }
        }
    }
}
