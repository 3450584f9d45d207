import Testing
@testable import SwitchyardCore

/// Issue 15: instances given the same backends in another order (DNS answers come in any order)
/// must build the same table and send every client to the same backend.
@Suite struct MaglevOrderIndependenceTests {
    /// 1,000 client keys as workers make them: StableHash of IPv4 addresses in 127.0.0.0/8.
    private static let clientKeys: [UInt64] = (0..<1_000).map { n in
        StableHash.hash(low: UInt64(127) | UInt64(n & 0xFF) << 24 | UInt64(n >> 8) << 16, byteCount: 4)
    }

    private static func shuffles(of count: Int, rounds: Int) -> [[Int]] {
        var random = TestRandom(seed: 0x4D41_474C_4556_0015)
        var result = [Array(0..<count), Array((0..<count).reversed())]
        for _ in 0..<rounds { result.append(Array(0..<count).shuffled(using: &random)) }
        return result
    }

    @Test func shuffledBackendsGiveTheSameTableAndTheSamePicks() {
        // Weights differ and one backend is not selectable, so credit and membership both matter.
        let backends = makeBackends(weights: [3, 1, 2, 5, 1, 1, 4, 2, 1], unselectable: [4])
        let reference = MaglevTable(backends: backends, size: 4_099)
        let referenceOwners = reference.entries.map { backends[Int($0)].key }
        var referenceBalancer = MaglevBalancer(backends: backends, tableSize: 4_099)
        let referencePicks = Self.clientKeys.map { backends[referenceBalancer.pick(clientKey: $0, excluding: TriedBackends())!].key }

        for order in Self.shuffles(of: backends.count, rounds: 20) {
            let shuffled = order.map { backends[$0] }
            let table = MaglevTable(backends: shuffled, size: 4_099)
            #expect(table.entries.map { shuffled[Int($0)].key } == referenceOwners, "order \(order)")
            #expect(Set(table.members.map { shuffled[$0].key }) == Set(reference.members.map { backends[$0].key }))

            var balancer = MaglevBalancer(backends: shuffled, tableSize: 4_099)
            for (n, key) in Self.clientKeys.enumerated() {
                guard let pick = balancer.pick(clientKey: key, excluding: TriedBackends()) else {
                    Issue.record("no pick for client \(n)")
                    continue
                }
                #expect(shuffled[pick].key == referencePicks[n], "client \(n), order \(order)")
                // The retry after a failed connect goes to the same backend too.
                let retry = balancer.pick(clientKey: key, excluding: tried(pick)).map { shuffled[$0].key }
                var referenceTried = TriedBackends()
                referenceTried.insert(backends.firstIndex { $0.key == shuffled[pick].key }!)
                let referenceRetry = referenceBalancer.pick(clientKey: key, excluding: referenceTried).map { backends[$0].key }
                #expect(retry == referenceRetry, "retry of client \(n), order \(order)")
            }
        }
    }

    /// The same through the registry, as the workers see it: backends named by `HOST:PORT`.
    @Test func registriesGivenTheBackendsInAnotherOrderSendEveryClientToTheSameBackend() throws {
        let names = (1...7).map { "10.0.1.\($0):5432" } + ["[2001:db8::1]:5432,weight=3", "db.example.com:5432,weight=2"]
        func picks(_ order: [Int]) throws -> [String] {
            let specs = try order.map { try BackendSpec(parsing: names[$0]) }
            let snapshot = BackendRegistry(backends: specs, algorithm: .ipHash).snapshot()
            var balancer = snapshot.balancer
            return Self.clientKeys.map { key in
                snapshot.backends[balancer.pick(clientKey: key, excluding: TriedBackends())!].spec.endpoint.description
            }
        }
        let reference = try picks(Array(names.indices))
        #expect(Set(reference).count == names.count, "every backend gets clients")
        for order in Self.shuffles(of: names.count, rounds: 10) {
            #expect(try picks(order) == reference, "order \(order)")
        }
    }
}
