import Testing

extension EndToEnd {
    /// Every byte relayed in either direction arrives intact, in order, for every relay mode.
    @Suite struct RelayIntegrity {
        @Test(arguments: RelayMode.allCases, [1, 2])
        func thirtyTwoParallelConnectionsEachEchoFourMebibytesIntact(relay: RelayMode, workers: Int) throws {
            let backend = try TestBackend(.echo)
            let proxy = try SwitchyardProcess(relay: relay, workers: workers, backends: [backend.endpoint.description])

            // Under a sanitizer the proxy runs several times slower: a quarter of the bytes, more time.
            let slow = EndToEnd.sanitizerSlowdown
            let count = slow > 1 ? 1 << 20 : 4 << 20
            let failures = runInParallel(jobs: 32, parallelism: 32, timeout: 25 * slow) { client in
                let connection = try TCPConnection(to: proxy.listen, timeout: 20 * slow)
                try connection.verifyEchoStream(seed: 0x5eed_0000 + UInt64(client), count: count, timeout: 20 * slow)
            }

            #expect(failures.isEmpty, "\(failures.count) clients failed, e.g. \(failures.prefix(3))")
            #expect(proxy.isRunning, "stderr:\n\(proxy.standardError)")
        }

        @Test(arguments: RelayMode.allCases)
        func replyAfterClientHalfCloseArrivesIntactFollowingSixtyFourMebibyteUpload(relay: RelayMode) throws {
            let backend = try TestBackend(.sinkThenReply)
            let proxy = try SwitchyardProcess(relay: relay, backends: [backend.endpoint.description])
            let connection = try TCPConnection(to: proxy.listen, timeout: 15)

            let sent = try connection.sendGenerated(seed: 0x0b1d_0a0d, count: 64 << 20)
            try connection.shutdownWrite()
            let reply = connection.readToEnd(timeout: 15, keepingUpTo: 256)

            #expect(reply.keptText == TestBackend.sinkReply(for: sent))
            #expect(reply.end == .endOfFile)
        }

        @Test(arguments: RelayMode.allCases)
        func clientReceivesAllEightMebibytesAndThenEndOfFileWhenBackendClosesAfterSending(relay: RelayMode) throws {
            let size = 8 << 20
            let seed: UInt64 = 0x0da7_a5e7
            let backend = try TestBackend(.sendThenClose(byteCount: size, seed: seed))
            let proxy = try SwitchyardProcess(relay: relay, backends: [backend.endpoint.description])
            let connection = try TCPConnection(to: proxy.listen, timeout: 15)

            let received = connection.readToEnd(timeout: 15)

            #expect(received.checksum == DeterministicBytes.checksum(seed: seed, count: size))
            #expect(received.end == .endOfFile)
        }
    }
}
