import Synchronization

/// Operator intent for a backend, as HAProxy names it.
public enum AdminState: String, Sendable, CaseIterable {
    /// Normal: takes new connections when healthy.
    case ready
    /// No new connections; open ones finish. Health checks continue.
    case drain
    /// No new connections and health checks paused.
    case maint
}

/// The health checker's verdict and the text of the last check.
public struct HealthVerdict: Sendable, Equatable {
    public var isUp: Bool
    public var lastCheck: String
    public init(isUp: Bool, lastCheck: String) {
        self.isUp = isUp
        self.lastCheck = lastCheck
    }
    public static let assumedUp = HealthVerdict(isUp: true, lastCheck: "not checked yet")
}

/// One backend in a snapshot. Values are immutable once published; `stats` is shared and atomic.
public struct BackendState: Sendable {
    /// Stable identity for the life of the process; never reused after `remove`.
    public let id: Int
    public var spec: BackendSpec
    /// `HOST:PORT`, kept so that workers never build the string per connection.
    public let name: String
    public var health: HealthVerdict
    public var admin: AdminState
    /// Bumped by `shutDownSessions(cause:)`: workers close the backend's connections when it changes.
    public var shutdownEpoch: Int
    /// Why the epoch last moved: the cause its closed connections are counted under.
    public var shutdownCause: TerminationCause = .adminShutdown
    /// A reload removed it from the configuration: it takes no new connections and disappears
    /// once its open ones have finished.
    public var removing: Bool
    /// Found by the service's DNS discovery (which also takes it away again).
    public var discovered: Bool
    public let stats: BackendStats
    /// When it last came up or was added, while its slow-start ramp runs; nil otherwise.
    public var rampStartedAt: ContinuousClock.Instant?
    /// What its agent has said (`agent-port`); nil without an agent or before its first check.
    public var agent: AgentVerdict? = nil

    public init(id: Int, spec: BackendSpec, health: HealthVerdict = .assumedUp, admin: AdminState = .ready) {
        self.id = id
        self.spec = spec
        self.name = spec.endpoint.description
        self.health = health
        self.admin = admin
        self.shutdownEpoch = 0
        self.removing = false
        self.discovered = false
        self.stats = BackendStats()
    }

    /// Whether the balancer may pick it for a new connection: up, ready and with a weight, by
    /// the health check, the operator and its agent together (`AgentCheck.swift`).
    public var selectable: Bool { isUp && effectiveAdmin == .ready && effectiveWeight > 0 }

    /// The state shown to operators: a backend being removed drains.
    public var displayedState: AdminState { removing ? .drain : admin }

    /// How far its slow-start ramp has gone at `now`, from above 0 to 1 (1: full weight).
    public func rampProgress(window: Duration?, at now: ContinuousClock.Instant) -> Double {
        guard let window, let start = rampStartedAt else { return 1 }
        let elapsed = now - start
        guard elapsed < window else { return 1 }
        return max(elapsed / window, 0)
    }
}

/// Passive health reporting: `(backendID, success, reason)`, called on worker threads; must be
/// cheap on success.
public typealias ConnectObserver = @Sendable (Int, Bool, String) -> Void

/// An immutable view of every backend and the balancer built over them.
///
/// Built by the control side (admin socket, health checker) and adopted by each worker;
/// workers only read it.
public final class BackendSnapshot: Sendable {
    public let version: UInt64
    /// The service these backends belong to.
    public let service: String
    public let backends: [BackendState]
    public let algorithm: BalanceAlgorithm
    public let settings: ServiceSettings
    /// Where workers report connect results (the service's health checker), if anywhere.
    public let connectObserver: ConnectObserver?
    /// The algorithm over the first tier of primaries (`tierBalancers` has every tier; workers
    /// copy those). Heavy tables inside are shared, not copied.
    public let balancer: any Balancer
    /// The same algorithm over the `backup` backends (the last tier); nil when the service has none.
    public let backupBalancer: (any Balancer)?
    /// Whether some primary backend is selectable.
    public let anyPrimarySelectable: Bool
    /// The failover tiers (`priority`, backups last) and the share of clients each takes.
    public let failover: FailoverTiers
    /// The algorithm over each tier's members, by tier index (workers copy them).
    public let tierBalancers: [any Balancer]
    /// Whether some backend has `max-connections` (clients may then wait in the queue).
    public let hasConnectionLimits: Bool
    /// Whether some backend was still ramping up (slow start) when this snapshot was built:
    /// the registry publishes again as the ramp goes on.
    public let ramping: Bool
    /// For a service that routes by SNI: the table a worker looks server names up in.
    public let sniRoutes: SNIRoutes<String>?

