/// ip-hash: the client's address picks the backend through a `MaglevTable`, so a client keeps
/// reaching the same backend across connections, workers, restarts and Switchyard instances, and
/// a change in the backend set moves only the clients it must (those of a removed backend, and
/// a share proportional to weight for an added one).
///
/// Weights give each backend a proportional share of the table, hence of the clients.
/// When the connect to a client's backend fails (it is in `tried`), the next table slots are
/// walked to the first backend not yet tried.
///
/// Thread ownership: `init` builds the table on the control thread; workers copy the value (the
/// table storage is shared, never written after `init`) and call `pick` on their own threads.
public struct MaglevBalancer: Balancer {
    public let table: MaglevTable

    public init(backends: [BalancerBackend]) {
        self.init(backends: backends, tableSize: MaglevTable.defaultSize)
    }

    /// Builds over a table of `tableSize` slots, a prime (tests use small ones to pin tables).
    public init(backends: [BalancerBackend], tableSize: Int) {
        table = MaglevTable(backends: backends, size: tableSize)
    }

    public static var needsClientKey: Bool { true }

    /// The backend owning `clientKey`'s slot, or the next slot's owner not in `tried`; nil when
    /// no selectable backend is left. Worker thread only.
    public mutating func pick(clientKey: UInt64, excluding tried: TriedBackends) -> Int? {
        table.backend(for: clientKey, excluding: tried)
    }
}
