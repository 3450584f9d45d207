import Foundation
import Testing

extension EndToEnd {
    /// `--balance`: which backend each client reaches, told by backends that announce their name
    /// (as HAProxy's `reg-tests/balance/balance-rr.vtc` does).
    ///
    /// The harness's readiness probe is itself a client and takes one pick before a test's first
    /// client, so sequences are checked from wherever the rotation stands, never from its start.
    @Suite struct Balancing {
        @Test func roundRobinGivesThreeBackendsTenOfThirtySequentialClientsEachInRotation() throws {
            let names = ["a", "b", "c"]
            let backends = try names.map { try TestBackend(.identify(name: $0)) }
            let proxy = try SwitchyardProcess(
                workers: 1, options: ["--balance", "round-robin"],
                backends: backends.map(\.endpoint.description))

            let reached = try proxy.backendNamesOfSequentialClients(30)

            #expect(tally(reached) == ["a": 10, "b": 10, "c": 10], "\(reached)")
            let start = try #require(names.firstIndex(of: reached[0]))
            let rotation = (0..<30).map { names[(start + $0) % names.count] }
            #expect(reached == rotation)
        }

        @Test func weightedOneOneThreeGivesFiftySequentialClientsTenTenAndThirty() throws {
            let light1 = try TestBackend(.identify(name: "light1"))
            let light2 = try TestBackend(.identify(name: "light2"))
            let heavy = try TestBackend(.identify(name: "heavy"))
            let proxy = try SwitchyardProcess(
                workers: 1, options: ["--balance", "weighted"],
                backends: [
                    light1.endpoint.description, light2.endpoint.description, "\(heavy.endpoint),weight=3",
                ])

            let reached = try proxy.backendNamesOfSequentialClients(50)

            #expect(tally(reached) == ["light1": 10, "light2": 10, "heavy": 30], "\(reached)")
            // Smooth weighting: every window of sum(weights) = 5 consecutive picks holds each
            // backend exactly its weight times, so the heavy one's picks are spread out.
            for start in 0...(reached.count - 5) {
                let window = Array(reached[start..<(start + 5)])
                #expect(tally(window) == ["light1": 1, "light2": 1, "heavy": 3], "picks \(start)..<\(start + 5): \(window)")
            }
        }

        @Test func leastConnSendsNewClientsToTheBackendWhoseClientsLeft() throws {
            let backendA = try TestBackend(.identify(name: "A"))
            let backendB = try TestBackend(.identify(name: "B"))
            let adminSocket = SwitchyardProcess.temporaryAdminSocketPath()
            let proxy = try SwitchyardProcess(
                workers: 1, options: ["--balance", "least-conn", "--admin-socket", adminSocket],
                backends: [backendA.endpoint.description, backendB.endpoint.description])
            let addressA = backendA.endpoint.description
            // Counts must start at 0: the readiness probe's connection has to be released first.
            try #require(eventually(timeout: 3, interval: 0.05) {
                (try? adminShowBackends(socketPath: adminSocket))?.allSatisfy { $0.active == 0 } ?? false
            })

            let held = try (0..<4).map { _ in try IdentifiedClient(through: proxy.listen) }
            #expect(tally(held.map(\.backendName)) == ["A": 2, "B": 2], "\(held.map(\.backendName))")
            for client in held where client.backendName == "A" { client.close() }
            let released = eventually(timeout: 3, interval: 0.02) {
                (try? adminShowBackends(socketPath: adminSocket))?.first { $0.backend == addressA }?.active == 0
            }
            try #require(released, "the proxy still counts connections on A after its clients left")

            let next = try (0..<2).map { _ in try IdentifiedClient(through: proxy.listen) }

            #expect(next.map(\.backendName) == ["A", "A"])
            let stillOpen = held.filter { $0.backendName == "B" } + next
            for (index, client) in stillOpen.enumerated() {
                #expect(throws: Never.self, "open client \(index) on \(client.backendName)") {
                    try client.roundTrip("still relayed \(index)")
                }
            }
        }

        @Test func ipHashSendsEachSourceAddressToTheSameBackendAcrossConnectionsAndRestarts() throws {
            let names = ["one", "two", "three"]
            let backends = try names.map { try TestBackend(.identify(name: $0)) }
            let arguments = backends.map(\.endpoint.description)
            // 127.0.0.2 ... 127.0.0.41: the whole of 127/8 is loopback on Linux, so a client can
            // bind any of them as its source address.
            let sources = (2...41).map { "127.0.0.\($0)" }

            /// The backend each source reached, after checking that its three clients agree.
            func mapping(through proxy: SwitchyardProcess) throws -> [String: String] {
                var result: [String: String] = [:]
                for source in sources {
                    let reached = try (0..<3).map { _ in
                        let client = try IdentifiedClient(through: proxy.listen, from: source)
                        defer { client.close() }
                        return client.backendName
                    }
                    #expect(Set(reached).count == 1, "\(source) reached \(reached)")
                    result[source] = reached[0]
                }
                return result
            }

            let first = try SwitchyardProcess(workers: 2, options: ["--balance", "ip-hash"], backends: arguments)
            let before = try mapping(through: first)
            first.kill()
            let second = try SwitchyardProcess(workers: 2, options: ["--balance", "ip-hash"], backends: arguments)
            let after = try mapping(through: second)

            #expect(before == after, "the mapping changed when the proxy restarted")
            #expect(Set(before.values).count >= 2, "every source reached \(Set(before.values))")
        }
    }
}
