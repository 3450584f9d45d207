/// How much of a service's traffic each failover tier takes (`priority: N` on backends, with
/// `backup: true` the last tier), after Envoy's priority load with an overprovisioning factor.
///
/// A tier's health is the share of its configured weight that is healthy and taking traffic,
/// divided by `failover-threshold` (so a tier at or above the threshold counts as fully healthy)
/// and capped at 1. The first tier takes its health's worth of the traffic, the next tier up to
/// its own health of what is left, and so on; when the tiers' health adds up to less than 1, the
/// shares are scaled up so that they add up to 1 (traffic always goes somewhere while any
/// backend is healthy). Without `failover-threshold`, all traffic goes to the first tier that has
/// any healthy weight, as HAProxy's backups do.
public enum PriorityLoad {
    /// One tier's weights: healthy (and ready) and configured.
    public struct Tier: Sendable, Equatable {
        public var healthyWeight: Int
        public var totalWeight: Int
        public init(healthyWeight: Int, totalWeight: Int) {
            self.healthyWeight = healthyWeight
            self.totalWeight = totalWeight
        }
    }

    /// The share of traffic (0...1, adding up to 1, or all 0 when nothing is healthy) of each
    /// tier, in tier order. `thresholdPercent` is 1...100, or nil for no threshold.
    public static func shares(_ tiers: [Tier], thresholdPercent: Int?) -> [Double] {
        guard let thresholdPercent else {
            var shares = [Double](repeating: 0, count: tiers.count)
            if let first = tiers.firstIndex(where: { $0.healthyWeight > 0 }) { shares[first] = 1 }
            return shares
        }
        let threshold = Double(min(100, max(1, thresholdPercent))) / 100
        let health = tiers.map { tier -> Double in
            guard tier.totalWeight > 0, tier.healthyWeight > 0 else { return 0 }
            return min(1, Double(tier.healthyWeight) / Double(tier.totalWeight) / threshold)
        }
        var shares = [Double](repeating: 0, count: tiers.count)
        var left = 1.0
        for index in tiers.indices where left > 0 {
            let share = min(left, health[index])
            shares[index] = share
            left -= share
        }
        let total = shares.reduce(0, +)
        guard total > 0 else { return shares }
        return shares.map { $0 / total }
    }

    /// The tier a pick lands in for `point` in 0..<1 (a hash of the client, or a counter's
    /// fraction), given `shares`; nil when every share is 0.
    public static func tier(for point: Double, in shares: [Double]) -> Int? {
        var cumulative = 0.0
        var last: Int?
        for (index, share) in shares.enumerated() where share > 0 {
            cumulative += share
            last = index
            if point < cumulative { return index }
        }
        return last
    }
}
