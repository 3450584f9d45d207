/// Smooth weighted round robin, the scheme nginx uses for its upstreams
/// (`ngx_http_upstream_get_peer` in `ngx_http_upstream_round_robin.c`).
///
/// Every pick adds each candidate's weight to its running `current` value, takes the candidate with
/// the highest `current` (the earliest on a tie) and subtracts the candidates' total weight from it.
/// Over any window of `sum(weights)` picks each backend is chosen exactly `weight` times, and the
/// picks of a heavy backend are spread out rather than bunched: weights 1, 1, 3 give
/// `0, 2, 1, 2, 2` repeating, never `2, 2, 2, 0, 1`.
///
/// Unlike nginx, the scores do not all start at 0 but staggered, `total·(n−i)/(2n)` for the i-th
/// of n candidates. From all-zero scores every cycle starts and ends with the heaviest backend,
/// so cycles meet with it twice in a row (weights 1, 1, 1, 2 give `3, 0, 1, 2, 3 | 3, …`); the
/// staggered start gives `0, 3, 1, 2, 3 | 0, …` and keeps the one-pick bound on every share.
///
/// Cost: O(n) in selectable backends per pick.
///
/// Thread ownership: `init` on the control thread; each worker owns its copy, so `current` is
/// per-worker state and the workers' sequences interleave without coordination (each one is
/// smooth on its own). The weights are shared and never mutated.
public struct WeightedRoundRobinBalancer: Balancer {
    /// Indices (into the backends given to `init`) of the selectable backends with weight above 0.
    private let candidates: [Int]
    /// `weights[i]` is the weight of `candidates[i]`.
    private let weights: [Int]
    /// `current[i]` is the running score of `candidates[i]`; per-worker after the first pick.
    private var current: [Int]
    /// The sum of `weights`.
    private let totalWeight: Int

    public init(backends: [BalancerBackend]) {
        let chosen = backends.indices.filter { backends[$0].selectable && backends[$0].weight > 0 }
        candidates = chosen
        weights = chosen.map { backends[$0].weight }
        let total = weights.reduce(0, +)
        let count = chosen.count
        current = (0..<count).map { total * (count - $0) / (2 * count) }
        totalWeight = total
    }

    /// Picks the next backend in the smooth sequence, leaving out those in `tried` (a tried
    /// backend's score is left as is, so it neither gains nor loses ground while skipped).
    /// Returns nil when no selectable backend is left. Worker thread only.
    public mutating func pick(clientKey: UInt64, excluding tried: TriedBackends) -> Int? {
        guard !candidates.isEmpty else { return nil }
        if tried.count == 0 {
            let best = advanceAll()
            return candidates[best]
        }
        var best = -1
        var bestScore = Int.min
        var total = 0
        for i in 0..<candidates.count where !tried.contains(candidates[i]) {
            let score = current[i] + weights[i]
            current[i] = score
            total += weights[i]
            if score > bestScore {
                best = i
                bestScore = score
            }
        }
        guard best >= 0 else { return nil }
        current[best] -= total
        return candidates[best]
    }

    /// One step with every candidate taking part: the hot path, written so that it compiles to a
    /// branch-free loop over contiguous memory. Returns the position of the chosen candidate.
    @inline(__always)
    private mutating func advanceAll() -> Int {
        // Locals first: the mutable span holds `self` exclusively until the loop is done.
        let allWeights = self.weights
        let total = totalWeight
        let weights = allWeights.span
        var scores = current.mutableSpan
        var best = 0
        var bestScore = Int.min
        for i in scores.indices {
            let score = scores[i] &+ weights[i]
            scores[i] = score
            // The earliest maximum wins; selects rather than branches, as the winner is unpredictable.
            let better = score > bestScore
            best = better ? i : best
            bestScore = better ? score : bestScore
        }
        scores[best] &-= total
        return best
    }
}
