import Testing
@testable import SwitchyardCore

@Suite struct RoundRobinBalancerTests {
    @Test func rotatesOverSelectableBackendsIgnoringWeights() {
        var balancer = RoundRobinBalancer(backends: makeBackends(weights: [1, 5, 2, 1], unselectable: [1]))
        #expect(picks(&balancer, count: 7) == [0, 2, 3, 0, 2, 3, 0])
    }

    @Test func triedBackendIsSkippedAndRotationGoesOn() {
        var balancer = RoundRobinBalancer(backends: makeBackends(weights: [1, 1, 1]))
        #expect(balancer.pick(clientKey: 0, excluding: tried(0)) == 1)
        #expect(balancer.pick(clientKey: 0, excluding: tried(2)) == 0)
        #expect(balancer.pick(clientKey: 0, excluding: tried(0, 1, 2)) == nil)
    }
}

@Suite struct WeightedRoundRobinBalancerTests {
    @Test func weights113GiveThePinnedSmoothSequence() {
        var balancer = WeightedRoundRobinBalancer(backends: makeBackends(weights: [1, 1, 3]))
        #expect(picks(&balancer, count: 10) == [0, 2, 1, 2, 2, 0, 2, 1, 2, 2])
    }

    @Test func weights1112GiveThePinnedSmoothSequence() {
        var balancer = WeightedRoundRobinBalancer(backends: makeBackends(weights: [1, 1, 1, 2]))
        // The staggered start keeps the weight-2 backend apart across cycles too.
        #expect(picks(&balancer, count: 10) == [0, 3, 1, 2, 3, 0, 3, 1, 2, 3])
    }

    @Test func weights1112NeverPickABackendTwiceInARow() {
        var balancer = WeightedRoundRobinBalancer(backends: makeBackends(weights: [1, 1, 1, 2]))
        let sequence = picks(&balancer, count: 1000)
        for (previous, next) in zip(sequence, sequence.dropFirst()) {
            #expect(previous != next)
        }
        #expect(sequence.filter { $0 == 3 }.count == 400)
    }

    /// Smoothness as the algorithm guarantees it: after every pick, each backend's count is within
    /// one pick of its exact weighted share (|count·total − n·weight| < total), and a backend
    /// holding at most a third of the weight is never picked twice in a row.
    @Test(arguments: [[1, 1, 1, 2], [1, 1, 3], [5, 1, 1], [1, 2, 3, 4], [3, 3, 2, 2, 1], [256, 1, 7, 64]])
    func everyBackendStaysWithinOnePickOfItsShare(weights: [Int]) {
        var balancer = WeightedRoundRobinBalancer(backends: makeBackends(weights: weights))
        let total = weights.reduce(0, +)
        var counts = Array(repeating: 0, count: weights.count)
        var previous: Int?
        for n in 1...(5 * total) {
            let pick = balancer.pick(clientKey: 0, excluding: TriedBackends())!
            counts[pick] += 1
            for (i, weight) in weights.enumerated() {
                #expect(abs(counts[i] * total - n * weight) < total, "backend \(i) after \(n) picks")
            }
            if 3 * weights[pick] <= total { #expect(pick != previous, "backend \(pick) twice in a row at pick \(n)") }
            previous = pick
        }
        #expect(counts == weights.map { 5 * $0 })
    }

    @Test func triedBackendIsSkippedAndOthersKeepTheirShare() {
        var balancer = WeightedRoundRobinBalancer(backends: makeBackends(weights: [1, 1, 3]))
        var counts = [0, 0, 0]
        for _ in 0..<400 { counts[balancer.pick(clientKey: 0, excluding: tried(2))!] += 1 }
        #expect(counts == [200, 200, 0])
        #expect(balancer.pick(clientKey: 0, excluding: tried(0, 1, 2)) == nil)
    }
}
