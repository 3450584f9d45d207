import Glibc
import Logging
import Synchronization
import SwitchyardCore

// The metrics listener (`--metrics HOST:PORT`), the status page's listener (`--status`), and
// the figures the metrics listener serves.
extension Instance {
    /// Starts the metrics listener and the status page's: one listener when they share an
    /// address, else two on the metrics listener's thread (the status page's own thread when
    /// there are no metrics).
    func startControlListeners(_ global: GlobalSettings, takingOver: Bool = false) throws(ConfigError) {
        if global.statusAdmin, case let .failure(error) = Self.readToken(global.statusAdminTokenFile) {
            throw ConfigError("status-admin: \(error.message)")
        }
        let metricsRoutes = MetricsRoutes(render: { [self] format in MetricsExposition.render(metricsSample(), format: format) },
                                          health: { [self] in healthz() })
        let status = global.status.map { _ in statusRoutes(global) }
        var metrics: ControlHTTPServer?
        if let endpoint = global.metrics {
            let shared = global.status == endpoint ? status : nil
            let server = try startControlListener(on: endpoint, purpose: "metrics", routes: [metricsRoutes] + (shared.map { [$0] } ?? []),
                                                  takingOver: takingOver)
            metricsServer.withLock { $0 = server }
            metrics = server
            if shared != nil { startStatusSampling(on: server) }
        }
        if let endpoint = global.status, let status, global.status != global.metrics {
            do {
                let server = try startControlListener(on: endpoint, purpose: "the status page", routes: [status],
                                                      sharingThreadOf: metrics, takingOver: takingOver)
                statusServer.withLock { $0 = server }
                startStatusSampling(on: server)
            } catch {
                stopControlListeners()
                throw error
            }
        }
    }

    private func startControlListener(on endpoint: Endpoint, purpose: String, routes: [any ControlRoutes],
                                      sharingThreadOf other: ControlHTTPServer? = nil,
                                      takingOver: Bool) throws(ConfigError) -> ControlHTTPServer {
        let resolved = try resolve(endpoint)
        guard let address = resolved.address else { throw ConfigError("\(purpose): cannot resolve \(endpoint.host)") }
        do {
            let server = try ControlHTTPServer(
                host: address.description, port: Int(resolved.port), joiningTakeover: takingOver, logger: logger,
                purpose: purpose, sharingThreadOf: other, routes: routes)
            let host = resolved.host.contains(":") ? "[\(resolved.host)]" : resolved.host
            for path in routes.flatMap(\.paths) where path == "/metrics" || path == "/" {
                logger.info("\(path == "/" ? "status page" : "metrics") on http://\(host):\(server.port)\(path)")
            }
            return server
        } catch {
            throw ConfigError("\(error)")
        }
    }

    private func startStatusSampling(on server: ControlHTTPServer) {
        sampleStatus()
        server.every(.seconds(1)) { [weak self] in self?.sampleStatus() }
    }

    /// Stops the metrics and status listeners (shutdown, a failed start, a takeover's commit).
    func stopControlListeners() {
        let metrics = metricsServer.withLock { server -> ControlHTTPServer? in
            defer { server = nil }
            return server
        }
        let status = statusServer.withLock { server -> ControlHTTPServer? in
            defer { server = nil }
            return server
        }
        // The status listener may run on the metrics listener's thread, which stopping that one ends.
        status?.stop()
        metrics?.stop()
    }

    /// What `/healthz` answers: 200 while the instance is ready and some service has a backend
    /// that takes new connections, else 503 and why.
    func healthz() -> (ok: Bool, body: String) {
        let (readiness, services) = state.withLock { ($0.readiness, Array($0.services.values)) }
        return readiness.healthz(anyBackendSelectable: services.contains { $0.registry.snapshot().anySelectable })
    }

