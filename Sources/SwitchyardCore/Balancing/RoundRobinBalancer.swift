/// Strict rotation over the selectable backends; weights are ignored (see `WeightedRoundRobinBalancer`)
/// except that weight 0 still means never picked.
///
/// Thread ownership: `init` on the control thread; each worker owns its copy and its cursor.
public struct RoundRobinBalancer: Balancer {
    private let selectable: [Int]
    private var cursor = 0

    public init(backends: [BalancerBackend]) {
        selectable = backends.indices.filter { backends[$0].selectable && backends[$0].weight > 0 }
    }

    /// The next selectable backend after the previous pick that is not in `tried`; nil when none
    /// is left. Worker thread only.
    public mutating func pick(clientKey: UInt64, excluding tried: TriedBackends) -> Int? {
        guard !selectable.isEmpty else { return nil }
        for _ in 0..<selectable.count {
            let candidate = selectable[cursor]
            cursor = cursor + 1 == selectable.count ? 0 : cursor + 1
            if !tried.contains(candidate) { return candidate }
        }
        return nil
    }
}
