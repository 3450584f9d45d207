/// One service of the file, or the `defaults` every service starts from. Every key is optional
/// here. The keys that shape the service (listeners, pool, discovery, health, `route-by-sni`)
/// are read below; every per-service setting (per-client controls too) is read through its `ServiceKey` declaration.
struct RawService: Decodable {
    static let structureKeys = [
        "listen", "balance", "health", "backends", "dns", "dns-srv", "weight", "dns-min-ttl", "dns-max-ttl", "route-by-sni",
    ]
    static let keys = structureKeys + ServiceSettings.keys.map(\.name)

    var listen: [Endpoint]?
    var balance: BalanceAlgorithm?
    var health: RawHealth?
    var backends: [BackendSpec]?
    var discovery: BackendDiscovery?
    var weight: Int?
    var dnsMinTTL: Duration?
    var dnsMaxTTL: Duration?
    /// A service's own only: `defaults` cannot route.
    var routeBySNI: SNIRouting?
    /// The per-service keys given, by name.
    var settings: [String: ServiceKey.Setting] = [:]

    init() {}

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: ConfigKey.self)
        try container.rejectUnknownKeys(Self.keys, in: "a service")
        if container.contains(ConfigKey("listen")) {
            // One address or a list of them.
            if let one = try? container.decode(String.self, forKey: ConfigKey("listen")) {
                listen = [try Self.endpoint(one, key: ConfigKey("listen"), in: container)]
            } else {
                listen = try container.parsedList("listen") { (text) throws(ConfigError) in try Endpoint(parsing: text, allowPortZero: true) }
            }
        }
        balance = try container.choice("balance", BalanceAlgorithm.self)
        health = try container.value("health")
        if container.contains(ConfigKey("backends")) {
            backends = try container.decode([RawBackend].self, forKey: ConfigKey("backends")).map(\.spec)
        }
        discovery = try BackendDiscovery.decode(from: container)
        weight = try container.parsed("weight") { (text) throws(ConfigError) in
            try BackendSpec.parseWeight(text, context: "weight")
        }
        dnsMinTTL = try container.duration("dns-min-ttl") ?? nil
        dnsMaxTTL = try container.duration("dns-max-ttl") ?? nil
        routeBySNI = try SNIRouting.decode(from: container)
        for key in ServiceSettings.keys {
            settings[key.name] = try key.decode(container)
        }
    }

    private static func endpoint(_ text: String, key: ConfigKey, in container: KeyedDecodingContainer<ConfigKey>) throws -> Endpoint {
        do {
            return try Endpoint(parsing: text, allowPortZero: true)
        } catch {
            throw DecodingError.dataCorruptedError(forKey: key, in: container, debugDescription: "listen: \(error.message)")
        }
    }

    /// This service's keys over `defaults`' (health keys merge one by one).
    func merged(over defaults: RawService?) -> RawService {
        guard let defaults else { return self }
        var result = self
        result.listen = listen ?? defaults.listen
        result.balance = balance ?? defaults.balance
        result.backends = backends ?? (discovery == nil ? defaults.backends : nil)
        result.discovery = discovery ?? (backends == nil ? defaults.discovery : nil)
        result.weight = weight ?? defaults.weight
        result.dnsMinTTL = dnsMinTTL ?? defaults.dnsMinTTL
        result.dnsMaxTTL = dnsMaxTTL ?? defaults.dnsMaxTTL
        result.settings = defaults.settings.merging(settings) { _, mine in mine }
        switch (health, defaults.health) {
        case let (mine?, theirs?): result.health = mine.merged(over: theirs)
        case (nil, let theirs): result.health = theirs
        default: break
        }
        return result
    }

    func service(named name: String) throws(ConfigIssue) -> ServiceConfiguration {
        var service = ServiceConfiguration(name: name, listen: listen ?? [], backends: backends ?? [])
        if let balance { service.balance = balance }
        if let health {
            service.health = health.off ? nil : health.configuration
        }
        service.discovery = discovery
        if let weight { service.discoveredWeight = weight }
        if let dnsMinTTL { service.dnsMinTTL = dnsMinTTL }
        if let dnsMaxTTL { service.dnsMaxTTL = dnsMaxTTL }
        service.settings = ServiceSettings(Array(settings.values))
        service.settings.routing = routeBySNI
        if routeBySNI != nil { service.health = nil }
        return service
    }
}

extension BackendDiscovery {
    /// `dns: NAME:PORT` or `dns-srv: _service._proto.NAME` (not both); nil when neither is given.
    static func decode(from container: KeyedDecodingContainer<ConfigKey>) throws -> BackendDiscovery? {
        let addresses = try container.parsed("dns") { (text) throws(ConfigError) -> BackendDiscovery in
            let endpoint = try Endpoint(parsing: text)
            guard endpoint.address == nil else {
                throw ConfigError("'\(text)' is an address, not a name: list it under backends")
            }
            _ = try DNSName(parsing: endpoint.host)
            return .addresses(name: endpoint.host, port: endpoint.port)
        }
        guard let records = try container.parsed("dns-srv", { (text) throws(ConfigError) -> BackendDiscovery in
            _ = try DNSName(parsing: text)
            guard text.hasPrefix("_"), text.split(separator: ".").count >= 3 else {
                throw ConfigError("'\(text)' is not an SRV name such as _postgres._tcp.db.example.com")
            }
            return .serviceRecords(name: text)
        }) else { return addresses }
        if addresses != nil {
            throw DecodingError.dataCorruptedError(
                forKey: ConfigKey("dns-srv"), in: container, debugDescription: "dns and dns-srv cannot both be given: choose one")
        }
        return records
    }
}

extension SNIRouting {
    /// `route-by-sni:` a mapping of server-name patterns (and `default`) to service names; nil
    /// when it is not given.
    static func decode(from container: KeyedDecodingContainer<ConfigKey>) throws -> SNIRouting? {
        guard container.contains(ConfigKey("route-by-sni")) else { return nil }
        let table = try container.nestedContainer(keyedBy: ConfigKey.self, forKey: ConfigKey("route-by-sni"))
        var routes: [SNIRouting.Route] = []
        var fallback: String?
        for key in table.allKeys {
            let service = try table.decode(String.self, forKey: key)
            guard ServiceConfiguration.isValidName(service) else {
                throw DecodingError.dataCorruptedError(forKey: key, in: table, debugDescription: "route-by-sni: '\(service)' is not a service name")
            }
            if key.stringValue == "default" { fallback = service } else { routes.append(.init(pattern: key.stringValue, service: service)) }
        }
        return SNIRouting(routes: routes, defaultService: fallback)
    }
}
