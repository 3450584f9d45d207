/// Placeholder: rotation until the balancing issue fills this in.
public struct WeightedRoundRobinBalancer: Balancer {
    private var inner: RoundRobinBalancer
    public init(backends: [BalancerBackend]) { inner = RoundRobinBalancer(backends: backends) }
    public mutating func pick(clientKey: UInt64, excluding tried: TriedBackends) -> Int? {
        inner.pick(clientKey: clientKey, excluding: tried)
    }
}
