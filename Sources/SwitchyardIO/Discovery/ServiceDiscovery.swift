import Logging
import Synchronization
import SwitchyardCore

/// Connects DNS discovery to the services' registries: `dns`/`dns-srv` pools follow their
/// name's answers, and backends listed by hostname follow their name's address.
///
/// Every change goes through the service's registry, as admin changes do: new addresses join
/// (health-checked at once), vanished ones drain (marked `removing`; the instance removes them
/// once their connections have ended), unchanged ones keep health state and counters.
///
/// Threads: `watch`/`unwatch` from the instance's control side (start and reload); callbacks
/// run on the discovery thread.
final class ServiceDiscovery: Sendable {
    let discovery: DNSDiscovery
    private let logger: Logger
    /// The watches of each service, by service name.
    private let watches = Mutex<[String: [DNSDiscovery.WatchID]]>([:])

    /// `resolvers` empty: the nameservers of /etc/resolv.conf.
    init(resolvers: [Endpoint], logger: Logger) throws(ConfigError) {
        let servers = resolvers.isEmpty ? try ResolvConf.load().resolvers : resolvers
        do {
            discovery = try DNSDiscovery(queryPolicy: DNSQueryPolicy(servers: servers), logger: logger)
            try discovery.start()
        } catch {
            throw ConfigError("cannot start DNS discovery: \(error)")
        }
        self.logger = logger
    }

    func stop() { discovery.stop() }

    /// Whether `service` needs DNS at all.
    static func needed(by service: ServiceConfiguration) -> Bool {
        service.discovery != nil || service.backends.contains { IPAddress($0.endpoint.host) == nil }
    }

    /// Watches what `service` names (replacing any earlier watches of a service of that name).
    func watch(_ service: ServiceConfiguration, registry: BackendRegistry) {
        unwatch(service.name)
        var ids: [DNSDiscovery.WatchID] = []
        let policy = DNSRefreshPolicy(minimumTTL: service.dnsMinTTL, maximumTTL: service.dnsMaxTTL)
        let name = service.name
        let logger = self.logger
        if let discovery = service.discovery, let target = Self.target(discovery) {
            let weight = service.discoveredWeight
            ids.append(self.discovery.watch(target, policy: policy) { change in
                Self.applyPool(change.backends, weight: weight, to: registry, service: name, logger: logger)
            })
        }
        for backend in service.backends where IPAddress(backend.endpoint.host) == nil {
            guard let dnsName = try? DNSName(parsing: backend.endpoint.host) else { continue }
            let key = backend.endpoint
            ids.append(self.discovery.watch(.addresses(name: dnsName, port: backend.endpoint.port), policy: policy) { change in
                Self.applyAddress(change.backends, of: key, to: registry, service: name, logger: logger)
            })
        }
        watches.withLock { $0[name] = ids }
    }

    func unwatch(_ service: String) {
        let ids = watches.withLock { $0.removeValue(forKey: service) } ?? []
        for id in ids { discovery.unwatch(id) }
    }

    /// JSON fields for `show services json`: the name, queries, failures and last success.
    func details(of service: String) -> [(String, String)] {
        let ids = watches.withLock { $0[service] } ?? []
        let statuses = ids.compactMap { discovery.status(of: $0) }
        guard !statuses.isEmpty else { return [] }
        return [
            ("dns", JSONText.array(statuses.map { JSONText.string($0.target.description) })),
            ("dns_queries", "\(statuses.reduce(0) { $0 + $1.queries })"),
            ("dns_failures", "\(statuses.reduce(0) { $0 + $1.failures })"),
            ("dns_last_success_unix", statuses.compactMap(\.lastSuccessUnixTime).min().map { "\($0)" } ?? "null"),
            ("dns_last_failure", statuses.compactMap(\.lastFailure).first.map { JSONText.string("\($0)") } ?? "null"),
        ]
    }

    /// Waits (bounded) until every watch of `services` has had its first answer or failure.
    func waitForFirstAnswers(timeout: Duration) {
        let ids = watches.withLock { $0.values.flatMap { $0 } }
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            let pending = ids.contains { id in
                guard let status = discovery.status(of: id) else { return false }
                return status.lastSuccess == nil && status.failures == 0
            }
            if !pending { return }
            ContinuousClock.sleepBlocking(.milliseconds(10))
        }
    }

    static func target(_ discovery: BackendDiscovery) -> DNSDiscoveryTarget? {
        switch discovery {
        case let .addresses(name, port):
            return (try? DNSName(parsing: name)).map { .addresses(name: $0, port: port) }
        case let .serviceRecords(name):
            return (try? DNSName(parsing: name)).map { .service(name: $0) }
        }
    }

    /// Makes the discovered part of the pool equal `found`, by difference (`PoolEdit.setDiscovered`).
    static func applyPool(_ found: [DNSBackend], weight: Int, to registry: BackendRegistry, service: String, logger: Logger) {
        let lines = (try? registry.apply(.setDiscovered(found, defaultWeight: weight)))?.notes ?? []
        if !lines.isEmpty { logger.notice("service \(service): DNS: \(lines.joined(separator: "; "))") }
    }

    /// Points the backend listed as `key` (`HOST:PORT`) at the first address `found` gives.
    static func applyAddress(_ found: [DNSBackend], of key: Endpoint, to registry: BackendRegistry, service: String, logger: Logger) {
        guard let first = found.first else { return }
        for moved in (try? registry.apply(.moveAddress(key, to: first.address)))?.notes ?? [] {
            logger.notice("service \(service): \(key) now resolves to another address: \(moved)")
        }
    }
}

extension ContinuousClock {
    /// Sleeps the calling thread (control side only, never a worker).
    static func sleepBlocking(_ duration: Duration) {
        let (seconds, attoseconds) = duration.components
        var time = timespec(tv_sec: Int(seconds), tv_nsec: Int(attoseconds / 1_000_000_000))
        nanosleep(&time, nil)
    }
}

import Glibc
