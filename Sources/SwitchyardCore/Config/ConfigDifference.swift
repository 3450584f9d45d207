/// What a reload changes: the difference of two validated configurations.
///
/// Listeners are compared by address and backends by `HOST:PORT`, within their service; a
/// backend present in both keeps its health state, counters and open connections.
public struct ConfigDifference: Equatable, Sendable {
    public struct BackendChange: Equatable, Sendable {
        public var old: BackendSpec
        public var new: BackendSpec
    }

    /// A service present in both configurations.
    public struct ServiceChange: Equatable, Sendable {
        public var name: String
        public var addedListeners: [Endpoint] = []
        public var removedListeners: [Endpoint] = []
        public var addedBackends: [BackendSpec] = []
        public var removedBackends: [Endpoint] = []
        public var changedBackends: [BackendChange] = []
        /// Old and new algorithm, when it changed.
        public var balance: (old: BalanceAlgorithm, new: BalanceAlgorithm)?
        /// Connect or idle timeout changed.
        public var settingsChanged = false
        public var healthChanged = false
        /// `dns`/`dns-srv`, their weight or TTL bounds changed.
        public var discoveryChanged = false
        /// `send-proxy`, `accept-proxy`, `accept-proxy-timeout` or `accept-proxy-from` of the service changed
        /// (carried in the settings, so `settingsChanged` is set too).
        public var proxyProtocolChanged = false
        /// Nothing but those changed among the settings.
        var onlyProxyProtocolChanged = false

        public var isEmpty: Bool {
            addedListeners.isEmpty && removedListeners.isEmpty && addedBackends.isEmpty && removedBackends.isEmpty
                && changedBackends.isEmpty && balance == nil && !settingsChanged && !healthChanged && !discoveryChanged
        }

        public static func == (a: ServiceChange, b: ServiceChange) -> Bool {
            a.name == b.name && a.addedListeners == b.addedListeners && a.removedListeners == b.removedListeners
                && a.addedBackends == b.addedBackends && a.removedBackends == b.removedBackends
                && a.changedBackends == b.changedBackends && a.balance?.old == b.balance?.old
                && a.balance?.new == b.balance?.new && a.settingsChanged == b.settingsChanged
                && a.healthChanged == b.healthChanged && a.discoveryChanged == b.discoveryChanged
        }
    }

    public var addedServices: [ServiceConfiguration] = []
    public var removedServices: [String] = []
    /// Only services with at least one change.
    public var changedServices: [ServiceChange] = []
    /// Global settings that differ but take effect only at the next start.
    public var restartOnly: [String] = []

    public init(from old: Configuration, to new: Configuration) {
        let oldNames = Set(old.services.map(\.name))
        let newNames = Set(new.services.map(\.name))
        addedServices = new.services.filter { !oldNames.contains($0.name) }
        removedServices = old.services.map(\.name).filter { !newNames.contains($0) }
        for service in new.services {
            guard let before = old.service(named: service.name) else { continue }
            let change = Self.compare(before, service)
            if !change.isEmpty { changedServices.append(change) }
        }
        restartOnly = old.global.restartOnlyDifferences(to: new.global)
    }

    static func compare(_ old: ServiceConfiguration, _ new: ServiceConfiguration) -> ServiceChange {
        var change = ServiceChange(name: new.name)
        let oldListen = Set(old.listen.map(\.description))
        let newListen = Set(new.listen.map(\.description))
        change.addedListeners = new.listen.filter { !oldListen.contains($0.description) }
        change.removedListeners = old.listen.filter { !newListen.contains($0.description) }
        let oldBackends = Dictionary(old.backends.map { ($0.endpoint.description, $0) }, uniquingKeysWith: { a, _ in a })
        let newBackends = Set(new.backends.map(\.endpoint.description))
        for backend in new.backends {
            if let before = oldBackends[backend.endpoint.description] {
                if before != backend { change.changedBackends.append(BackendChange(old: before, new: backend)) }
            } else {
                change.addedBackends.append(backend)
            }
        }
        change.removedBackends = old.backends.map(\.endpoint).filter { !newBackends.contains($0.description) }
        if old.balance != new.balance { change.balance = (old.balance, new.balance) }
        change.healthChanged = old.health != new.health
        // What the workers see of the PROXY protocol: `accept-proxy-timeout` and
        // `accept-proxy-from` matter only with `accept-proxy: true`.
        change.proxyProtocolChanged = old.settings.sendProxy != new.settings.sendProxy
            || old.settings.acceptProxy != new.settings.acceptProxy
        let othersChanged = old.settings.withoutProxyProtocol != new.settings.withoutProxyProtocol
        change.settingsChanged = othersChanged || change.proxyProtocolChanged
        change.onlyProxyProtocolChanged = change.proxyProtocolChanged && !othersChanged
        change.discoveryChanged = old.discovery != new.discovery || old.discoveredWeight != new.discoveredWeight
            || old.dnsMinTTL != new.dnsMinTTL || old.dnsMaxTTL != new.dnsMaxTTL
        return change
    }

