import CSwitchyard
import Glibc
import Logging
import Synchronization
import SwitchyardCore

// Starting and stopping: `run(takeover:)` starts the services, the admin sockets, the metrics
// listener, the health checkers, the listeners and the workers in that order, serves until a
// signal ends it (`Instance+Signals.swift`), and stops them in reverse.
extension Instance {
    /// Starts everything, serves until SIGTERM or SIGINT (or until a new process took over),
    /// then shuts down gracefully. Throws a one-line message when the instance cannot start
    /// (nothing is left running then).
    ///
    /// With `takeover`, the listening sockets and admin changes come from the process serving
    /// the admin socket, which stops accepting once this one accepts on all of them; a failure
    /// before that leaves it as it was, and the message starts `takeover failed:`.
    public func run(takeover takingOver: Bool = false) throws(ConfigError) {
        do {
            try runUntilStopped(takeover: takingOver)
        } catch {
            guard takingOver else { throw error }
            let running = takeover.predecessor.map { "; pid \($0) carries on" } ?? ""
            throw ConfigError("takeover failed: \(error.message)\(running)")
        }
    }

    /// `run(takeover:)`: starts everything, serves, shuts down.
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

        startTicketKeys(configuration, handedOver: handover?.message.ticketKeys ?? [])
        let services = try makeServices(configuration)
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
            try startControlListeners(global, takingOver: handover != nil)
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
            stopControlListeners()
            stopAdminSockets(admin)
            throw ConfigError("cannot start health checks: \(error)")
        }
        let workers = WorkerGroup(context: context)
        var entries: [ListenerEntry] = []
        do {
            entries = try makeListeners(configuration, services: services, activated: activated, handover: handover)
            state.withLock { $0.listeners = entries }
            context.listeners.publish(entries, services: services.mapValues(\.registry), tls: Self.tlsContexts(services))
            try workers.start()
        } catch {
            if state.withLock({ $0.listeners.isEmpty }) {
                for entry in entries { Self.closeDescriptors(entry) }
            }
            stopControlListeners()
            stopAdminSockets(admin)
            throw error
        }
        let waker = workers.waker
        state.withLock { $0.waker = waker }
        for runtime in services.values {
            runtime.registry.addPublishObserver { waker.wake() }
        }
        do {
            if let handover {
                try commitTakeover(handover, workers: workers, admin: admin)
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
        workers.stop(grace: global.shutdownGrace)
        stopControlListeners()
        context.accessLog?.stop()
        stopAdminSockets(admin)
        state.withLock { $0.discovery }?.stop()
        for runtime in state.withLock({ Array($0.services.values) }) { runtime.stopHealth() }
        for runtime in state.withLock({ Array($0.services.values) }) { runtime.stopAgents() }  // Agent checks (issue 22).
    }

    func logStartup(_ configuration: Configuration, admin: AdminServer?) {
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
}
