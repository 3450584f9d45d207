import Dispatch
import Testing
@testable import SwitchyardCore

@Suite struct LeastConnectionsBalancerTests {
    @Test func equalBackendsWithNoConnectionsAreTakenInTurn() {
        var balancer = LeastConnectionsBalancer(backends: makeBackends(weights: [1, 1, 1]))
        #expect(picks(&balancer, count: 7) == [0, 1, 2, 0, 1, 2, 0])
    }

    @Test func fewestConnectionsPerWeightWins() {
        let backends = makeBackends(weights: [1, 2, 1])
        backends[0].stats.active.store(3, ordering: .relaxed)
        backends[1].stats.active.store(5, ordering: .relaxed) // 2.5 per unit of weight
        backends[2].stats.active.store(4, ordering: .relaxed)
        var balancer = LeastConnectionsBalancer(backends: backends)
        #expect(balancer.pick(clientKey: 0, excluding: TriedBackends()) == 1)
        backends[1].stats.active.store(6, ordering: .relaxed) // 3 per unit: ties with backend 0
        #expect(balancer.pick(clientKey: 0, excluding: TriedBackends()) == 0, "the scan starts after the last pick")
        #expect(balancer.pick(clientKey: 0, excluding: tried(0)) == 1)
    }

    @Test func heavierBackendIsGivenProportionallyMoreOpenConnections() {
        let backends = makeBackends(weights: [1, 3])
        var balancer = LeastConnectionsBalancer(backends: backends)
        for _ in 0..<400 {
            let pick = balancer.pick(clientKey: 0, excluding: TriedBackends())!
            backends[pick].stats.active.add(1, ordering: .relaxed)
        }
        #expect(backends[0].stats.active.load(ordering: .relaxed) == 100)
        #expect(backends[1].stats.active.load(ordering: .relaxed) == 300)
    }

    /// Four threads each own a copy (as workers do), open connections on what they pick and close
    /// some; the shared counters steer every copy, so the open counts end up even.
    @Test func countersChangedByOtherThreadsSteerEveryCopy() {
        let backends = makeBackends(weights: [1, 1, 1, 1])
        let prototype = LeastConnectionsBalancer(backends: backends)
        DispatchQueue.concurrentPerform(iterations: 4) { worker in
            var balancer = prototype
            var opened: [Int] = []
            for round in 0..<2_000 {
                let pick = balancer.pick(clientKey: 0, excluding: TriedBackends())!
                backends[pick].stats.active.add(1, ordering: .relaxed)
                opened.append(pick)
                if round % 2 == 1 {
                    let closing = opened.removeFirst()
                    backends[closing].stats.active.subtract(1, ordering: .relaxed)
                }
            }
        }
        let open = backends.map { $0.stats.active.load(ordering: .relaxed) }
        #expect(open.reduce(0, +) == 4_000)
        // Picks race with other threads' updates, so allow a little drift around 1000 each.
        #expect(open.allSatisfy { (950...1050).contains($0) }, "\(open)")
    }
}
