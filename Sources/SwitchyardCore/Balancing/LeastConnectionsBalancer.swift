/// Least connections relative to weight: picks the backend with the fewest open connections per
/// unit of weight, so a backend of weight 2 is given twice the open connections of one of weight 1.
///
/// Ratios are compared by cross-multiplication (`activeA * weightB < activeB * weightA`), never
/// divided, so there is no rounding and no floating point. Ties are broken by rotation: the scan
/// starts one past the previous pick and keeps the first best it meets, so equally loaded backends
/// share new connections in turn instead of the first one taking them all (which matters at start,
/// when every backend has 0 connections).
///
/// `active` is read with relaxed ordering: counts move on other workers while we scan, so the
/// choice is a good guess at one moment, not a lock-step view (as in HAProxy `leastconn` across
/// threads). Cost: O(n) in selectable backends per pick, one atomic load each.
///
/// Thread ownership: `init` on the control thread; each worker owns its copy and its cursor.
public struct LeastConnectionsBalancer: Balancer {
    /// Indices (into the backends given to `init`) of the selectable backends with weight above 0.
    private let candidates: [Int]
    /// `weights[i]` is the weight of `candidates[i]`.
    private let weights: [Int]
    /// `stats[i]` holds the live counters of `candidates[i]`.
    private let stats: [BackendStats]
    /// Where the next scan starts, a position in `candidates`.
    private var cursor = 0

    public init(backends: [BalancerBackend]) {
        let chosen = backends.indices.filter { backends[$0].selectable && backends[$0].weight > 0 }
        candidates = chosen
        weights = chosen.map { backends[$0].weight }
        stats = chosen.map { backends[$0].stats }
    }

    /// Picks the least loaded backend for its weight, leaving out those in `tried`; among equals,
    /// the first one after the previous pick. Returns nil when no selectable backend is left.
    /// Worker thread only.
    public mutating func pick(clientKey: UInt64, excluding tried: TriedBackends) -> Int? {
        let count = candidates.count
        guard count > 0 else { return nil }
        // Scan from the cursor to the end, then from the start to the cursor: two plain loops
        // rather than one with a wrap-around test on every step.
        var best = Best()
        if tried.count == 0 {
            scan(cursor..<count, into: &best)
            scan(0..<cursor, into: &best)
        } else {
            scan(cursor..<count, excluding: tried, into: &best)
            scan(0..<cursor, excluding: tried, into: &best)
        }
        guard best.position >= 0 else { return nil }
        cursor = best.position + 1 == count ? 0 : best.position + 1
        return candidates[best.position]
    }

    /// The least loaded candidate seen so far: position -1 until one is seen, with a load of
    /// 2⁵³ per unit of weight that any real candidate beats, yet small enough that the cross
    /// products (weights are at most 256) cannot overflow.
    private struct Best {
        var position = -1
        var active = 1 << 53
        var weight = 1
    }

    @inline(__always)
    private func scan(_ positions: Range<Int>, into best: inout Best) {
        let weights = self.weights.span
        // Locals rather than `best`'s fields, so that they stay in registers through the loop.
        var bestPosition = best.position
        var bestActive = best.active
        var bestWeight = best.weight
        for position in positions {
            let active = stats[position].active.load(ordering: .relaxed)
            let weight = weights[position]
            // Strictly fewer per unit of weight; selects rather than branches.
            let better = active &* bestWeight < bestActive &* weight
            bestPosition = better ? position : bestPosition
            bestActive = better ? active : bestActive
            bestWeight = better ? weight : bestWeight
        }
        best = Best(position: bestPosition, active: bestActive, weight: bestWeight)
    }

    private func scan(_ positions: Range<Int>, excluding tried: TriedBackends, into best: inout Best) {
        for position in positions where !tried.contains(candidates[position]) {
            let active = stats[position].active.load(ordering: .relaxed)
            let weight = weights[position]
            if active &* best.weight < best.active &* weight {
                best = Best(position: position, active: active, weight: weight)
            }
        }
    }
}
