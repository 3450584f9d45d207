import Synchronization

/// Counters for one backend, shared by every worker and read by the admin socket.
///
/// Thread safety: every field is atomic; workers add with relaxed ordering, readers get a
/// momentary value. Byte counts are flushed by workers in batches (per connection close and per
/// tick), not per chunk, so the data path does not bounce this cache line between cores.
public final class BackendStats: Sendable {
    /// Connections open right now (incremented when a backend connect is started).
    public let active = Atomic<Int>(0)
    /// Connections made since start.
    public let total = Atomic<Int>(0)
    /// Bytes from clients to this backend.
    public let bytesToBackend = Atomic<Int>(0)
    /// Bytes from this backend to clients.
    public let bytesFromBackend = Atomic<Int>(0)
    /// Failed connects and connections ended by an error on the backend side.
    public let failures = Atomic<Int>(0)
    /// TLS handshakes with the backend (`backend-tls`) that completed and that failed.
    public let tlsHandshakes = Atomic<Int>(0)
    public let tlsHandshakeFailures = Atomic<Int>(0)
    /// Recent connect times (`--balance least-latency`), in an object of its own so that its
    /// updates do not share a cache line with the counters above.
    public let connectLatency = ConnectLatency()

    public init() {}

    /// Counts one more connection unless `limit` are open (over every worker); false when full.
    public func reserve(limit: Int) -> Bool {
        var current = active.load(ordering: .relaxed)
        while current < limit {
            let (exchanged, original) = active.weakCompareExchange(
                expected: current, desired: current + 1, ordering: .relaxed)
            if exchanged { return true }
            current = original
        }
        return false
    }
}
