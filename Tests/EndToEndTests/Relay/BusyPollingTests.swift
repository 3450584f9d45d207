import Foundation
import Testing

extension EndToEnd {
    /// README, `busy-polling`: a worker spins briefly on its completion queue before it sleeps,
    /// only while traffic flows. Bytes arrive intact, and a worker left without traffic stops
    /// spinning.
    @Suite struct BusyPolling {
        @Test(arguments: [RelayMode.copy, .auto])
        func smallExchangesArriveIntactAndAnIdleWorkerStopsSpinning(relay: RelayMode) throws {
            let backend = try TestBackend(.echo)
            let proxy = try SwitchyardProcess(
                relay: relay, workers: 1, options: ["--busy-polling", "--no-health-check"],
                backends: [backend.endpoint.description])
            try exchangeSmallMessages(through: proxy.listen)
            #expect(proxy.isRunning, "stderr:\n\(proxy.standardError)")

            // The window closes after long waits (the 1 s tick), so idle costs next to nothing; a
            // worker that kept spinning would use about a whole core over these 2 s.
            Thread.sleep(forTimeInterval: 1)
            let before = try #require(proxy.cpuSeconds())
            Thread.sleep(forTimeInterval: 2)
            let after = try #require(proxy.cpuSeconds())
            #expect(after - before < 0.4, "an idle worker used \(after - before) CPU-s in 2 s: it is still spinning")
        }

        @Test func theFileKeyTurnsItOnAndRelaysIntact() throws {
            let backend = try TestBackend(.echo)
            let listen = try Sockets.freeEndpoint()
            let proxy = try ConfiguredProxy(yaml: """
                busy-polling: true
                workers: 1
                defaults:
                  health: off
                services:
                  echo:
                    listen: ["\(listen)"]
                    backends: ["\(backend.endpoint)"]
                """, listen: [listen])
            try exchangeSmallMessages(through: listen)
            let connection = try TCPConnection(to: listen, timeout: 15)
            try connection.verifyEchoStream(seed: 0xb05e_f11e, count: 4 << 20, timeout: 15)
            #expect(proxy.process.isRunning, "stderr:\n\(proxy.process.standardError)")
        }

        /// Eight clients each make 400 round trips of 1 to 300 bytes (the ping-pong traffic busy
        /// polling is for), every byte compared with what was sent.
        private func exchangeSmallMessages(through listen: TCPEndpoint) throws {
            let slow = EndToEnd.sanitizerSlowdown
            let failures = runInParallel(jobs: 8, parallelism: 8, timeout: 30 * slow) { client in
                let connection = try TCPConnection(to: listen, timeout: 10 * slow)
                var generator = DeterministicBytes(seed: 0xb05e_0000 + UInt64(client))
                for round in 0..<400 {
                    try connection.roundTrip(generator.next(1 + (round * 37) % 300), timeout: 10 * slow)
                }
            }
            #expect(failures.isEmpty, "\(failures.count) clients failed, e.g. \(failures.prefix(3))")
        }
    }
}
