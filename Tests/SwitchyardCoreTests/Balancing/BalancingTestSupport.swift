@testable import SwitchyardCore

/// Backends for a balancer built by hand: weights as given, all selectable unless listed in
/// `unselectable`, keys from `StableHash` of a made-up `10.0.0.N:80` so that Maglev sees stable identities.
func makeBackends(weights: [Int], unselectable: Set<Int> = []) -> [BalancerBackend] {
    weights.enumerated().map { index, weight in
        BalancerBackend(
            weight: weight,
            selectable: !unselectable.contains(index) && weight > 0,
            stats: BackendStats(),
            key: backendKey(index)
        )
    }
}

/// The key of the made-up backend number `index`.
func backendKey(_ index: Int) -> UInt64 {
    StableHash.hash(Array("10.0.\(index / 256).\(index % 256):80".utf8))
}

/// `count` picks with nothing tried.
func picks<B: Balancer>(_ balancer: inout B, count: Int, clientKey: UInt64 = 0) -> [Int?] {
    (0..<count).map { _ in balancer.pick(clientKey: clientKey, excluding: TriedBackends()) }
}

/// `TriedBackends` holding `indices`.
func tried(_ indices: Int...) -> TriedBackends {
    var result = TriedBackends()
    for index in indices { result.insert(index) }
    return result
}
