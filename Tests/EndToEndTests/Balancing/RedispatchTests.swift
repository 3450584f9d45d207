import Foundation
import Testing

extension EndToEnd {
    /// A backend that resets (or closes) right after accepting, before any byte moved: the
    /// client goes to another backend, as after a failed connect, and is reset only when no
    /// backend is left. Never a clean end of stream for a session that reached no server.
    @Suite struct Redispatch {
        @Test(arguments: RelayMode.allCases)
        func aBackendThatResetsBeforeAnyByteSendsItsClientsToTheNextBackend(relay: RelayMode) throws {
            // A server-speaks-first protocol (the live backend announces itself, as SMTP, MySQL or
            // an SSH server would): the client sends nothing until it has heard the server.
            let resetting = try TestBackend(.reset)
            let live = try TestBackend(.identify(name: "live"))
            let proxy = try SwitchyardProcess(
                relay: relay, options: ["--no-health-check", "--balance", "round-robin"],
                backends: [resetting.endpoint.description, live.endpoint.description])
            let resetsBefore = resetting.acceptedCount

            for client in 0..<20 {
                // Every client is served by the live backend, even those first sent to the resetting one.
                let connection = try IdentifiedClient(through: proxy.listen)
                #expect(connection.backendName == "live")
                try connection.roundTrip("client \(client) checks its echo\n")
                connection.close()
            }

            #expect(resetting.acceptedCount > resetsBefore, "no client was ever sent to the resetting backend")
            #expect(proxy.isRunning)
            #expect(proxy.standardError.contains("before any byte; trying another"), "\(proxy.standardError)")
        }

        @Test(arguments: RelayMode.allCases)
        func withNoOtherBackendTheClientIsResetNeverClosedCleanly(relay: RelayMode) throws {
            let resetting = try TestBackend(.reset)
            let proxy = try SwitchyardProcess(relay: relay, options: ["--no-health-check"], backends: [resetting.endpoint.description])

            for _ in 0..<5 {
                let client = try TCPConnection(to: proxy.listen)
                let outcome = client.readToEnd(timeout: 3)
                #expect(outcome.end == .reset, "a client whose only backend reset got \(outcome.end), not a reset")
                #expect(outcome.checksum.byteCount == 0)
            }
        }

        @Test(arguments: RelayMode.allCases)
        func aLargeUploadBeforeTheResetIsNotRedispatchedButReset(relay: RelayMode) throws {
            // The sink reads everything, then replies; a client that sent bytes has exchanged
            // something, so when its backend dies it must see a reset (the bytes are gone).
            let sink = try TestBackend(.sinkThenReply)
            let proxy = try SwitchyardProcess(relay: relay, options: ["--no-health-check"], backends: [sink.endpoint.description])
            let client = try TCPConnection(to: proxy.listen)
            let sent = try client.sendGenerated(seed: 9, count: 1 << 20)
            try client.shutdownWrite()
            let reply = client.readToEnd(timeout: 5, keepingUpTo: 256)
            #expect(reply.keptText == TestBackend.sinkReply(for: sent), "the upload was not relayed whole: \(reply.keptText)")
        }
    }
}
