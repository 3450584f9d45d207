import Foundation
import Testing

extension EndToEnd {
    /// SIGTERM stops accepting, lets open connections finish within --shutdown-grace, then exits 0.
    @Suite struct GracefulShutdown {
        @Test(arguments: RelayMode.allCases)
        func sigtermStopsAcceptingButOpenConnectionWorksUntilClientClosesThenExitsZero(relay: RelayMode) throws {
            let backend = try TestBackend(.echo)
            let proxy = try SwitchyardProcess(
                relay: relay, options: ["--shutdown-grace", "10s"], backends: [backend.endpoint.description])
            let client = try TCPConnection(to: proxy.listen)
            try client.roundTrip(Array("before SIGTERM".utf8))

            proxy.terminate()

            let refused = eventually(timeout: 2, interval: 0.05) { proxy.listen.refusesConnections() }
            #expect(refused, "new connections were not refused within 2 s of SIGTERM")
            #expect(throws: Never.self, "open connection during the grace period") {
                try client.roundTrip(Array("during grace".utf8))
            }
            #expect(proxy.isRunning, "exited while a connection was still open; stderr:\n\(proxy.standardError)")

            client.close()
            let status = proxy.waitForExit(timeout: 30)
            #expect(status == 0, "exit status \(status.map(String.init) ?? "none, still running"); stderr:\n\(proxy.standardError)")
        }

        @Test(arguments: RelayMode.allCases)
        func connectionStillOpenWhenShutdownGraceEndsIsClosedAndProcessExitsZero(relay: RelayMode) throws {
            let backend = try TestBackend(.silent)
            let proxy = try SwitchyardProcess(
                relay: relay, options: ["--shutdown-grace", "1s"], backends: [backend.endpoint.description])
            let acceptedBefore = backend.acceptedCount
            let client = try TCPConnection(to: proxy.listen)
            try client.send("never answered")
            try #require(eventually(timeout: 2) { backend.acceptedCount > acceptedBefore })

            let signalled = Date()
            proxy.terminate()
            let outcome = client.readToEnd(timeout: 4 * EndToEnd.sanitizerSlowdown)
            let status = proxy.waitForExit(timeout: max(0.1, 4 * EndToEnd.sanitizerSlowdown - Date().timeIntervalSince(signalled)))
            let exitedAfter = Date().timeIntervalSince(signalled)

            #expect(outcome.end.isClosed, "connection was not closed by the proxy: \(outcome.end)")
            #expect(outcome.elapsed >= 0.8, "connection closed after \(outcome.elapsed) s, before the 1 s grace")
            #expect(status == 0, "exit status \(status.map(String.init) ?? "none, still running"); stderr:\n\(proxy.standardError)")
            #expect(exitedAfter < 3.5 * EndToEnd.sanitizerSlowdown, "exited \(exitedAfter) s after SIGTERM")
        }
    }
}
