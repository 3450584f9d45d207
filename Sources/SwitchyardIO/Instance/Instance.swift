import CSwitchyard
import Glibc
import Logging
import Synchronization
import SwitchyardCore

/// Runs one Switchyard instance from a `Configuration`: services, listeners, workers, health
/// checkers and the admin socket; reloads the configuration file and keeps the state file.
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
    }

    /// The file `reload` reads; nil when started from the command line.
    public let configFile: String?
    let logger: Logger
    let context: WorkerContext
    let state: Mutex<State>
    let build: BuildInfo
    /// Connections per second per backend, sampled by the main loop.
    let rates = Mutex(ConnectionRates())
    /// The metrics listener, while one runs.
    let metricsServer = Mutex<MetricsServer?>(nil)
    /// The read-only admin socket (`admin-socket-readonly`), while one runs.
    let readOnlyAdmin = Mutex<AdminServer?>(nil)
    let reloadLock = Mutex(())
    private let descriptorLimit: Int
    /// `takeover` and `takeover commit` as the running process, and whether it was taken over.
    let takeover = TakeoverState()
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

    // MARK: - Running

    /// `run(takeover:)` (in `Instance+Takeover.swift`): starts everything, serves, shuts down.
    func runUntilStopped(takeover takingOver: Bool) throws(ConfigError) {
        let configuration = state.withLock { $0.configuration }
        let global = configuration.global
        // Before any thread starts: reading the variables unsets them.
        let activated = try SocketActivation.takeListeners(logger: logger)
        let handover = takingOver ? try receiveHandover(global) : nil
        var overrides = RuntimeOverrides()
        if let handover {
            overrides = adoptHandedOverState(handover, global)
        } else if let stateFile = global.stateFile {
            overrides = try Self.loadState(stateFile)
        }

        var services: [String: ServiceRuntime] = [:]
        for service in configuration.services {
            if service.balance == .roundRobin, service.backends.contains(where: \.weightGiven) {
                logger.notice("service \(service.name): round-robin ignores backend weights; use balance weighted to honour them")
            }
            services[service.name] = ServiceRuntime(configuration: try Self.resolved(service), logger: logger)
        }
        if configuration.services.contains(where: ServiceDiscovery.needed) {
            let discovery = try ServiceDiscovery(resolvers: global.resolvers, logger: logger)
            state.withLock { $0.discovery = discovery }
            for service in configuration.services where ServiceDiscovery.needed(by: service) {
                discovery.watch(service, registry: services[service.name]!.registry)
            }
            // A dns pool is empty until its first answer: wait for it (bounded) before accepting.
            discovery.waitForFirstAnswers(timeout: .seconds(3))
        }
        applyOverrides(overrides, to: services, atStart: true)
        state.withLock { state in
            state.services = services
            state.overrides = overrides
        }

        // The admin socket comes first: a live instance holding it must stop this one early.
        let admin = try handover == nil ? startAdminServer(global) : adoptAdminServer(handover!)
        // A process taking over makes its read-only socket once the running one let go of it.
        do {
            if handover == nil { try startReadOnlyAdminServer(global) }
        } catch {
            admin?.stop()
            throw error
        }
        // Metrics listen before clients can connect (a listening socket completes their
        // handshakes from listen(2) on, before any worker runs), so a scrape never finds the
        // port closed while the service answers.
        do {
            if let endpoint = global.metrics { try startMetrics(on: endpoint, takingOver: handover != nil) }
        } catch {
            stopAdminSockets(admin)
            throw error
        }
        // Health checkers start before the workers: starting one publishes the snapshot that
        // carries its passive-report sink, and a snapshot published after the first clients
        // would restart every balancer's rotation.
        do {
            for service in configuration.services { try services[service.name]!.startHealth(service.health) }
            for runtime in services.values { runtime.startAgents() }  // Agent checks (issue 22).
        } catch {
            metricsServer.withLock { $0 }?.stop()
            stopAdminSockets(admin)
            throw ConfigError("cannot start health checks: \(error)")
        }
        let server = WorkerGroup(context: context)
        var entries: [ListenerEntry] = []
        do {
            entries = try makeListeners(configuration, services: services, activated: activated, handover: handover)
            state.withLock { $0.listeners = entries }
            context.listeners.publish(entries, services: services.mapValues(\.registry))
            try server.start()
        } catch {
            if state.withLock({ $0.listeners.isEmpty }) {
                for entry in entries { Self.closeDescriptors(entry) }
            }
            metricsServer.withLock { $0 }?.stop()
            stopAdminSockets(admin)
            throw error
        }
        let waker = server.waker
        state.withLock { $0.waker = waker }
        for runtime in services.values {
            runtime.registry.addPublishObserver { waker.wake() }
        }
        do {
            if let handover {
                try commitTakeover(handover, server: server, admin: admin)
                do {
                    try startReadOnlyAdminServer(global)
                } catch {
                    logger.error("took over without the read-only admin socket: \(error.message)")
                }
            }
            try admin?.start()
            try context.accessLog?.start()
        } catch let error as ConfigError {
            throw error
        } catch {
            stopAdminSockets(admin)
            throw ConfigError("cannot start the control threads: \(error)")
        }
        logStartup(configuration, admin: admin)
        announceReady(takeover: handover)

        serve()
        // Taken over: the admin socket is the new process's, but clients already connected
        // here may watch this one drain.
        if !takeover.committed { stopAdminSockets(admin) }
        server.stop(grace: global.shutdownGrace)
        metricsServer.withLock { $0 }?.stop()
        context.accessLog?.stop()
        stopAdminSockets(admin)
        state.withLock { $0.discovery }?.stop()
        for runtime in state.withLock({ Array($0.services.values) }) { runtime.stopHealth() }
        for runtime in state.withLock({ Array($0.services.values) }) { runtime.stopAgents() }  // Agent checks (issue 22).
    }

    /// The main thread's loop until SIGTERM or SIGINT: SIGHUP reloads, and backends a reload
    /// removed disappear once their connections have ended.
    private func serve() {
        while true {
            let received = waitForSignal(timeout: .milliseconds(250))
            if takeover.committed { return }
            switch received {
            case SIGINT?, SIGTERM?:
                let signal = received == SIGINT ? "SIGINT" : "SIGTERM"
                logger.notice("received \(signal); no longer accepting, \(context.openConnections.load(ordering: .relaxed)) connection(s) open, grace \(state.withLock { $0.configuration.global.shutdownGrace }.shortDescription)")
                // Under the lock: a handover in progress must not send descriptors workers close.
                reloadLock.withLock { _ in context.stopAccepting.store(true, ordering: .releasing) }
                systemd.stopping(status: statusText())
                return
            case SIGUSR1?:
                context.accessLog?.reopen()
                logger.notice("SIGUSR1: access log reopened")
            case SIGUSR2?:
                startSuccessor()
            case SIGHUP?:
                let reply = reload()
                if reply.ok {
                    logger.notice("reload on SIGHUP: \(reply.body.joined(separator: "; "))")
                } else {
                    logger.error("reload on SIGHUP refused: \(reply.error ?? "")")
                }
            default:
                break
            }
            sampleRates()
            for runtime in state.withLock({ Array($0.services.values) }) {
                _ = try? runtime.registry.apply(.advanceSlowStart)
                for name in runtime.sweepRemovedBackends() {
                    logger.notice("\(runtime.name)/\(name) removed: its last connection ended")
                }
            }
            reapSuccessor()
            reportStatusIfDue()
        }
    }

    private func startAdminServer(_ global: GlobalSettings) throws(ConfigError) -> AdminServer? {
        guard global.adminSocketEnabled else { return nil }
        do {
            let path = if let given = global.adminSocket { given } else { try AdminSocketPath.current(creatingDirectory: true) }
            return try AdminServer(socketPath: path, controller: adminController(), takeover: TakeoverHandler(instance: self),
                                   access: AdminSocketAccess(global, readOnly: false))
        } catch {
            throw ConfigError("\(error)")
        }
    }

    /// Stops the admin socket and the read-only one: startup failed, or shutdown.
    private func stopAdminSockets(_ admin: AdminServer?) {
        admin?.stop()
        // Taken out, not only stopped: its controller holds this instance, and a server kept
        // here made a cycle that LeakSanitizer reported at exit.
        readOnlyAdmin.withLock { server -> AdminServer? in
            defer { server = nil }
            return server
        }?.stop()
    }

    /// Makes and starts the read-only admin socket, if the configuration has one.
    private func startReadOnlyAdminServer(_ global: GlobalSettings) throws(ConfigError) {
        guard let path = global.adminSocketReadOnly else { return }
        do {
            let server = try AdminServer(socketPath: path, controller: adminController(), access: AdminSocketAccess(global, readOnly: true))
            try server.start()
            readOnlyAdmin.withLock { $0 = server }
        } catch let error as AdminSocketError {
            throw ConfigError("read-only admin socket: \(error)")
        } catch {
            throw ConfigError("read-only admin socket: \(error)")
        }
    }

    private func logStartup(_ configuration: Configuration, admin: AdminServer?) {
        let global = configuration.global
        let entries = state.withLock { $0.listeners }
        for service in configuration.services {
            let listening = Self.unique(entries.filter { $0.service == service.name }.map(\.endpoint.description))
            let backends = service.backends.map { $0.weightGiven ? "\($0.endpoint) (weight \($0.weight))" : "\($0.endpoint)" }
            let health = service.health.map { "health checks: \($0.summary)" } ?? "health checks off"
            logger.info("service \(service.name) listening on \(listening.joined(separator: ", ")); balance \(service.balance); backends: \(backends.joined(separator: ", ")); \(health)")
        }
        logger.info("switchyard \(build) listening on \(Self.unique(entries.map(\.endpoint.description)).joined(separator: ", ")); \(context.workerCount) worker(s), relay \(global.relay), max \(context.configuration.maxConnections) connections\(configFile.map { "; configuration \($0)" } ?? "")")
        if let admin { logger.info("admin socket: \(admin.socketPath)") } else { logger.info("no admin socket (admin-socket off)") }
        if let readOnly = readOnlyAdmin.withLock({ $0 }) { logger.info("read-only admin socket: \(readOnly.socketPath)") }
    }

    // MARK: - Listeners

    /// Binds `endpoint` once per worker. Throws a message naming the address.
    func bindListener(_ endpoint: Endpoint, service: ServiceRuntime) throws(ConfigError) -> ListenerEntry {
        let resolved = try resolve(endpoint)
        var descriptors: [Int32] = []
        do {
            try Socket.checkAvailable(resolved)
            var bound = resolved
            for _ in 0..<context.workerCount {
                let (fd, port) = try Socket.listen(on: bound)
                bound.port = port
                descriptors.append(fd)
            }
            let id = state.withLock { state in
                defer { state.nextListenerID += 1 }
                return state.nextListenerID
            }
            return ListenerEntry(id: id, service: service.name, endpoint: bound, registry: service.registry, descriptors: descriptors)
        } catch {
            for fd in descriptors { close(fd) }
            if error.errno == EADDRINUSE {
                throw ConfigError("cannot listen: \(error.call): address already in use (another process holds the port)")
            }
            throw ConfigError("cannot listen: \(error)")
        }
    }

    static func closeDescriptors(_ entry: ListenerEntry) {
        for fd in entry.descriptors { close(fd) }
    }

    /// Publishes `entries` and waits (bounded) until every worker accepts on them.
    private func publishListeners(_ entries: [ListenerEntry]) {
        let services = state.withLock { state in
            state.listeners = entries
            return state.services.mapValues(\.registry)
        }
        let version = context.listeners.publish(entries, services: services)
        state.withLock { $0.waker }?.wake()
        let deadline = ContinuousClock.now + .seconds(2)
        while !context.listeners.adoptedByAll(version) && ContinuousClock.now < deadline {
            usleep(1000)
        }
    }

    // MARK: - Reload

    /// Reads the configuration file again, validates it completely and applies the difference;
    /// a file with any error, or a listen address that cannot be bound, changes nothing.
    public func reload() -> AdminReply {
        reloadLock.withLock { _ in
            if let pid = takeover.pendingPeer {
                return .failure("reload refused: pid \(pid) is taking over; reload that process once it has")
            }
            guard configFile != nil else { return performReload() }
            systemd.reloading(status: "reloading \(configFile ?? "")")
            defer { systemd.ready(status: statusText()) }
            return performReload()
        }
    }

    private func performReload() -> AdminReply {
        guard let configFile else {
            return .failure("this instance was started without --config: there is no file to reload")
        }
        let new: Configuration
        do {
            new = try Self.readConfiguration(configFile)
        } catch {
            logger.error("reload refused, nothing changed: \(error.message)")
            return .failure("reload refused, nothing changed: \(error.message)")
        }
        let (old, services, entries) = state.withLock { ($0.configuration, $0.services, $0.listeners) }
        let difference = ConfigDifference(from: old, to: new)

        // Everything that can fail comes first: resolving names and binding new listeners.
        var resolvedServices: [String: ServiceConfiguration] = [:]
        var addedRuntimes: [String: ServiceRuntime] = [:]
        var newEntries: [ListenerEntry] = []
        do {
            for service in new.services {
                resolvedServices[service.name] = try Self.resolved(service)
            }
            for service in difference.addedServices {
                let runtime = ServiceRuntime(configuration: resolvedServices[service.name]!, logger: logger)
                addedRuntimes[service.name] = runtime
                for endpoint in service.listen { newEntries.append(try bindListener(endpoint, service: runtime)) }
            }
            for change in difference.changedServices {
                for endpoint in change.addedListeners {
                    newEntries.append(try bindListener(endpoint, service: services[change.name]!))
                }
            }
        } catch {
            for entry in newEntries { Self.closeDescriptors(entry) }
            logger.error("reload refused, nothing changed: \(error.message)")
            return .failure("reload refused, nothing changed: \(error.message)")
        }

        // Apply. Nothing below fails as a whole; a health checker that cannot start is logged.
        var runtimes = services
        let waker = state.withLock { $0.waker }
        for (name, runtime) in addedRuntimes {
            runtimes[name] = runtime
            if let waker { runtime.registry.addPublishObserver { waker.wake() } }
            startHealth(runtime, resolvedServices[name]!.health)
            runtime.startAgents()  // Agent checks (issue 22).
            watchNames(of: new.service(named: name)!, registry: runtime.registry)
        }
        for change in difference.changedServices {
            guard let runtime = runtimes[change.name], let service = resolvedServices[change.name] else { continue }
            runtime.registry.reconfigure(algorithm: service.balance, settings: service.settings)
            Self.applyBackendChanges(change, service: service, to: runtime.registry)
            if change.healthChanged { startHealth(runtime, service.health) }
            if change.discoveryChanged || !change.addedBackends.isEmpty || !change.removedBackends.isEmpty {
                let configured = new.service(named: change.name)!
                if configured.discovery == nil {
                    // No longer discovered: what DNS had found drains.
                    ServiceDiscovery.applyPool([], weight: 1, to: runtime.registry, service: change.name, logger: logger)
                }
                watchNames(of: configured, registry: runtime.registry)
            }
        }
        for name in difference.removedServices { state.withLock { $0.discovery }?.unwatch(name) }
        let removedListeners = Set(difference.changedServices.flatMap { change in
            change.removedListeners.map { "\(change.name) \($0)" }
        })
        var kept = entries.filter { entry in
            !difference.removedServices.contains(entry.service)
                && !removedListeners.contains("\(entry.service) \(entry.endpoint)")
                && !removedListeners.contains(where: { $0 == "\(entry.service) \(Self.configured(entry, in: old))" })
        }
        kept += newEntries
        state.withLock { state in
            state.configuration = new
            state.services = runtimes.filter { !difference.removedServices.contains($0.key) }
        }
        publishListeners(kept)
        for name in difference.removedServices { runtimes[name]?.stopHealth() }
        for name in difference.removedServices { runtimes[name]?.stopAgents() }  // Agent checks (issue 22).

        let overrides = state.withLock { $0.overrides }
        applyOverrides(overrides, to: state.withLock { $0.services }, atStart: false)
        let summary = difference.summary
        logger.notice("configuration reloaded from \(configFile): \(summary.joined(separator: "; "))")
        return .success(summary)
    }

    /// The configured text of the listen address behind `entry` (a port 0 was bound to another).
    static func configured(_ entry: ListenerEntry, in configuration: Configuration) -> String {
        guard let service = configuration.service(named: entry.service) else { return entry.endpoint.description }
        return service.listen.first { $0.host == entry.endpoint.host && ($0.port == entry.endpoint.port || $0.port == 0) }?
            .description ?? entry.endpoint.description
    }

    /// Watches the DNS names `service` uses (starting discovery on first need); a service that
    /// uses none has its earlier watches removed.
    private func watchNames(of service: ServiceConfiguration, registry: BackendRegistry) {
        var discovery = state.withLock { $0.discovery }
        guard ServiceDiscovery.needed(by: service) else {
            discovery?.unwatch(service.name)
            return
        }
        if discovery == nil {
            do {
                let started = try ServiceDiscovery(resolvers: state.withLock { $0.configuration.global.resolvers }, logger: logger)
                state.withLock { $0.discovery = started }
                discovery = started
            } catch {
                logger.error("service \(service.name): \(error.message)")
                return
            }
        }
        discovery?.watch(service, registry: registry)
    }

    private func startHealth(_ runtime: ServiceRuntime, _ config: HealthCheckConfig?) {
        do {
            try runtime.startHealth(config)
        } catch {
            logger.error("service \(runtime.name): cannot start health checks: \(error)")
        }
    }

    /// Adds, removes (by draining: the backend disappears once its connections end) and
    /// re-weighs backends; unchanged ones keep their health, counters and connections.
    private static func applyBackendChanges(_ change: ConfigDifference.ServiceChange, service: ServiceConfiguration, to registry: BackendRegistry) {
        _ = try? registry.apply(PoolEdit.reload(change, resolved: service.backends))
    }

    // MARK: - Admin socket

    func adminController() -> AdminController {
        AdminController(
            services: { [self] in adminServices() },
            processStats: { [self] in processStats() },
            resolve: resolve,
            reload: { [self] in reload() },
            recordChange: { [self] service, command in recordChange(service: service, command) },
            sources: { [self] service in sourceRows(service: service) })
    }

    private func adminServices() -> [AdminService] {
        let (services, entries, discovery) = state.withLock { ($0.services, $0.listeners, $0.discovery) }
        return services.values.sorted { $0.name < $1.name }.map { runtime in
            AdminService(
                name: runtime.name, registry: runtime.registry,
                // Several entries share an address when sockets were handed over or activated.
                listeners: Self.unique(entries.filter { $0.service == runtime.name }.map(\.endpoint.description)),
                lastCheckText: { id in runtime.lastCheckText(id) },
                details: { [self] in
                    (discovery?.details(of: runtime.name) ?? [])
                        + (runtime.registry.snapshot().settings.routing != nil ? sniRouteDetails(of: runtime.name) : [])
                },
                backendDetails: { [self] id in backendDetails(service: runtime.name, backendID: id) })
        }
    }

    private func processStats() -> ProcessStats {
        let (configuration, services) = state.withLock { ($0.configuration, $0.services) }
        let balance = services.count == 1 ? services.values.first!.registry.algorithm.rawValue : "per service"
        var stats = context.processStats(workers: context.workerCount, relayMode: configuration.global.relay.rawValue, balance: balance)
        stats.pid = Int(getpid())
        stats.version = build.version
        stats.commit = build.commit
        stats.accepting = !context.stopAccepting.load(ordering: .relaxed)
        stats.proxyHeaderErrors = proxyHeaderErrorTotals() // PROXY protocol
        // Source port exhaustion (issue 13), as of each worker's last tick.
        stats.sourcePortExhausted = Int(context.figures.collect().reduce(UInt64(0)) { total, worker in
            worker.listeners.values.reduce(total) { $0 &+ $1.sourcePortExhausted }
        })
        return stats
    }

    // MARK: - State file

    private func recordChange(service: String, _ command: AdminCommand) {
        let (overrides, path) = state.withLock { state -> (RuntimeOverrides, String?) in
            state.overrides.record(service: service, command)
            return (state.overrides, state.configuration.global.stateFile)
        }
        guard let path else { return }
        do {
            try writeFileAtomically(path, contents: overrides.fileText)
        } catch {
            logger.error("cannot write the state file: \(error)")
        }
    }

    private static func loadState(_ path: String) throws(ConfigError) -> RuntimeOverrides {
        let text: String
        do {
            guard let contents = try readTextFile(path) else { return RuntimeOverrides() }
            text = contents
        } catch {
            throw ConfigError("cannot read the state file: \(error)")
        }
        do {
            return try RuntimeOverrides(parsing: text, file: path)
        } catch {
            throw ConfigError("the state file is corrupt, nothing was started: \(error)")
        }
    }

    /// Re-applies the admin socket's changes kept in the state file, logging each. At start a
    /// removed backend goes at once; after a reload it drains first.
    func applyOverrides(_ overrides: RuntimeOverrides, to services: [String: ServiceRuntime], atStart: Bool) {
        for (serviceName, command) in overrides.commands {
            guard let runtime = services[serviceName] else {
                logger.warning("state file: service \(serviceName) no longer exists; skipping \(command)")
                continue
            }
            switch RuntimeOverrides.replay(command, on: runtime.registry, resolve: resolve) {
            case .applied:
                logger.notice("state file: \(RuntimeOverrides.line(service: serviceName, command))")
            case let .changedNothing(note) where atStart || !note.isEmpty:
                logger.info("state file: \(RuntimeOverrides.line(service: serviceName, command)) changes nothing\(note)")
            case .changedNothing:
                break
            }
        }
    }

    // MARK: - Files and names

    /// Reads and validates a configuration file; the error names the file, line and column.
    public static func readConfiguration(_ path: String) throws(ConfigError) -> Configuration {
        let text: String
        do {
            guard let contents = try readTextFile(path) else {
                throw ConfigError("\(path): no such file")
            }
            text = contents
        } catch let error as ConfigError {
            throw error
        } catch {
            throw ConfigError("cannot read \(path): \(error)")
        }
        do {
            return try ConfigFile.parse(text, file: path)
        } catch {
            throw ConfigError(error.description)
        }
    }

    /// `service` with every backend's host resolved to an address.
    static func resolved(_ service: ServiceConfiguration) throws(ConfigError) -> ServiceConfiguration {
        var copy = service
        for index in copy.backends.indices {
            do {
                copy.backends[index].endpoint = try resolve(copy.backends[index].endpoint)
            } catch {
                throw ConfigError("service \(service.name): \(error.message)")
            }
        }
        return copy
    }

    /// Checks that every name in `configuration` resolves; returns one message per failure.
    public static func resolutionProblems(_ configuration: Configuration) -> [String] {
        var problems: [String] = []
        for service in configuration.services {
            var endpoints = service.listen + service.backends.map(\.endpoint)
            if case let .addresses(name, port)? = service.discovery { endpoints.append(Endpoint(host: name, port: port)) }
            for endpoint in endpoints {
                do {
                    _ = try resolve(endpoint)
                } catch {
                    problems.append("service \(service.name): \(error.message)")
                }
            }
        }
        return problems
    }
}
