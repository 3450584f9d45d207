import Logging
import Synchronization
import SwitchyardCore

/// Everything a worker needs to know, fixed at startup.
public struct RelayConfiguration: Sendable {
    public var mode: RelayMode = .auto
    public var maxConnections: Int = 1000
    /// Size of one provided buffer (copy relay).
    public var bufferSize: Int = 64 * 1024
    /// Provided buffers per worker (a power of two).
    public var buffersPerWorker: UInt32 = 1024
    /// Requested pipe size (`F_SETPIPE_SZ`) for splicing.
    public var pipeSize: Int = 1 << 20
    /// Pipes one worker may hold at once; directions beyond it keep copying.
    public var pipesPerWorker: Int = 256
    /// In `auto`, consecutive full-buffer reads after which a direction switches to splice.
    public var spliceAfterFullReads: Int = 4
    /// Bytes one worker may park (`parked-memory`); nil: 64 MiB or the pool's size if larger.
    public var parkedMemory: Int?
    /// Entries of the per-source table (`source-table-size`).
    public var sourceTableSize = GlobalSettings.defaultSourceTableSize

    public init() {}
}

/// State shared by the workers, the signal handling main thread and the control side.
///
/// Thread safety: immutable configuration plus atomics; no locks are taken by workers.
public final class ServerContext: Sendable {
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

extension ServerContext {
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
