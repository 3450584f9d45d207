import Foundation
import Testing

extension EndToEnd {
    /// Connections are released, timed out and limited as configured.
    @Suite struct ConnectionLifecycle {
        @Test(arguments: RelayMode.allCases)
        func twoThousandShortConnectionsLeaveNoFileDescriptorsBehind(relay: RelayMode) throws {
            let backend = try TestBackend(.echo)
            let proxy = try SwitchyardProcess(relay: relay, backends: [backend.endpoint.description])
            let parallelism = 16
            let shortConnection: @Sendable (Int) throws -> Void = { index in
                let connection = try TCPConnection(to: proxy.listen, timeout: 5)
                try connection.roundTrip(Array("short \(index)".utf8))
                connection.close()
            }

            // Warm up with one full round of parallel connections first, so per-worker caches
            // (pipe pools for splice, for instance) are already filled when the baseline is taken.
            let warmUpFailures = runInParallel(jobs: parallelism, parallelism: parallelism, timeout: 10, shortConnection)
            try #require(warmUpFailures.isEmpty, "\(warmUpFailures.prefix(3))")
            #expect(eventually(timeout: 2) { backend.openConnectionCount == 0 })
            let baseline = try #require(proxy.openFileDescriptorCount)

            let failures = runInParallel(jobs: 2000, parallelism: parallelism, timeout: 25, shortConnection)

            #expect(failures.isEmpty, "\(failures.count) connections failed, e.g. \(failures.prefix(3))")
            var after = proxy.openFileDescriptorCount
            let settled = eventually(timeout: 5, interval: 0.05) {
                after = proxy.openFileDescriptorCount
                return (after ?? .max) <= baseline
            }
            #expect(settled, "proxy holds \(after ?? -1) fds after 2000 connections, \(baseline) before")
        }

        @Test(arguments: RelayMode.allCases)
        func idleTimeoutClosesIdleConnectionWhileActiveOneStaysOpen(relay: RelayMode) throws {
            let backend = try TestBackend(.echo)
            let proxy = try SwitchyardProcess(
                relay: relay, options: ["--idle-timeout", "500ms"], backends: [backend.endpoint.description])
            let idle = try TCPConnection(to: proxy.listen)
            let active = try TCPConnection(to: proxy.listen)
            try active.roundTrip(Array("start".utf8))
            let activity = BackgroundTask {
                for tick in 0..<25 {
                    usleep(100_000)
                    try active.roundTrip(Array("tick \(tick)".utf8), timeout: 1)
                }
            }

            try idle.roundTrip(Array("last words".utf8))
            let outcome = idle.readToEnd(timeout: 2)

            #expect(outcome.end.isClosed, "idle connection was not closed: \(outcome.end)")
            #expect(outcome.elapsed >= 0.4, "idle connection closed after \(outcome.elapsed) s, before the timeout")
            let activityFailure = activity.join(timeout: 5)
            #expect(activityFailure == nil, "active connection failed: \(activityFailure ?? "")")
        }

        @Test(arguments: RelayMode.allCases)
        func fifthClientOverMaxConnectionsFourIsClosedWhileFirstFourKeepWorking(relay: RelayMode) throws {
            let backend = try TestBackend(.echo)
            let proxy = try SwitchyardProcess(
                relay: relay, options: ["--max-connections", "4"], backends: [backend.endpoint.description])
            // The readiness probe must be gone before the slots are counted.
            try #require(eventually(timeout: 2) { backend.openConnectionCount == 0 })
            try #require(proxy.waitUntilNoOpenConnections())

            let admitted = try (0..<4).map { index in
                let connection = try TCPConnection(to: proxy.listen)
                try connection.roundTrip(Array("admitted \(index)".utf8))
                return connection
            }
            do {
                let fifth = try TCPConnection(to: proxy.listen)
                try? fifth.send("one too many")
                let outcome = fifth.readToEnd(timeout: 2)
                #expect(outcome.end.isClosed, "fifth connection was not closed: \(outcome.end)")
                #expect(outcome.checksum.byteCount == 0, "fifth connection was relayed")
            } catch let error as SocketError where error.code == ECONNREFUSED {
                // Refusing the handshake outright also keeps the fifth client out promptly.
            }
            for (index, connection) in admitted.enumerated() {
                #expect(throws: Never.self, "admitted connection \(index)") {
                    try connection.roundTrip(Array("still here \(index)".utf8))
                }
            }

            // Closing one admitted connection frees its slot for a new client.
            admitted[0].close()
            let slotReused = eventually(timeout: 3, interval: 0.1) {
                guard let next = try? TCPConnection(to: proxy.listen, timeout: 1) else { return false }
                return (try? next.roundTrip(Array("new".utf8), timeout: 1)) != nil
            }
            #expect(slotReused, "no new client was admitted after a slot was freed")
        }
    }
}
