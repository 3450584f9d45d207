/// One service: listeners, a balancing algorithm, a backend pool, a health check and its
/// `settings`, the value the workers read. The settings' fields read as the service's own
/// (`service.connectTimeout` is `service.settings.connectTimeout`).
@dynamicMemberLookup
public struct ServiceConfiguration: Equatable, Sendable {
    /// The service the command-line form defines.
    public static let defaultName = "default"

    public var name: String
    public var listen: [Endpoint]
    public var balance: BalanceAlgorithm = .roundRobin
    /// Nil: no health checks (`health: off`, `--no-health-check`).
    public var health: HealthCheckConfig? = HealthCheckConfig()
    /// The static pool; empty when `discovery` gives the pool.
    public var backends: [BackendSpec]
    /// `dns` or `dns-srv`: the pool is what the name resolves to, followed as it changes.
    public var discovery: BackendDiscovery?
    /// The weight of every backend `discovery` finds (SRV records carry their own).
    public var discoveredWeight = 1
    /// Bounds on how long a DNS answer is trusted (its TTL is clamped to them).
    public var dnsMinTTL: Duration = .seconds(1)
    public var dnsMaxTTL: Duration = .seconds(60)
    /// Every per-service key (`ServiceKey`): timeouts, queue, PROXY protocol, sources, per-client
    /// controls, failover; what the service's snapshot carries to the workers.
    public var settings = ServiceSettings()

    public init(name: String, listen: [Endpoint], backends: [BackendSpec]) {
        self.name = name
        self.listen = listen
        self.backends = backends
    }

    public subscript<Value>(dynamicMember field: WritableKeyPath<ServiceSettings, Value>) -> Value {
        get { settings[keyPath: field] }
        set { settings[keyPath: field] = newValue }
    }

    public subscript<Value>(dynamicMember field: KeyPath<ServiceSettings, Value>) -> Value {
        settings[keyPath: field]
    }

    /// Whether `name` may name a service: `[A-Za-z0-9_.-]+`.
    public static func isValidName(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.allSatisfy { byte in
            (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
                || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
                || byte == UInt8(ascii: "_") || byte == UInt8(ascii: ".") || byte == UInt8(ascii: "-")
        }
    }

    /// `routedTo`: another service's `route-by-sni` names this one (it then needs no listener).
    public func validate(routedTo: Bool = false) throws(ConfigIssue) {
        let base: [ConfigPathComponent] = [.key("services"), .key(name)]
        guard Self.isValidName(name) else {
            throw ConfigIssue(path: base, "service name '\(name)' may hold only letters, digits, '_', '.' and '-'")
        }
        try settings.validate(at: base)
        guard !listen.isEmpty || routedTo else {
            throw ConfigIssue(path: base + [.key("listen")], "service '\(name)' has no listen address (and no route-by-sni names it)")
        }
        if let routing = settings.routing {
            guard backends.isEmpty, discovery == nil else {
                throw ConfigIssue(path: base + [.key("route-by-sni")],
                                  "service '\(name)' routes by SNI: it has no pool of its own (remove backends, dns or dns-srv)")
            }
            do {
                _ = try SNIRoutes(routing.routes.map { ($0.pattern, $0.service) }, default: routing.defaultService)
            } catch {
                throw ConfigIssue(path: base + [.key("route-by-sni")], "route-by-sni: \(error.message)")
            }
            return
        }
        if let discovery {
            guard backends.isEmpty else {
                throw ConfigIssue(path: base + [.key(discovery.key)],
                                  "service '\(name)' has both backends and \(discovery.key): give one of them")
            }
            guard dnsMinTTL > .zero, dnsMinTTL <= dnsMaxTTL else {
                throw ConfigIssue(path: base + [.key("dns-min-ttl")], "dns-min-ttl must be longer than 0 and at most dns-max-ttl")
            }
        } else if backends.isEmpty {
            throw ConfigIssue(path: base + [.key("backends")], "service '\(name)' has an empty backend pool: list at least one backend, or use dns or dns-srv")
        }
        if let health {
            do {
                try health.validate()
            } catch {
                throw ConfigIssue(path: base + [.key("health")], error.message)
            }
        }
        try validateSource(base: base)
        var seen = Set<String>()
        for (index, backend) in backends.enumerated() where !seen.insert(backend.endpoint.description).inserted {
            throw ConfigIssue(path: base + [.key("backends"), .index(index)],
                              "backend \(backend.endpoint) is listed twice in service '\(name)'")
        }
    }
}

/// A `route-by-sni` table: server-name patterns (exact or `*.` one-label wildcards) to services.
public struct SNIRouting: Equatable, Sendable {
    public struct Route: Equatable, Sendable {
        public var pattern: String
        public var service: String
        public init(pattern: String, service: String) {
            self.pattern = pattern
            self.service = service
        }
    }

    public var routes: [Route]
    /// Where connections with no server name, no match or no well-formed hello go; nil closes them.
    public var defaultService: String?

    public init(routes: [Route], defaultService: String?) {
        self.routes = routes
        self.defaultService = defaultService
    }

    /// Every service the table names.
    public var targets: [String] { routes.map(\.service) + (defaultService.map { [$0] } ?? []) }

    /// The table a worker looks names up in (built on the control side).
    public func table() throws(ConfigError) -> SNIRoutes<String> {
        try SNIRoutes(routes.map { ($0.pattern, $0.service) }, default: defaultService)
    }
}

/// Where a service's pool comes from when it is not listed.
public enum BackendDiscovery: Equatable, Sendable, CustomStringConvertible {
    /// `dns: NAME:PORT`: every A and AAAA address of NAME is a backend on PORT.
    case addresses(name: String, port: UInt16)
    /// `dns-srv: _service._proto.NAME`: SRV records give targets, ports and weights.
    case serviceRecords(name: String)

    /// The configuration key.
    public var key: String {
        switch self {
        case .addresses: "dns"
        case .serviceRecords: "dns-srv"
        }
    }

    public var description: String {
        switch self {
        case let .addresses(name, port): "\(name):\(port)"
        case let .serviceRecords(name): name
        }
    }
}
