import Logging
import Synchronization
import SwitchyardCore

/// State shared by the workers, the signal handling main thread and the control side.
///
/// Thread safety: immutable configuration plus atomics; no locks are taken by workers.
public final class WorkerContext: Sendable {
    public let configuration: RelayConfiguration
    /// The listeners (and through them the services) the workers serve.
    public let listeners: ListenerDirectory
    public let workerCount: Int
    public let logger: Logger
    public let startedAt: ContinuousClock.Instant

    /// Open client connections in the whole process.
    public let openConnections = Atomic<Int>(0)
    /// Every worker's wake-up eventfd, by worker index (set before the workers start): a worker
    /// wakes another to hand it a queued client's backend slot.
    let workerWakeFDs = Mutex<[Int32]>([])
    /// Client connections accepted since start.
    public let totalConnections = Atomic<Int>(0)
    /// Bytes relayed and flushed by workers, process-wide (client→backend, backend→client).
    public let bytesToBackends = Atomic<Int>(0)
    public let bytesToClients = Atomic<Int>(0)
    /// Set on SIGTERM/SIGINT: stop accepting, let open connections finish.
    public let stopAccepting = Atomic<Bool>(false)
    /// Set when the shutdown grace ends: close whatever is still open.
    public let closeEverything = Atomic<Bool>(false)

    /// Each worker's figures as of its last tick, for the metrics scrape.
    public let figures: PublishedFigures<WorkerFigures>
    /// The access log, when one is configured; each worker has its own queue to it.
    public let accessLog: AccessLogWriter?
    /// Per-client controls: the per-source counts and every listener's `max-connection-rate`.
    public let sourceTable: SourceTable
    let acceptPacers = AcceptPacers()
    /// The contexts of TLS to backends (`backend-tls`), made by the control side.
    public let backendTLS = BackendTLSContexts()

    public init(configuration: RelayConfiguration, workers: Int, logger: Logger, accessLog: AccessLogWriter? = nil) {
        self.configuration = configuration
        self.workerCount = workers
        self.figures = PublishedFigures(workers: workers, initial: WorkerFigures())
        self.accessLog = accessLog
        self.listeners = ListenerDirectory(workers: workers)
        self.sourceTable = SourceTable(entries: configuration.sourceTableSize)
        self.logger = logger
        self.startedAt = .now
    }
}

extension WorkerContext {
    /// Process-wide figures for the admin socket's `show stats` (any thread).
    public func processStats(workers: Int, relayMode: String, balance: String) -> ProcessStats {
        ProcessStats(
            uptime: ContinuousClock.now - startedAt, workers: workers, relayMode: relayMode, balance: balance,
            openConnections: openConnections.load(ordering: .relaxed),
            totalConnections: totalConnections.load(ordering: .relaxed),
            bytesFromClients: bytesToBackends.load(ordering: .relaxed),
            bytesToClients: bytesToClients.load(ordering: .relaxed))
    }
}