    /// Every figure of the exposition, summed over the workers' latest published figures.
    func metricsSample() -> MetricsSample {
        let (services, entries) = state.withLock { ($0.services, $0.listeners) }
        let published = context.figures.collect()
        var byListener: [Int: ConnectionFigures] = [:]
        var connectTimes: [WorkerFigures.BackendKey: LatencyHistogram] = [:]
        var buffersInUse = 0, pipesInUse = 0, parkedBytes = 0
        for worker in published {
            for (id, figures) in worker.listeners { byListener[id, default: ConnectionFigures()].merge(figures) }
            for (key, histogram) in worker.backendConnectTime { connectTimes[key, default: LatencyHistogram()].merge(histogram) }
            buffersInUse += worker.buffersInUse
            pipesInUse += worker.pipesInUse
            parkedBytes += worker.parkedBytes
        }
        // Listeners a reload removed keep their counts in the workers; show the current ones.
        let listeners = entries.map { entry in
            MetricsSample.Listener(service: entry.service, listener: entry.endpoint.description, figures: byListener[entry.id] ?? ConnectionFigures())
        }
        var backends: [MetricsSample.Backend] = []
        let now = secondsSinceEpoch()  // Certificate expiry of TLS checks (issue 22).
        for runtime in services.values.sorted(by: { $0.name < $1.name }) {
            let snapshot = runtime.registry.snapshot()
            for backend in snapshot.backends {
                let check = runtime.checkFigures(backend.id)
                backends.append(MetricsSample.Backend(
                    service: runtime.name, address: backend.name, weight: backend.spec.weight, healthy: backend.health.isUp,
                    state: backend.effectiveAdmin, active: backend.stats.active.load(ordering: .relaxed),
                    connections: UInt64(max(0, backend.stats.total.load(ordering: .relaxed))),
                    failures: UInt64(max(0, backend.stats.failures.load(ordering: .relaxed))),
                    bytesToBackend: UInt64(max(0, backend.stats.bytesToBackend.load(ordering: .relaxed))),
                    bytesFromBackend: UInt64(max(0, backend.stats.bytesFromBackend.load(ordering: .relaxed))),
                    connectTime: connectTimes[.init(service: runtime.name, backendID: backend.id)] ?? LatencyHistogram(),
                    lastCheckSeconds: check?.lastSeconds, lastCheckSucceeded: check?.lastSucceeded,
                    checkDuration: check?.durations ?? LatencyHistogram(),
                    certificateExpirySeconds: check?.certificateNotAfter.map { Double($0 - now) }))
                if snapshot.settings.backendTLS(for: backend.spec) != nil {  // TLS to backends.
                    backends[backends.count - 1].tlsHandshakes = (UInt64(max(0, backend.stats.tlsHandshakes.load(ordering: .relaxed))),
                                                                  UInt64(max(0, backend.stats.tlsHandshakeFailures.load(ordering: .relaxed))))
                }
            }
        }
        let relay = context.configuration
        var sample = MetricsSample(
            build: build, process: ProcessFigures.current(), listeners: listeners, backends: backends,
            providedBuffers: Int(relay.buffersPerWorker) * context.workerCount, providedBuffersInUse: buffersInUse,
            pipesInUse: pipesInUse, accessLogDroppedLines: context.accessLog?.droppedLines ?? 0)
        sample.parkedBytes = parkedBytes
        sample.instanceReady = state.withLock { $0.readiness } == .ready
        // PROXY protocol.
        for runtime in services.values where runtime.registry.snapshot().settings.acceptProxy != nil {
            sample.acceptProxyServices.insert(runtime.name)
        }
        for entry in entries {
            var routes: [String: UInt64] = [:]
            for worker in published {
                for (route, count) in worker.sniRoutes[entry.id] ?? [:] { routes[route, default: 0] += count }
            }
            for (route, count) in routes.sorted(by: { $0.key < $1.key }) {
                sample.sniRoutes.append((entry.service, entry.endpoint.description, route, count))
            }
        }
        // TLS termination: every terminating service, with or without handshakes yet.
        var handshakes: [String: TLSHandshakeFigures] = [:]
        for runtime in services.values where runtime.tls.withLock({ $0 }) != nil { handshakes[runtime.name] = TLSHandshakeFigures() }
        for entry in entries where handshakes[entry.service] != nil {
            for worker in published { worker.tlsHandshakes[entry.id].map { handshakes[entry.service]!.merge($0) } }
        }
        for worker in published {
            for (service, figures) in worker.routedTLSHandshakes where handshakes[service] != nil { handshakes[service]!.merge(figures) }
        }
        sample.tlsHandshakes = handshakes.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
        for runtime in services.values.sorted(by: { $0.name < $1.name }) {
            for certificate in runtime.tls.withLock({ $0 })?.certificates ?? [] {
                guard let notAfter = certificate.notAfter else { continue }
                sample.tlsCertificates.append((runtime.name, certificate.path, certificate.names.first ?? "", Double(notAfter - now)))
            }
        }
        return sample
    }

    // PROXY protocol.
    /// Clients closed for their PROXY header, by `ProxyHeaderFailure.rawValue`, all listeners of
    /// all workers; empty when no service has `accept-proxy`.
    func proxyHeaderErrorTotals() -> [UInt64] {
        let services = state.withLock { Array($0.services.values) }
        guard services.contains(where: { $0.registry.snapshot().settings.acceptProxy != nil }) else { return [] }
        var total = ConnectionFigures()
        for worker in context.figures.collect() {
            for figures in worker.listeners.values { total.merge(figures) }
        }
        return ProxyHeaderFailure.allCases.map { total.proxyHeaderErrors($0) }
    }
}
