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

    @Option(help: "Lowest level of log line written to standard error.")
    var logLevel: Logger.Level = .info

    @Argument(help: ArgumentHelp("The backends, as HOST:PORT[,weight=N].", valueName: "BACKEND"),
              transform: ArgumentValue.backend)
    var backends: [BackendSpec] = []

    func validate() throws {
        if listen.isEmpty { throw ValidationError("--listen HOST:PORT is required") }
        if backends.isEmpty { throw ValidationError("at least one BACKEND (HOST:PORT) is required") }
        if let workers, !(1...256).contains(workers) {
            throw ValidationError("--workers \(workers) must be from 1 to 256")
        }
        if let maxConnections, maxConnections < 1 {
            throw ValidationError("--max-connections \(maxConnections) must be at least 1")
        }
        var seen = Set<String>()
        for backend in backends where !seen.insert(backend.endpoint.description).inserted {
            throw ValidationError("backend \(backend.endpoint) is listed twice")
        }
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
        // Descriptors: 2 per connection, 2 per pipe, a few per worker, and a reserve.
        configuration.pipesPerWorker = max(4, min(256, descriptorLimit / 8 / workerCount))
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
        let context = ServerContext(configuration: configuration, registry: registry, logger: logger)
        let server = Server(context: context, listen: listenEndpoints, workers: workerCount)
        do {
            try server.start()
        } catch {
            fail(error.message)
        }
        let backendList = resolvedBackends.map { $0.weightGiven ? "\($0.endpoint) (weight \($0.weight))" : "\($0.endpoint)" }
        logger.info("switchyard listening on \(server.boundEndpoints.map(\.description).joined(separator: ", ")); \(workerCount) worker(s), relay \(relay), balance \(balance), max \(configuration.maxConnections) connections; backends: \(backendList.joined(separator: ", "))")
        server.runUntilSignalled(grace: shutdownGrace)
    }
}
