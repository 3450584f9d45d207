import CSwitchyard
import Glibc
import Logging
import Synchronization
import SwitchyardCore

// Admin wiring: the admin socket and the read-only one, and what their controller reads of the
// instance (services, process figures).
extension Instance {
    func startAdminServer(_ global: GlobalSettings) throws(ConfigError) -> AdminServer? {
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
    func stopAdminSockets(_ admin: AdminServer?) {
        admin?.stop()
        // Taken out, not only stopped: its controller holds this instance, and a server kept
        // here made a cycle that LeakSanitizer reported at exit.
        readOnlyAdmin.withLock { server -> AdminServer? in
            defer { server = nil }
            return server
        }?.stop()
    }

    /// Makes and starts the read-only admin socket, if the configuration has one.
    func startReadOnlyAdminServer(_ global: GlobalSettings) throws(ConfigError) {
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

    func adminController() -> AdminController {
        AdminController(
            services: { [self] in adminServices() },
            processStats: { [self] in processStats() },
            resolve: resolve,
            reload: { [self] in reload() },
            recordChange: { [self] service, command in recordChange(service: service, command) },
            sources: { [self] service in sourceRows(service: service) },
            changeReadiness: { [self] change in changeReadiness(change) },
            certificates: { [self] in certificateRows() })
    }

    func adminServices() -> [AdminService] {
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

    func processStats() -> ProcessStats {
        let (configuration, services) = state.withLock { ($0.configuration, $0.services) }
        let balance = services.count == 1 ? services.values.first!.registry.algorithm.rawValue : "per service"
        var stats = context.processStats(workers: context.workerCount, relayMode: configuration.global.relay.rawValue, balance: balance)
        stats.pid = Int(getpid())
        stats.version = build.version
        stats.commit = build.commit
        stats.accepting = !context.stopAccepting.load(ordering: .relaxed)
        stats.instance = state.withLock { $0.readiness }
        stats.proxyHeaderErrors = proxyHeaderErrorTotals() // PROXY protocol
        stats.kernelTLS = KernelTLS.status
        // Source port exhaustion (issue 13), as of each worker's last tick.
        stats.sourcePortExhausted = Int(context.figures.collect().reduce(UInt64(0)) { total, worker in
            worker.listeners.values.reduce(total) { $0 &+ $1.sourcePortExhausted }
        })
        return stats
    }
}
