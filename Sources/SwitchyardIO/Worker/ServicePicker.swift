import SwitchyardCore

/// One worker's view of a service: its latest snapshot and its own copies of the balancers.
///
/// Thread ownership: the worker's thread; connections of the service hold a reference.
final class ServicePicker {
    let registry: BackendRegistry
    private(set) var snapshot: BackendSnapshot
    /// The worker's copies of the snapshot's balancers, one per failover tier.
    var tierBalancers: [any Balancer]
    /// Which tier each new client goes to (failover tiers).
    var tierChooser: TierChooser
    private(set) var needsClientKey: Bool
    /// Where this worker's rotation through the service's `source` addresses is (issue 13).
    var nextSource = 0
    /// The service's TLS context when its listeners terminate TLS (from the listener table).
    var tls: TLSServerContext?
    /// The service's number in the instance's source table (per-client controls); 0 until asked.
    var sourceTableNumber: UInt32 = 0

    init(registry: BackendRegistry) {
        self.registry = registry
        snapshot = registry.snapshot()
        tierBalancers = snapshot.tierBalancers
        needsClientKey = type(of: snapshot.balancer).needsClientKey
        tierChooser = TierChooser(snapshot.failover, byClientKey: needsClientKey)
    }

    /// Adopts the registry's newer snapshot, if any; returns the one it replaced.
    func adoptIfNewer() -> BackendSnapshot? {
        guard let newer = registry.snapshotIfNewer(than: snapshot.version) else { return nil }
        let previous = snapshot
        snapshot = newer
        tierBalancers = newer.tierBalancers
        needsClientKey = type(of: newer.balancer).needsClientKey
        tierChooser = TierChooser(newer.failover, byClientKey: needsClientKey)
        return previous
    }
}
