import Foundation
import Glibc
import Testing

extension EndToEnd {
    /// README, "Relay modes": a direction pauses its receive once four buffers are queued behind
    /// its send, so a slow reader holds a handful of buffers and cannot take the shared pool
    /// from everyone else on its worker.
    @Suite struct QueuedBuffers {
        @Test(arguments: [RelayMode.copy, .auto])
        func clientsThatNeverReadLeaveBuffersForTheClientBesideThem(relay: RelayMode) throws {
            // Issue 16: in copy mode a direction's multishot receive kept filling buffers until
            // the cancel sent at four queued landed, so three non-reading clients took the
            // 32-buffer pool. The receive now carries a byte limit (room for the buffers the
            // direction may still hold) and ends itself there.
            try checkClientsThatNeverRead(relay: relay)
        }

        private func checkClientsThatNeverRead(relay: RelayMode) throws {
            let backend = try ChaosBackend(name: "echo")
            defer { backend.shutDown() }
            // One worker with 32 buffers of 16 KiB: a connection whose two directions each hold
            // one buffer in flight and four queued takes 10, so three such take 30.
            let proxy = try SwitchyardProcess(
                relay: relay, workers: 1,
                options: ["--no-health-check", "--buffers", "32", "--buffer-size", "16"],
                backends: [backend.endpoint.description])

            // Three clients that write until every socket buffer on the way is full and a send
            // has waited 0.3 s (SO_SNDTIMEO), and never read.
            var fillers: [TCPConnection] = []
            defer { for filler in fillers { filler.close() } }
            for index in 0..<3 {
                let filler = try TCPConnection(to: proxy.listen, timeout: 0.3)
                fillers.append(filler)
                do {
                    _ = try filler.receiveLine(timeout: 3)
                } catch {
                    Issue.record("client \(index + 1) of 3 that never read got no greeting (\(error)): the ones before it took the whole pool; the proxy's sockets:\n\(socketTable(of: proxy.pid))")
                    return
                }
                _ = try? filler.sendGenerated(seed: UInt64(77 + index), count: 64 << 20)
            }

            var generator = DeterministicBytes(seed: 99)
            let payload = generator.next(64 << 10)
            do {
                let client = try TCPConnection(to: proxy.listen, timeout: 3)
                _ = try client.receiveLine(timeout: 3)
                try client.roundTrip(payload, timeout: 3)
            } catch {
                Issue.record("a client beside three that never read was not served (\(error)); the proxy's sockets:\n\(socketTable(of: proxy.pid))")
            }
        }
    }
}