    public var isEmpty: Bool {
        addedServices.isEmpty && removedServices.isEmpty && changedServices.isEmpty && restartOnly.isEmpty
    }

    /// One line per change, for the reload reply and the log.
    public var summary: [String] {
        var lines: [String] = []
        for service in addedServices {
            lines.append("service \(service.name) added: listening on \(service.listen.map(\.description).joined(separator: ", ")), \(service.backends.count) backend(s)")
        }
        for name in removedServices {
            lines.append("service \(name) removed: its listeners stop accepting, open connections finish")
        }
        for change in changedServices {
            let name = change.name
            for endpoint in change.addedListeners { lines.append("\(name): listening on \(endpoint)") }
            for endpoint in change.removedListeners { lines.append("\(name): no longer listening on \(endpoint); open connections finish") }
            for spec in change.addedBackends { lines.append("\(name): backend \(spec.endpoint) added (weight \(spec.weight))") }
            for endpoint in change.removedBackends {
                lines.append("\(name): backend \(endpoint) removed (drains, then disappears once its connections end)")
            }
            for backend in change.changedBackends {
                // Health check on another address (issue 13): a moved check has a line of its own.
                let checkMoved = backend.old.checkEndpoint != backend.new.checkEndpoint
                if backend.old.weight != backend.new.weight {
                    lines.append("\(name): backend \(backend.new.endpoint) weight \(backend.old.weight) -> \(backend.new.weight)")
                } else if !checkMoved && backend.old.description != backend.new.description {
                    lines.append("\(name): backend \(backend.old) -> \(backend.new)")
                }
                if checkMoved {
                    lines.append("\(name): backend \(backend.new.endpoint) checked at \(backend.old.checkEndpoint) -> \(backend.new.checkEndpoint)")
                }
                if backend.old.sendProxy != backend.new.sendProxy {
                    lines.append("\(name): backend \(backend.new.endpoint) send-proxy \(backend.old.sendProxy?.rawValue ?? "off") -> \(backend.new.sendProxy?.rawValue ?? "off")")
                }
                // Checks through PROXY and TLS (issue 22): the next check uses the new keys.
                for (key, old, new) in [("check-send-proxy", backend.old.checkSendProxy, backend.new.checkSendProxy),
                                        ("check-tls", backend.old.checkTLS, backend.new.checkTLS)] where old != new {
                    lines.append("\(name): backend \(backend.new.endpoint) \(key) \(old.map(String.init) ?? "the service's") -> \(new.map(String.init) ?? "the service's")")
                }
            }
            if let balance = change.balance { lines.append("\(name): balance \(balance.old) -> \(balance.new)") }
            if change.settingsChanged && !change.onlyProxyProtocolChanged { lines.append("\(name): settings changed") }
            if change.proxyProtocolChanged { lines.append("\(name): PROXY protocol settings changed (new connections use them)") }
            if change.healthChanged { lines.append("\(name): health check changed") }
            if change.discoveryChanged { lines.append("\(name): DNS discovery changed") }
        }
        for setting in restartOnly { lines.append("not applied until restart: \(setting)") }
        if lines.isEmpty { lines.append("no changes") }
        return lines
    }
}
