import Synchronization

/// What an algorithm may know about one backend when it is built.
///
/// The array an algorithm receives is indexed like the snapshot's backends, so a pick is that index.
public struct BalancerBackend: Sendable {
    /// The configured weight, 0 to `BackendSpec.maximumWeight`.
    public var weight: Int
    /// Up, in `ready` admin state and with a weight above 0. Algorithms never return an index whose
    /// backend is not selectable.
    public var selectable: Bool
    /// Live counters shared by every worker (least connections reads `active`).
    public var stats: BackendStats
    /// A stable identity: the same backend has the same key in every process and every snapshot
    /// (the registry uses `StableHash` of its `HOST:PORT`). ip-hash derives the backend's Maglev
    /// permutation from it, so that a backend keeps its slots when others come and go.
    /// 0 means unknown; ip-hash then tells such backends apart by position in the array.
    public var key: UInt64

    public init(weight: Int, selectable: Bool, stats: BackendStats, key: UInt64 = 0) {
        self.weight = weight
        self.selectable = selectable
        self.stats = stats
        self.key = key
    }
}

/// Backends already tried for one client, so that a retry after a failed connect asks for another.
public struct TriedBackends: Sendable {
    public private(set) var indices: [Int] = []
    public init() {}
    public mutating func insert(_ index: Int) { indices.append(index) }
    public func contains(_ index: Int) -> Bool { indices.contains(index) }
    public var count: Int { indices.count }
}

/// One balancing algorithm (HAProxy's `struct lb_ops` is the model: small, one file per algorithm).
///
/// Contract:
/// - `init(backends:)` runs on the control thread whenever the snapshot changes; expensive
///   preparation (a Maglev table) belongs there, never in `pick`.
/// - Each worker owns a copy of the value and calls `pick` only on its own thread; shared storage
///   must be immutable (or atomic) so copies stay cheap.
/// - `pick` returns an index into the `backends` given to `init`, never one that is not selectable
///   or that `tried` contains, and nil when no backend qualifies.
public protocol Balancer: Sendable {
    init(backends: [BalancerBackend])

    /// Chooses a backend for a new connection. `clientKey` is `StableHash` of the client's IP
    /// address (0 when `needsClientKey` is false).
    mutating func pick(clientKey: UInt64, excluding tried: TriedBackends) -> Int?

    /// Whether `pick` uses `clientKey`; when false the worker skips `getpeername(2)` and hashing.
    static var needsClientKey: Bool { get }
}

extension Balancer {
    public static var needsClientKey: Bool { false }
}

/// The `--balance` choices. Adding an algorithm means one file and one case here.
public enum BalanceAlgorithm: String, CaseIterable, Sendable, CustomStringConvertible {
    case roundRobin = "round-robin"
    case weighted
    case leastConnections = "least-conn"
    case ipHash = "ip-hash"
    case leastLatency = "least-latency"

    public var description: String { rawValue }

    /// Whether the algorithm takes backend weights into account.
    public var honoursWeights: Bool { self != .roundRobin }

    /// Builds the algorithm over `backends` (control thread).
    public func makeBalancer(_ backends: [BalancerBackend]) -> any Balancer {
        switch self {
        case .roundRobin: return RoundRobinBalancer(backends: backends)
        case .weighted: return WeightedRoundRobinBalancer(backends: backends)
        case .leastConnections: return LeastConnectionsBalancer(backends: backends)
        case .ipHash: return MaglevBalancer(backends: backends)
        case .leastLatency: return LeastLatencyBalancer(backends: backends)
        }
    }
}
