import ArgumentParser
import Glibc
import Logging
import SwitchyardCore
import SwitchyardIO

struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Accept TCP connections and relay each to a backend.",
        discussion: """
        BACKEND is HOST:PORT[,weight=N]; write IPv6 addresses as [ADDR]:PORT. Durations take a \
        unit: 500ms, 2s, 1m.
        """
    )

    @Option(name: .customLong("listen"), help: ArgumentHelp(
        "Address to accept clients on, as HOST:PORT; repeat the option to listen on several.",
        valueName: "HOST:PORT"), transform: ArgumentValue.endpoint)
    var listen: [Endpoint] = []

    @Option(help: "Worker threads, each with its own io_uring ring and listener. Defaults to one per online CPU.")
    var workers: Int?

    @Option(help: "How bytes move: copy (provided buffers), splice (zero copy through pipes) or auto (copy, then splice once a direction streams).")
    var relay: RelayMode = .auto

    @Option(help: "How a backend is chosen for each new client.")
    var balance: BalanceAlgorithm = .roundRobin

    @Option(help: ArgumentHelp("How long a backend connect may take before the next backend is tried.", valueName: "D"),
            transform: ArgumentValue.positiveDuration)
    var connectTimeout: Duration = .seconds(5)

    @Option(help: ArgumentHelp("Close a connection after this long with no bytes in either direction. Off by default.", valueName: "D"),
            transform: ArgumentValue.positiveDuration)
    var idleTimeout: Duration?

    @Option(help: "Most client connections open at once; further clients are closed at once. Defaults to what the descriptor limit allows.")
    var maxConnections: Int?

    @Option(help: ArgumentHelp("After SIGTERM or SIGINT, how long open connections may continue before they are closed.", valueName: "D"),
            transform: ArgumentValue.duration)
    var shutdownGrace: Duration = .seconds(30)

    @Option(help: ArgumentHelp("Size of one receive buffer of the copy relay, in KiB (4 to 1024); each worker has --buffers of them.", valueName: "KiB"))
    var bufferSize: Int = 64

    @Option(help: "Receive buffers per worker, a power of two from 16 to 32768. Memory is only used once a buffer has been filled.")
    var buffers: Int = 1024

    @Option(help: ArgumentHelp("Size each splice pipe is grown to with F_SETPIPE_SZ, in KiB (64 to 16384).", valueName: "KiB"))
    var pipeSize: Int = 1024

    @Option(help: "Lowest level of log line written to standard error.")
    var logLevel: Logger.Level = .info

    @Option(help: ArgumentHelp("Time between two health checks of one backend.", valueName: "D"),
            transform: ArgumentValue.positiveDuration)
    var healthInterval: Duration = .seconds(2)

    @Option(help: ArgumentHelp("Time one health check may take, from connect to the expected reply.", valueName: "D"),
            transform: ArgumentValue.positiveDuration)
    var healthTimeout: Duration = .seconds(1)

    @Option(help: "Consecutive successful checks that bring a down backend up (1 to 100).")
    var rise: Int = 2

    @Option(help: "Consecutive failed checks (or failed client connects) that take a backend down (1 to 100).")
    var fall: Int = 3

    @Option(help: ArgumentHelp("Bytes a health check writes once connected; escapes \\r \\n \\t \\0 \\\\ \\xHH are decoded.", valueName: "TEXT"))
    var healthSend: String?

    @Option(help: ArgumentHelp("Text a health check's reply must contain (same escapes); without it a connect is enough.", valueName: "TEXT"))
    var healthExpect: String?

    @Option(help: "Whether the expected text may appear anywhere in the reply (contains) or must start it (prefix).")
    var healthExpectMatch: HealthCheckConfig.ExpectMatch = .contains

    @Flag(help: "Do not run health checks: every backend stays up unless drained or in maintenance.")
    var noHealthCheck = false

    @Option(help: ArgumentHelp("Path of the admin UNIX socket. Defaults to $XDG_RUNTIME_DIR/switchyard.sock, else /tmp/switchyard-UID.sock.", valueName: "PATH"))
    var adminSocket: String?

    @Flag(help: "Do not open the admin socket.")
    var noAdminSocket = false

    @Argument(help: ArgumentHelp("The backends, as HOST:PORT[,weight=N].", valueName: "BACKEND"),
              transform: ArgumentValue.backend)
    var backends: [BackendSpec] = []

    func validate() throws {
        if listen.isEmpty { throw ValidationError("--listen HOST:PORT is required") }
        if backends.isEmpty { throw ValidationError("at least one BACKEND (HOST:PORT) is required") }
        if let workers, !(1...256).contains(workers) {
            throw ValidationError("--workers \(workers) must be from 1 to 256")
        }
        if !(4...1024).contains(bufferSize) { throw ValidationError("--buffer-size \(bufferSize) must be from 4 to 1024 (KiB)") }
        if !(16...32768).contains(buffers) || buffers.nonzeroBitCount != 1 {
            throw ValidationError("--buffers \(buffers) must be a power of two from 16 to 32768")
        }
        if !(64...16384).contains(pipeSize) { throw ValidationError("--pipe-size \(pipeSize) must be from 64 to 16384 (KiB)") }
        if let maxConnections, maxConnections < 1 {
            throw ValidationError("--max-connections \(maxConnections) must be at least 1")
        }
        _ = try healthConfiguration()
        var seen = Set<String>()
        for backend in backends where !seen.insert(backend.endpoint.description).inserted {
            throw ValidationError("backend \(backend.endpoint) is listed twice")
        }
    }

    func healthConfiguration() throws(ConfigError) -> HealthCheckConfig {
        var configuration = HealthCheckConfig(
            interval: healthInterval, timeout: healthTimeout, rise: rise, fall: fall, expectMatch: healthExpectMatch)
        if let healthSend { configuration.send = try HealthCheckConfig.decodeEscapes(healthSend) }
        if let healthExpect { configuration.expect = try HealthCheckConfig.decodeEscapes(healthExpect) }
        try configuration.validate()
        return configuration
    }

    /// Feeds the workers' connect results into the health checker (passive checks).
    static func passiveReporter(_ checker: HealthChecker) -> @Sendable (Int, Bool, String) -> Void {
        { id, success, reason in checker.recordConnectResult(backendID: id, success: success, reason: reason) }
    }

    func run() throws {
        blockTerminationSignals()
        let level = logLevel
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "switchyard")

        let listenEndpoints: [Endpoint]
        let resolvedBackends: [BackendSpec]
        do {
            listenEndpoints = try listen.map(resolve)
            resolvedBackends = try backends.map { spec in
                var resolved = spec
                resolved.endpoint = try resolve(spec.endpoint)
                return resolved
            }
        } catch let error as ConfigError {
            fail(error.message)
        }

        let workerCount = workers ?? max(1, sysconf(Int32(_SC_NPROCESSORS_ONLN)))
        let descriptorLimit = Server.raiseDescriptorLimit()
        var configuration = RelayConfiguration()
        configuration.mode = relay
        configuration.connectTimeout = connectTimeout
        configuration.idleTimeout = idleTimeout
        configuration.bufferSize = bufferSize * 1024
        configuration.buffersPerWorker = UInt32(buffers)
        configuration.pipeSize = pipeSize * 1024
        // Descriptors: 2 per connection, 2 per pipe, a few per worker, and a reserve. Pipes are
        // only for directions that stream, so they get a small share (1/64) of the limit;
        // beyond it a direction keeps copying.
        configuration.pipesPerWorker = max(4, min(256, descriptorLimit / 64 / workerCount))
        let reserved = 64 + workerCount * (2 * configuration.pipesPerWorker + listenEndpoints.count + 4)
        let affordable = max(1, (descriptorLimit - reserved) / 2)
        configuration.maxConnections = maxConnections ?? affordable
        if let maxConnections, maxConnections > affordable {
            logger.warning("--max-connections \(maxConnections) exceeds what the descriptor limit \(descriptorLimit) allows (\(affordable)); accepts will back off when descriptors run out")
        }

        if balance == .roundRobin, resolvedBackends.contains(where: \.weightGiven) {
            logger.notice("round-robin ignores backend weights; use --balance weighted to honour them")
        }
        let registry = BackendRegistry(backends: resolvedBackends, algorithm: balance)
        let health: HealthChecker?
        do {
            health = noHealthCheck ? nil : try HealthChecker(registry: registry, config: try healthConfiguration())
        } catch let error as ConfigError {
            fail(error.message)
        } catch {
            fail("cannot start health checks: \(error)")
        }
        let context = ServerContext(
            configuration: configuration, registry: registry, logger: logger,
            connectObserver: health.map(Serve.passiveReporter))

        // The admin socket comes first: a live instance holding it must stop this one early.
        let admin: AdminServer?
        let socketPath = adminSocket ?? AdminSocketPath.current()
        if noAdminSocket {
            admin = nil
        } else {
            let relayMode = relay.rawValue
            let algorithm = balance.rawValue
            let controller = AdminController(
                registry: registry,
                processStats: { context.processStats(workers: workerCount, relayMode: relayMode, balance: algorithm) },
                lastCheckText: { id in health?.lastCheckText(backendID: id) },
                resolve: resolve)
            do {
                admin = try AdminServer(socketPath: socketPath, controller: controller)
            } catch {
                fail("\(error)")
            }
        }

        let server = Server(context: context, listen: listenEndpoints, workers: workerCount)
        do {
            try server.start()
        } catch {
            admin?.stop()
            fail(error.message)
        }
        // Workers pick up new snapshots on their own at each pick; waking them makes
        // `shutdown BACKEND` close connections at once.
        let waker = server.waker
        registry.addPublishObserver { waker.wake() }
        do {
            try health?.start()
            try admin?.start()
        } catch {
            admin?.stop()
            fail("cannot start the control threads: \(error)")
        }
        let backendList = resolvedBackends.map { $0.weightGiven ? "\($0.endpoint) (weight \($0.weight))" : "\($0.endpoint)" }
        logger.info("switchyard listening on \(server.boundEndpoints.map(\.description).joined(separator: ", ")); \(workerCount) worker(s), relay \(relay), balance \(balance), max \(configuration.maxConnections) connections; backends: \(backendList.joined(separator: ", "))")
        if !noHealthCheck, let config = try? healthConfiguration() { logger.info("health checks: \(config.summary)") } else { logger.info("health checks off") }
        if admin != nil { logger.info("admin socket: \(socketPath)") }
        server.runUntilSignalled(grace: shutdownGrace)
        admin?.stop()
        health?.stop()
    }
}
