/// Strict rotation over the selectable backends; weights are ignored (see `WeightedRoundRobinBalancer`).
public struct RoundRobinBalancer: Balancer {
    private let selectable: [Int]
    private var cursor = 0

    public init(backends: [BalancerBackend]) {
        selectable = backends.indices.filter { backends[$0].selectable }
    }

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