    /// Slow start: while some backend ramps, every weight is scaled by this so that a backend of
    /// weight 1 can still start from a small share.
    public static let rampScale = 16

    public init(
        version: UInt64, backends: [BackendState], algorithm: BalanceAlgorithm, service: String = ServiceConfiguration.defaultName,
        settings: ServiceSettings = ServiceSettings(), connectObserver: ConnectObserver? = nil,
        now: ContinuousClock.Instant = .now
    ) {
        self.version = version
        self.service = service
        self.backends = backends
        self.algorithm = algorithm
        self.settings = settings
        self.connectObserver = connectObserver
        self.sniRoutes = try? settings.routing?.table()
        let progress = backends.map { $0.rampProgress(window: settings.slowStart(of: $0.spec), at: now) }
        let ramping = algorithm.honoursWeights && progress.contains { $0 < 1 }
        self.ramping = ramping
        let weights = zip(backends, progress).map { backend, progress in
            guard ramping else { return backend.effectiveWeight }
            let full = backend.effectiveWeight * Self.rampScale
            return backend.effectiveWeight == 0 ? 0 : max(1, Int((Double(full) * progress).rounded(.up)))
        }
        let failover = FailoverTiers(backends: backends, thresholdPercent: settings.failoverThreshold)
        self.failover = failover
        func members(_ belongs: (Int) -> Bool) -> [BalancerBackend] {
            zip(backends, weights).enumerated().map { index, pair in
                BalancerBackend(
                    weight: pair.1, selectable: pair.0.selectable && belongs(index), stats: pair.0.stats,
                    key: StableHash.hash(Array(pair.0.spec.endpoint.description.utf8)))
            }
        }
        let tierBalancers = failover.tiers.indices.map { tier in
            algorithm.makeBalancer(members { failover.tierOfBackend[$0] == tier })
        }
        self.tierBalancers = tierBalancers
        let firstPrimary = failover.tiers.firstIndex { $0.priority != nil }
        self.balancer = firstPrimary.map { tierBalancers[$0] } ?? algorithm.makeBalancer(members { _ in false })
        self.backupBalancer = failover.tiers.last?.priority == nil ? tierBalancers.last : nil
        self.anyPrimarySelectable = backends.contains { $0.selectable && !$0.spec.backup }
        self.hasConnectionLimits = backends.contains { $0.spec.maxConnections != nil }
    }

    public var anySelectable: Bool { backends.contains { $0.selectable } }

    public func backend(id: Int) -> BackendState? { backends.first { $0.id == id } }
}

/// The control plane's single source of truth for backends.
///
/// Its backends change only through `apply(_:)`, by `PoolEdit` values (nothing else edits them).
/// Thread safety: any thread may call `apply`; changes are serialised by a lock that workers
/// never take on their pick path. Workers call `snapshotIfNewer(than:)`, which is one atomic load
/// unless a change was published.
public final class BackendRegistry: Sendable {
    private struct State {
        var backends: [BackendState]
        var nextID: Int
        var version: UInt64
        var algorithm: BalanceAlgorithm
        var settings: ServiceSettings
        var connectObserver: ConnectObserver?

        func snapshot(service: String) -> BackendSnapshot {
            BackendSnapshot(version: version, backends: backends, algorithm: algorithm, service: service,
                            settings: settings, connectObserver: connectObserver)
        }
    }

    /// The service these backends belong to.
    public let service: String
    /// Clients waiting for a backend below its `max-connections`.
    public let queue = ConnectionQueue()
    private let state: Mutex<State>
    private let published: Mutex<BackendSnapshot>
    private let publishedVersion: Atomic<UInt64>
    /// Called after each publish, outside the state lock (the I/O layer wakes its workers here).
    private let onPublish: Mutex<[@Sendable () -> Void]>

    public init(
        backends specs: [BackendSpec], algorithm: BalanceAlgorithm, service: String = ServiceConfiguration.defaultName,
        settings: ServiceSettings = ServiceSettings()
    ) {
        self.service = service
        let backends = specs.enumerated().map { BackendState(id: $0.offset, spec: $0.element) }
        let initial = State(backends: backends, nextID: backends.count, version: 1, algorithm: algorithm, settings: settings)
        state = Mutex(initial)
        published = Mutex(initial.snapshot(service: service))
        publishedVersion = Atomic(1)
        onPublish = Mutex([])
    }

    /// The algorithm in force.
    public var algorithm: BalanceAlgorithm { snapshot().algorithm }

