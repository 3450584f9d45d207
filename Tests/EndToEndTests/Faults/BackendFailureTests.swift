import Foundation
import Testing

extension EndToEnd {
    /// Backends that reset, refuse or vanish: clients are closed promptly, never left hanging,
    /// and the proxy keeps serving.
    @Suite struct BackendFailures {
        @Test(arguments: RelayMode.allCases)
        func backendResetClosesClientPromptlyAndProxyServesNextClient(relay: RelayMode) throws {
            let resetting = try TestBackend(.reset)
            // Health checks off: a check may catch the reset and rightly mark the backend down,
            // and this test is about how the relay handles a reset mid-connection.
            let proxy = try SwitchyardProcess(
                relay: relay, options: ["--no-health-check"], backends: [resetting.endpoint.description])
            let acceptedBefore = resetting.acceptedCount

            let client = try TCPConnection(to: proxy.listen)
            try? client.send("hello")  // May already fail with EPIPE or ECONNRESET; the read decides.
            let outcome = client.readToEnd(timeout: 2)

            #expect(outcome.end.isClosed, "client connection was not closed: \(outcome.end)")
            #expect(outcome.checksum.byteCount == 0)
            #expect(resetting.acceptedCount > acceptedBefore, "the connection never reached the backend")
            #expect(proxy.isRunning, "stderr:\n\(proxy.standardError)")

            // The same address now answers properly: the next client must be served.
            let address = resetting.endpoint
            resetting.stop()
            let echo = try TestBackend(.echo, at: address)
            let served = eventually(timeout: 5, interval: 0.1) {
                guard let next = try? TCPConnection(to: proxy.listen, timeout: 1) else { return false }
                return (try? next.roundTrip(Array("after reset".utf8), timeout: 1)) != nil
            }
            #expect(served, "no client was served after the reset; stderr:\n\(proxy.standardError)")
            #expect(echo.acceptedCount > 0)
        }

        @Test(arguments: RelayMode.allCases)
        func deadBackendListedFirstIsSkippedSoEveryClientReachesTheLiveOne(relay: RelayMode) throws {
            let dead = try Sockets.freeEndpoint()
            let live = try TestBackend(.identify(name: "live"))
            let proxy = try SwitchyardProcess(
                relay: relay,
                options: ["--balance", "round-robin", "--connect-timeout", "1s"],
                backends: [dead.description, live.endpoint.description])
            // The readiness probe may reach the live backend too, so count from here on with >=.
            let acceptedBefore = live.acceptedCount

            for client in 0..<20 {
                let connection = try TCPConnection(to: proxy.listen, timeout: 3)
                let banner = try connection.receive(exactly: 5, timeout: 3)
                #expect(String(decoding: banner, as: UTF8.self) == "live\n", "client \(client)")
                try connection.roundTrip(Array("client \(client)".utf8), timeout: 3)
            }
            #expect(live.acceptedCount - acceptedBefore >= 20)
        }

        @Test(arguments: RelayMode.allCases)
        func backendThatNeverAnswersIsAbandonedAtTheConnectTimeoutForTheNextOne(relay: RelayMode) throws {
            // A listener whose accept queue is full drops every new SYN, so a connect to it hangs
            // until someone gives up: here the proxy's --connect-timeout must.
            let silent = try Sockets.makeListener(host: Sockets.ipv4Loopback, backlog: 0)
            defer { close(silent.fd) }
            let silentEndpoint = TCPEndpoint(host: Sockets.ipv4Loopback, port: silent.port)
            var fillers: [TCPConnection] = []
            for _ in 0..<3 {
                guard let filler = try? TCPConnection(to: silentEndpoint, timeout: 0.5) else { break }
                fillers.append(filler)
            }
            #expect((try? TCPConnection(to: silentEndpoint, timeout: 0.5)) == nil,
                    "the silent listener still completes handshakes; the test cannot show a timeout")
            let live = try TestBackend(.identify(name: "live"))
            let proxy = try SwitchyardProcess(
                relay: relay,
                options: ["--balance", "round-robin", "--connect-timeout", "300ms", "--no-health-check"],
                backends: [silentEndpoint.description, live.endpoint.description])

            // Round robin sends every other client to the silent backend first; each must still
            // reach the live one once the connect there times out.
            for client in 0..<4 {
                let connection = try TCPConnection(to: proxy.listen, timeout: 5)
                let banner = try connection.receive(exactly: 5, timeout: 5)
                #expect(String(decoding: banner, as: UTF8.self) == "live\n", "client \(client)")
                try connection.roundTrip(Array("client \(client)".utf8), timeout: 5)
            }
            #expect(proxy.standardError.contains("connect timed out after 300ms"), "stderr:\n\(proxy.standardError)")
            #expect(proxy.isRunning)
            for filler in fillers { filler.close() }
        }

        @Test(arguments: RelayMode.allCases)
        func allBackendsDownClosesClientPromptlyAndServesOnceBackendAppears(relay: RelayMode) throws {
            let dead = try Sockets.freeEndpoint()
            let proxy = try SwitchyardProcess(
                relay: relay, options: ["--connect-timeout", "1s"], backends: [dead.description])

            let client = try TCPConnection(to: proxy.listen)
            let outcome = client.readToEnd(timeout: 2)
            #expect(outcome.end.isClosed, "client connection was not closed: \(outcome.end)")
            #expect(proxy.isRunning, "stderr:\n\(proxy.standardError)")

            let backend = try TestBackend(.echo, at: dead)
            let served = eventually(timeout: 10, interval: 0.2) {
                guard let next = try? TCPConnection(to: proxy.listen, timeout: 1) else { return false }
                return (try? next.roundTrip(Array("backend is back".utf8), timeout: 1)) != nil
            }
            #expect(served, "no client was served after the backend came up; stderr:\n\(proxy.standardError)")
            #expect(backend.acceptedCount > 0)
        }
    }
}
