import CSwitchyard
import Glibc
import Logging
import Synchronization
import SwitchyardCore

/// Runs one Switchyard instance from a `Configuration`: services, listeners, workers, health
/// checkers and the admin socket; reloads the configuration file and keeps the state file.
/// Its subjects have a file each: `Instance+Running` (start and stop), `+Signals` (the main
/// thread's loop), `+Services` (the service set and reload), `+Listeners`, `+StateFile`,
/// `+Admin` (admin wiring), `+Metrics`, `+Status` (the status page), `+Systemd`, and in `Takeover/` the two sides of a
/// takeover (`+HandOver`, `+TakeOver`) and SIGUSR2 upgrades (`+Upgrade`).
///
/// Threads: `run()` on the main thread (it owns the workers and waits for signals); `reload()`
/// and the admin hooks on the admin thread or the main thread (SIGHUP), serialised by
/// `reloadLock`. Lock order: `reloadLock`, then `state`; nothing else is held with `state`.
public final class Instance: Sendable {
    struct State {
        var configuration: Configuration
        var services: [String: ServiceRuntime] = [:]
        var listeners: [ListenerEntry] = []
        var nextListenerID = 0
        var overrides = RuntimeOverrides()
        var waker: WorkerWaker?
        var discovery: ServiceDiscovery?
        /// `instance drain` / `instance ready`, and `withdraw-delay` at SIGTERM.
        var readiness = InstanceReadiness.ready
    }

    /// The file `reload` reads; nil when started from the command line.
    public let configFile: String?
    let logger: Logger
    let context: WorkerContext
    let state: Mutex<State>
    let build: BuildInfo
    /// Connections per second per backend, sampled by the main loop.
    let rates = Mutex(ConnectionRates())
    /// The metrics listener, while one runs (it also serves the status page when `status` is
    /// the metrics address).
    let metricsServer = Mutex<ControlHTTPServer?>(nil)
    /// The status page's listener when it has an address of its own, while one runs.
    let statusServer = Mutex<ControlHTTPServer?>(nil)
    /// The status page's history.
    let statusSampler = StatusSampler()
    /// The read-only admin socket (`admin-socket-readonly`), while one runs.
    let readOnlyAdmin = Mutex<AdminServer?>(nil)
    let reloadLock = Mutex(())
    private let descriptorLimit: Int
    /// `takeover` and `takeover commit` as the running process, and whether it was taken over.
    let takeover = TakeoverState()
    /// Session ticket keys of every terminating service (`tls-ticket-rotation`).
    let ticketKeys = TLSTicketKeys()
    /// `NOTIFY_SOCKET`, read at start (the main thread, before any other thread).
    let systemd: SystemdNotifier

    /// `configuration` must have passed `validate()`. Throws when the access log cannot be opened.
    public init(configuration: Configuration, configFile: String?, build: BuildInfo = BuildInfo(version: "unknown", commit: "unknown"),
                logger: Logger) throws(ConfigError) {
        self.configFile = configFile
        self.logger = logger
        self.build = build
        descriptorLimit = WorkerGroup.raiseDescriptorLimit()
        let global = configuration.global
        let workers = global.workers ?? max(1, sysconf(Int32(_SC_NPROCESSORS_ONLN)))
        var relay = RelayConfiguration()
        relay.mode = global.relay
        relay.bufferSize = global.bufferSize * 1024
        relay.buffersPerWorker = UInt32(global.buffers)
        relay.pipeSize = global.pipeSize * 1024
        relay.sourceTableSize = global.sourceTableSize
        relay.busyPolling = global.busyPolling
        relay.parkedMemory = global.parkedMemory.map { $0 << 20 }
        // Descriptors: 2 per connection, 2 per pipe, a few per worker, and a reserve. Pipes are
        // only for directions that stream, so they get a small share (1/64) of the limit;
        // beyond it a direction keeps copying.
        relay.pipesPerWorker = max(4, min(256, descriptorLimit / 64 / workers))
        let listenerCount = configuration.listeners.count
        let reserved = 64 + workers * (2 * relay.pipesPerWorker + listenerCount + 4)
        let affordable = max(1, (descriptorLimit - reserved) / 2)
        relay.maxConnections = global.maxConnections ?? affordable
        if let requested = global.maxConnections, requested > affordable {
            logger.warning("max-connections \(requested) exceeds what the descriptor limit \(descriptorLimit) allows (\(affordable)); accepts will back off when descriptors run out")
        }
        var accessLog: AccessLogWriter?
        if let destination = global.accessLog {
            do {
                accessLog = try AccessLogWriter(
                    destination: AccessLogDestination(destination), format: global.accessLogFormat, workers: workers, logger: logger)
            } catch {
                throw ConfigError("cannot open the access log: \(error)")
            }
        }
        context = WorkerContext(configuration: relay, workers: workers, logger: logger, accessLog: accessLog)
        state = Mutex(State(configuration: configuration))
        systemd = SystemdNotifier.fromEnvironment(logger: logger)
    }
}