    /// Changes the algorithm and settings (a reload); publishes only if something changed.
    public func reconfigure(algorithm: BalanceAlgorithm, settings: ServiceSettings) {
        publish { state in
            guard state.algorithm != algorithm || state.settings != settings else { return false }
            state.algorithm = algorithm
            state.settings = settings
            return true
        }
    }

    /// Sets where workers report connect results (nil: nowhere) and publishes.
    public func setConnectObserver(_ observer: ConnectObserver?) {
        publish { state in
            state.connectObserver = observer
            return true
        }
    }

    private func publish(_ change: (inout State) -> Bool) {
        publish { (state: inout State) -> ((), Bool) in ((), change(&state)) }
    }

    /// The one publish path: applies `change` under the state lock and, when it reports a
    /// change, builds the next version's snapshot and publishes it before the lock is released.
    /// Publishing under the lock keeps snapshots in version order: two updates on different
    /// threads can never leave the older one published over the newer one (issue 27), so a
    /// change acknowledged to its caller stays visible. Workers never take this lock; they read
    /// `published`, whose own lock is only ever taken inside this one (never the reverse).
    /// Observers run after the lock is released.
    private func publish<R, E: Error>(_ change: (inout State) throws(E) -> (R, Bool)) throws(E) -> R {
        let (result, changed) = try state.withLock { (state: inout State) throws(E) -> (R, Bool) in
            let (result, changed) = try change(&state)
            guard changed else { return (result, false) }
            state.version += 1
            let snapshot = state.snapshot(service: service)
            published.withLock { $0 = snapshot }
            publishedVersion.store(snapshot.version, ordering: .releasing)
            return (result, true)
        }
        if changed {
            for observer in onPublish.withLock({ $0 }) { observer() }
        }
        return result
    }

    /// The current snapshot.
    public func snapshot() -> BackendSnapshot {
        published.withLock { $0 }
    }

    /// The current snapshot if its version differs from `version`, else nil (one atomic load).
    public func snapshotIfNewer(than version: UInt64) -> BackendSnapshot? {
        guard publishedVersion.load(ordering: .acquiring) != version else { return nil }
        return snapshot()
    }

    /// Registers a callback run after every publish.
    public func addPublishObserver(_ observer: @escaping @Sendable () -> Void) {
        onPublish.withLock { $0.append(observer) }
    }

    /// Applies `edit` (see `PoolEdit` for each rule) and publishes a new snapshot if the
    /// backends changed; a refused edit changes nothing.
    /// The snapshot (and any Maglev table) is built here, on the caller's thread, never a worker's.
    @discardableResult
    public func apply(_ edit: PoolEdit) throws(PoolEditRefusal) -> PoolEditResult {
        try apply([edit])[0]
    }

    /// Applies `edits` in order as one change: one snapshot is published for all of them (a
    /// reload's), or none when one is refused.
    @discardableResult
    public func apply(_ edits: [PoolEdit]) throws(PoolEditRefusal) -> [PoolEditResult] {
        try publish { (state: inout State) throws(PoolEditRefusal) -> ([PoolEditResult], Bool) in
            var pool = BackendPool(backends: state.backends, nextID: state.nextID, settings: state.settings, now: .now)
            var results: [PoolEditResult] = []
            for edit in edits { results.append(try pool.apply(edit)) }
            state.nextID = pool.nextID
            let republish = results.contains { $0.republish }
            guard republish || !Self.same(pool.backends, state.backends) else { return (results, false) }
            var backends = pool.backends
            Self.startRamps(&backends, previous: state.backends, settings: state.settings)
            SessionShutdown.mark(&backends, previous: state.backends, settings: state.settings)
            state.backends = backends
            return (results, true)
        }
    }

    /// Slow start: a backend that became selectable, or was added, starts its ramp now.
    private static func startRamps(_ backends: inout [BackendState], previous: [BackendState], settings: ServiceSettings) {
        let now = ContinuousClock.now
        for index in backends.indices where settings.slowStart(of: backends[index].spec) != nil {
            let backend = backends[index]
            if let old = previous.first(where: { $0.id == backend.id }) {
                if !old.selectable && backend.selectable { backends[index].rampStartedAt = now }
            } else if backend.selectable {
                backends[index].rampStartedAt = now
            }
        }
    }

    private static func same(_ a: [BackendState], _ b: [BackendState]) -> Bool {
        guard a.count == b.count else { return false }
        for (x, y) in zip(a, b) {
            if x.id != y.id || x.spec != y.spec || x.health != y.health || x.admin != y.admin
                || x.shutdownEpoch != y.shutdownEpoch || x.removing != y.removing || x.rampStartedAt != y.rampStartedAt
                || x.agent != y.agent {
                return false
            }
        }
        return true
    }
}
