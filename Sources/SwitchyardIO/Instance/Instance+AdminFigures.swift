import Synchronization
import SwitchyardCore

/// New connections per second per backend, from the registries' totals sampled about once a
/// second by the main loop.
struct ConnectionRates {
    struct Key: Hashable {
        var service: String
        var backendID: Int
    }

    var lastTotals: [Key: Int] = [:]
    var lastSampled: ContinuousClock.Instant?
    var perSecond: [Key: Double] = [:]
}

// The measured figures the admin socket shows beside a registry's own: connections per second
// and connect-time quantiles per backend (`show backends`), connections by SNI route
// (`show services json`).
extension Instance {
    /// `show services json` fields of a service that routes by SNI: connections by route.
    func sniRouteDetails(of service: String) -> [(String, String)] {
        let entries = state.withLock { $0.listeners }.filter { $0.service == service }
        guard !entries.isEmpty else { return [] }
        var routes: [String: UInt64] = [:]
        for worker in context.figures.collect() {
            for entry in entries {
                for (route, count) in worker.sniRoutes[entry.id] ?? [:] { routes[route, default: 0] += count }
            }
        }
        let object = JSONText.object(routes.sorted { $0.key < $1.key }.map { ($0.key, "\($0.value)") })
        return [("routes", object)]
    }

    /// Connect-time quantiles (all workers) and the connection rate of one backend.
    func backendDetails(service: String, backendID: Int) -> BackendFigures {
        var histogram = LatencyHistogram()
        let key = WorkerFigures.BackendKey(service: service, backendID: backendID)
        for worker in context.figures.collect() {
            if let part = worker.backendConnectTime[key] { histogram.merge(part) }
        }
        let rate = rates.withLock { $0.perSecond[.init(service: service, backendID: backendID)] } ?? 0
        guard histogram.count > 0 else { return BackendFigures(connectionsPerSecond: rate) }
        return BackendFigures(
            connectP50Milliseconds: histogram.quantileSeconds(0.5).map { $0 * 1000 },
            connectP99Milliseconds: histogram.quantileSeconds(0.99).map { $0 * 1000 },
            connectionsPerSecond: rate)
    }

    /// Samples every backend's total about once a second (main thread).
    func sampleRates() {
        let now = ContinuousClock.now
        if let last = rates.withLock({ $0.lastSampled }), now - last < .milliseconds(900) { return }
        var totals: [ConnectionRates.Key: Int] = [:]
        for runtime in state.withLock({ Array($0.services.values) }) {
            for backend in runtime.registry.snapshot().backends {
                totals[.init(service: runtime.name, backendID: backend.id)] = backend.stats.total.load(ordering: .relaxed)
            }
        }
        rates.withLock { rates in
            if let last = rates.lastSampled {
                let seconds = Double((now - last).nanosecondsClamped) / 1e9
                var perSecond: [ConnectionRates.Key: Double] = [:]
                for (key, total) in totals {
                    perSecond[key] = Double(max(0, total - (rates.lastTotals[key] ?? total))) / seconds
                }
                rates.perSecond = perSecond
            }
            rates.lastTotals = totals
            rates.lastSampled = now
        }
    }
}

// `show certificates`: what the terminating services' contexts loaded (at start or at the last
// reload, which reads the files again).
extension Instance {
    func certificateRows() -> [CertificateRow] {
        let now = Self.wallClockSeconds()
        return state.withLock { Array($0.services.values) }.flatMap { runtime -> [CertificateRow] in
            guard let context = runtime.tls.withLock({ $0 }) else { return [] }
            return context.certificates.map { loaded in
                CertificateRow(path: loaded.path, names: loaded.names, subject: loaded.subject, issuer: loaded.issuer,
                               notAfter: loaded.notAfter, secondsLeft: loaded.notAfter.map { $0 - now }, services: [runtime.name])
            }
        }
    }
}
