import CSwitchyard
import Glibc
import Logging
import Synchronization
import SwitchyardCore

// The service set: made at start (`makeServices`), changed by reload, which reads the file
// again, binds what is new, then applies the difference to the running services (their pools,
// health checks, DNS names and listeners).
extension Instance {
    /// One `ServiceRuntime` per configured service, with its DNS names watched (waiting,
    /// bounded, for the first answers: a dns pool is empty until then).
    func makeServices(_ configuration: Configuration) throws(ConfigError) -> [String: ServiceRuntime] {
        let global = configuration.global
        var services: [String: ServiceRuntime] = [:]
        context.backendTLS.replace(with: try BackendTLSContexts.make(configuration))  // TLS to backends
        for service in configuration.services {
            if service.balance == .roundRobin, service.backends.contains(where: \.weightGiven) {
                logger.notice("service \(service.name): round-robin ignores backend weights; use balance weighted to honour them")
            }
            let runtime = ServiceRuntime(configuration: try Self.resolved(service), logger: logger)
            if let tls = try Self.tlsContext(of: service, ticketKeys: ticketKeys) {
                for warning in Self.expiryWarnings(tls, service: service.name) { logger.warning("\(warning)") }
                runtime.tls.withLock { $0 = tls }
            }
            services[service.name] = runtime
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
        return services
    }

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

    func performReload() -> AdminReply {
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
        var tlsContexts: [String: TLSServerContext] = [:]
        let backendTLSContexts: [BackendTLSSettings: TLSContext]
        do {
            // TLS to backends: the files are read again; in force before any new setting is.
            backendTLSContexts = try BackendTLSContexts.make(new)
            for service in new.services {
                resolvedServices[service.name] = try Self.resolved(service)
                // Certificates and keys are read again: new handshakes get replaced ones.
                tlsContexts[service.name] = try Self.tlsContext(of: service, ticketKeys: ticketKeys)
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
        context.backendTLS.replace(with: backendTLSContexts)
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
        for (name, runtime) in runtimes {
            runtime.tls.withLock { $0 = tlsContexts[name] }
            runtime.reloadHealthTLSFiles()  // CA files and client certificates, as connections do
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

    /// The TLS context of a service with `tls:` (nil without); the error names the service
    /// and the file at fault. Tickets are made with `ticketKeys` (the instance's; nil for a
    /// check of the files alone).
    static func tlsContext(of service: ServiceConfiguration, ticketKeys: TLSTicketKeys? = nil) throws(ConfigError) -> TLSServerContext? {
        guard let settings = service.settings.tls else { return nil }
        do {
            return try TLSServerContext.make(settings, scope: service.name, ticketKeys: ticketKeys)
        } catch {
            throw ConfigError("service \(service.name): tls: \(error.message)")
        }
    }

    /// The configured text of the listen address behind `entry` (a port 0 was bound to another).
    static func configured(_ entry: ListenerEntry, in configuration: Configuration) -> String {
        guard let service = configuration.service(named: entry.service) else { return entry.endpoint.description }
        return service.listen.first { $0.host == entry.endpoint.host && ($0.port == entry.endpoint.port || $0.port == 0) }?
            .description ?? entry.endpoint.description
    }

    /// Watches the DNS names `service` uses (starting discovery on first need); a service that
    /// uses none has its earlier watches removed.
    func watchNames(of service: ServiceConfiguration, registry: BackendRegistry) {
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

    func startHealth(_ runtime: ServiceRuntime, _ config: HealthCheckConfig?) {
        do {
            try runtime.startHealth(config)
        } catch {
            logger.error("service \(runtime.name): cannot start health checks: \(error)")
        }
    }

    /// Adds, removes (by draining: the backend disappears once its connections end) and
    /// re-weighs backends; unchanged ones keep their health, counters and connections.
    static func applyBackendChanges(_ change: ConfigDifference.ServiceChange, service: ServiceConfiguration, to registry: BackendRegistry) {
        _ = try? registry.apply(PoolEdit.reload(change, resolved: service.backends))
    }
}
