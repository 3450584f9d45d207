/// Everything an instance runs from: global settings and its services.
///
/// One immutable value, built either from the command line (one service named `default`) or from
/// a YAML file (`ConfigFile`), and validated by `validate()`. A reload builds a new value and
/// applies `ConfigDifference(from:to:)`.
public struct Configuration: Equatable, Sendable {
    public var global: GlobalSettings
    /// Sorted by name; names are unique.
    public var services: [ServiceConfiguration]

    public init(global: GlobalSettings = GlobalSettings(), services: [ServiceConfiguration]) {
        self.global = global
        self.services = services.sorted { $0.name < $1.name }
    }

    public func service(named name: String) -> ServiceConfiguration? {
        services.first { $0.name == name }
    }

    /// Every listen address of every service, with its service's name.
    public var listeners: [(service: String, endpoint: Endpoint)] {
        services.flatMap { service in service.listen.map { (service.name, $0) } }
    }

    /// Checks every value and every rule across services; throws the first problem found, with
    /// the path of the key it concerns.
    public func validate() throws(ConfigIssue) {
        try global.validate()
        guard !services.isEmpty else {
            throw ConfigIssue(path: [.key("services")], "no services are configured: at least one is needed")
        }
        var names = Set<String>()
        var listenOwners: [String: String] = [:]
        let routeTargets = Set(services.compactMap(\.routeBySNI).flatMap(\.targets))
        for service in services {
            guard let routing = service.routeBySNI else { continue }
            for target in routing.targets {
                guard let routed = self.service(named: target) else {
                    throw ConfigIssue(path: [.key("services"), .key(service.name), .key("route-by-sni")],
                                      "route-by-sni of '\(service.name)' names service '\(target)', which is not defined")
                }
                guard routed.routeBySNI == nil else {
                    throw ConfigIssue(path: [.key("services"), .key(service.name), .key("route-by-sni")],
                                      "route-by-sni of '\(service.name)' names '\(target)', which routes by SNI itself")
                }
            }
        }
        for service in services {
            guard names.insert(service.name).inserted else {
                throw ConfigIssue(path: [.key("services"), .key(service.name)], "service '\(service.name)' is defined twice")
            }
            try service.validate(routedTo: routeTargets.contains(service.name))
            for (index, endpoint) in service.listen.enumerated() {
                let key = endpoint.description
                if let owner = listenOwners[key] {
                    throw ConfigIssue(
                        path: [.key("services"), .key(service.name), .key("listen"), .index(index)],
                        owner == service.name
                            ? "listen address \(key) is listed twice in service '\(service.name)'"
                            : "listen address \(key) is used by two services: '\(owner)' and '\(service.name)'")
                }
                if endpoint.port != 0 { listenOwners[key] = service.name }
            }
        }
    }
}

/// Settings of the whole process: the command-line flags that are not about one service.
public struct GlobalSettings: Equatable, Sendable {
    /// Worker threads; nil means one per online CPU.
    public var workers: Int?
    public var relay: RelayMode = .auto
    /// Path of the admin socket; nil means the default path (`AdminSocketPath.current()`).
    public var adminSocket: String?
    /// False: no admin socket (`--no-admin-socket`, `admin-socket: off`).
    public var adminSocketEnabled = true
    /// Permission bits of the admin socket files (`admin-socket-mode`, octal); connecting needs write.
    public var adminSocketMode = AdminAccess.defaultSocketMode
    /// Group of the admin socket files (`admin-socket-group`: a name or gid); nil: the process's.
    public var adminSocketGroup: String?
    /// A second socket that serves only `show` and `help` (`admin-socket-readonly`); nil: none.
    public var adminSocketReadOnly: String?
    /// Most client connections open at once; nil means what the descriptor limit allows.
    public var maxConnections: Int?
    public var shutdownGrace: Duration = .seconds(30)
    /// KiB.
    public var bufferSize = 64
    public var buffers = 1024
    /// KiB.
    public var pipeSize = 1024
    /// MiB a worker may hold of stalled directions' bytes moved out of its provided buffers
    /// (`parked-memory`); nil: 64 MiB, or the pool's size when that is larger.
    public var parkedMemory: Int?
    public var logLevel: LogLevel = .info
    /// Where admin changes are kept across restarts and reloads; nil keeps none.
    public var stateFile: String?
    /// DNS servers for `dns`/`dns-srv` pools and backend hostnames; empty means the
    /// nameservers of /etc/resolv.conf.
    public var resolvers: [Endpoint] = []
    /// Where `GET /metrics` and `/healthz` are served; nil: nowhere (the default).
    public var metrics: Endpoint?
    /// `stderr` or a file path for one line per closed connection; nil: no access log.
    public var accessLog: String?
    public var accessLogFormat: AccessLogFormat = .text
    /// Entries of the per-source table the services' per-client controls share (fixed memory).
    public var sourceTableSize = GlobalSettings.defaultSourceTableSize

    public init() {}

    public static let defaultSourceTableSize = 65_536
    public static let sourceTableSizeRange = 64...16_777_216

    public static let workerRange = 1...256
    public static let bufferSizeRange = 4...1024
    public static let buffersRange = 16...32768
    public static let pipeSizeRange = 64...16384
    public static let parkedMemoryRange = 1...65536

    /// The settings that a reload cannot change in a running process.
    public func restartOnlyDifferences(to other: GlobalSettings) -> [String] {
        var changes: [String] = []
        func note<T: Equatable>(_ key: String, _ a: T, _ b: T, _ text: (T) -> String) {
            if a != b { changes.append("\(key) \(text(a)) -> \(text(b))") }
        }
        note("workers", workers, other.workers) { $0.map(String.init) ?? "auto" }
        note("relay", relay, other.relay) { $0.rawValue }
        note("admin-socket", adminSocketEnabled ? adminSocket ?? "default" : "off",
             other.adminSocketEnabled ? other.adminSocket ?? "default" : "off") { $0 }
        note("admin-socket-mode", adminSocketMode, other.adminSocketMode) { "0" + String($0, radix: 8) }
        note("admin-socket-group", adminSocketGroup, other.adminSocketGroup) { $0 ?? "default" }
        note("admin-socket-readonly", adminSocketReadOnly, other.adminSocketReadOnly) { $0 ?? "none" }
        note("max-connections", maxConnections, other.maxConnections) { $0.map(String.init) ?? "auto" }
        note("buffer-size", bufferSize, other.bufferSize) { "\($0)" }
        note("buffers", buffers, other.buffers) { "\($0)" }
        note("pipe-size", pipeSize, other.pipeSize) { "\($0)" }
        note("parked-memory", parkedMemory, other.parkedMemory) { $0.map(String.init) ?? "auto" }
        note("log-level", logLevel, other.logLevel) { $0.rawValue }
        note("state-file", stateFile, other.stateFile) { $0 ?? "none" }
        note("metrics", metrics, other.metrics) { $0?.description ?? "off" }
        note("access-log", accessLog, other.accessLog) { $0 ?? "off" }
        note("access-log-format", accessLogFormat, other.accessLogFormat) { $0.rawValue }
        note("source-table-size", sourceTableSize, other.sourceTableSize) { "\($0)" }
        note("resolvers", resolvers, other.resolvers) { $0.isEmpty ? "/etc/resolv.conf" : $0.map(\.description).joined(separator: ",") }
        return changes
    }

    public func validate() throws(ConfigIssue) {
        if let workers, !Self.workerRange.contains(workers) {
            throw ConfigIssue(path: [.key("workers")], "workers \(workers) must be from 1 to 256")
        }
        if !Self.bufferSizeRange.contains(bufferSize) {
            throw ConfigIssue(path: [.key("buffer-size")], "buffer-size \(bufferSize) must be from 4 to 1024 (KiB)")
        }
        if !Self.buffersRange.contains(buffers) || buffers.nonzeroBitCount != 1 {
            throw ConfigIssue(path: [.key("buffers")], "buffers \(buffers) must be a power of two from 16 to 32768")
        }
        if !Self.pipeSizeRange.contains(pipeSize) {
            throw ConfigIssue(path: [.key("pipe-size")], "pipe-size \(pipeSize) must be from 64 to 16384 (KiB)")
        }
        if let parkedMemory, !Self.parkedMemoryRange.contains(parkedMemory) {
            throw ConfigIssue(path: [.key("parked-memory")], "parked-memory \(parkedMemory) must be from 1 to 65536 (MiB)")
        }
        if let maxConnections, maxConnections < 1 {
            throw ConfigIssue(path: [.key("max-connections")], "max-connections \(maxConnections) must be at least 1")
        }
        if shutdownGrace < .zero {
            throw ConfigIssue(path: [.key("shutdown-grace")], "shutdown-grace must not be negative")
        }
        if let stateFile, stateFile.isEmpty {
            throw ConfigIssue(path: [.key("state-file")], "state-file is empty: give a path")
        }
        if let adminSocket, adminSocket.isEmpty {
            throw ConfigIssue(path: [.key("admin-socket")], "admin-socket is empty: give a path or off")
        }
        if let adminSocketReadOnly, adminSocketReadOnly.isEmpty {
            throw ConfigIssue(path: [.key("admin-socket-readonly")], "admin-socket-readonly is empty: give a path")
        }
        if let adminSocketReadOnly, adminSocketEnabled, adminSocketReadOnly == adminSocket {
            throw ConfigIssue(path: [.key("admin-socket-readonly")], "admin-socket-readonly \(adminSocketReadOnly) is the admin socket's path: give it a path of its own")
        }
        if let accessLog, accessLog.isEmpty {
            throw ConfigIssue(path: [.key("access-log")], "access-log is empty: give stderr or a file path")
        }
        if !Self.sourceTableSizeRange.contains(sourceTableSize) {
            throw ConfigIssue(path: [.key("source-table-size")],
                              "source-table-size \(sourceTableSize) must be from \(Self.sourceTableSizeRange.lowerBound) to \(Self.sourceTableSizeRange.upperBound)")
        }
        for (index, resolver) in resolvers.enumerated() where resolver.address == nil {
            throw ConfigIssue(path: [.key("resolvers"), .index(index)], "resolvers: '\(resolver)' must be an IP address and port")
        }
    }
}

/// One service: listeners, a balancing algorithm, a backend pool, a health check and timeouts.
public struct ServiceConfiguration: Equatable, Sendable {
    /// The service the command-line form defines.
    public static let defaultName = "default"

    public var name: String
    public var listen: [Endpoint]
    public var balance: BalanceAlgorithm = .roundRobin
    public var connectTimeout: Duration = .seconds(5)
    /// Nil: idle connections are never closed.
    public var idleTimeout: Duration?
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
    /// `route-by-sni`: this service's listeners send each connection to the service its TLS
    /// ClientHello names, and it has no pool of its own.
    public var routeBySNI: SNIRouting?
    /// How long a routed connection may take to send its ClientHello.
    public var sniTimeout: Duration = .seconds(5)
    /// How long an established backend connection may go unanswered (unacknowledged data, or no
    /// keepalive reply) before it counts as dead: `TCP_USER_TIMEOUT` plus keepalive timings.
    /// Nil keeps the kernel's defaults (minutes).
    public var backendTimeout: Duration?
    // Queue and slow start (issue 13).
    /// Clients that may wait for a backend below its `max-connections`.
    public var queueSize = ServiceSettings.defaultQueueSize
    /// How long a client may wait in the queue.
    public var queueTimeout = ServiceSettings.defaultQueueTimeout
    /// The ramp of every backend without its own `slow-start`; nil: none.
    public var slowStart: Duration?
    // Many connections to one backend (issue 13, `source`).
    /// Local addresses backend connections are made from, in rotation; empty lets the kernel choose.
    public var source: [IPAddress] = []

    // PROXY protocol.
    /// `send-proxy`: the header every backend of the service gets (a backend's own overrides it).
    public var sendProxy: ProxyProtocolVersion?
    /// `accept-proxy: true`: every client of the service's listeners starts with a PROXY header.
    public var acceptProxy = false
    /// `accept-proxy-timeout`: how long a client may take to send it.
    public var acceptProxyTimeout: Duration = AcceptProxySettings.defaultTimeout
    /// `accept-proxy-from`: who may send one; empty means anyone.
    public var acceptProxyFrom: [CIDR] = []
    /// `allow`, `deny`, the per-source limits, `max-connection-rate` and `reject-with`.
    public var clientControls = ClientControls()
    // Failover tiers and what happens to sessions when a backend goes.
    /// `failover-threshold`: a tier with less of its weight healthy spills in proportion; nil: none.
    public var failoverThreshold: Int?
    public var onDown = OnBackendDown.none
    public var onUp = OnBackendUp.none
    /// `removal-grace`: how long a removed backend's sessions may stay; nil: until they end.
    public var removalGrace: Duration?

    public init(name: String, listen: [Endpoint], backends: [BackendSpec]) {
        self.name = name
        self.listen = listen
        self.backends = backends
    }

    /// What the workers need of a service besides its backends.
    public var settings: ServiceSettings {
        var settings = ServiceSettings(connectTimeout: connectTimeout, idleTimeout: idleTimeout, routing: routeBySNI, sniTimeout: sniTimeout,
                        backendTimeout: backendTimeout, queueSize: queueSize, queueTimeout: queueTimeout, slowStart: slowStart)
        // PROXY protocol.
        settings.sendProxy = sendProxy
        settings.acceptProxy = acceptProxy ? AcceptProxySettings(timeout: acceptProxyTimeout, trusted: acceptProxyFrom) : nil
        settings.sourceAddresses = source  // Source addresses (issue 13).
        settings.clientControls = clientControls
        // Failover tiers and sessions.
        settings.failoverThreshold = failoverThreshold
        settings.onDown = onDown
        settings.onUp = onUp
        settings.removalGrace = removalGrace
        return settings
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
        // PROXY protocol.
        if !acceptProxy && !acceptProxyFrom.isEmpty {
            throw ConfigIssue(path: base + [.key("accept-proxy-from")], "accept-proxy-from needs accept-proxy: true")
        }
        if acceptProxyTimeout <= .zero {
            throw ConfigIssue(path: base + [.key("accept-proxy-timeout")], "accept-proxy-timeout must be longer than 0")
        }
        do {
            try clientControls.validate()
        } catch {
            throw ConfigIssue(path: base + error.path, error.message)
        }
        guard !listen.isEmpty || routedTo else {
            throw ConfigIssue(path: base + [.key("listen")], "service '\(name)' has no listen address (and no route-by-sni names it)")
        }
        if let routing = routeBySNI {
            guard backends.isEmpty, discovery == nil else {
                throw ConfigIssue(path: base + [.key("route-by-sni")],
                                  "service '\(name)' routes by SNI: it has no pool of its own (remove backends, dns or dns-srv)")
            }
            do {
                _ = try SNIRoutes(routing.routes.map { ($0.pattern, $0.service) }, default: routing.defaultService)
            } catch {
                throw ConfigIssue(path: base + [.key("route-by-sni")], "route-by-sni: \(error.message)")
            }
            guard sniTimeout > .zero else {
                throw ConfigIssue(path: base + [.key("sni-timeout")], "sni-timeout must be longer than 0")
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
        guard connectTimeout > .zero else {
            throw ConfigIssue(path: base + [.key("connect-timeout")], "connect-timeout must be longer than 0")
        }
        if let idleTimeout, idleTimeout <= .zero {
            throw ConfigIssue(path: base + [.key("idle-timeout")], "idle-timeout must be longer than 0")
        }
        if let backendTimeout, backendTimeout < .seconds(1) {
            throw ConfigIssue(path: base + [.key("backend-timeout")], "backend-timeout must be at least 1s")
        }
        if let health {
            do {
                try health.validate()
            } catch {
                throw ConfigIssue(path: base + [.key("health")], error.message)
            }
        }
        try validateSource(base: base)  // Source addresses (issue 13).
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

/// The per-service values a worker reads from the service's snapshot.
public struct ServiceSettings: Equatable, Sendable {
    public var connectTimeout: Duration
    public var idleTimeout: Duration?
    /// Set for a service that routes by SNI instead of having a pool.
    public var routing: SNIRouting?
    public var sniTimeout: Duration
    public var backendTimeout: Duration?
    // Queue and slow start (issue 13).
    public var queueSize: Int
    public var queueTimeout: Duration
    public var slowStart: Duration?

    public static let defaultQueueSize = 1024
    public static let maximumQueueSize = 1_000_000
    public static let defaultQueueTimeout: Duration = .seconds(5)
    // PROXY protocol.
    /// The header for backends whose spec says none; nil sends none.
    public var sendProxy: ProxyProtocolVersion?
    /// Set when the service's listeners require a PROXY header from every client.
    public var acceptProxy: AcceptProxySettings?
    // Many connections to one backend (issue 13).
    /// `source`: local addresses to bind backend sockets to, in rotation; empty: the kernel chooses.
    public var sourceAddresses: [IPAddress] = []
    /// `allow`, `deny`, the per-source limits, `max-connection-rate` and `reject-with`.
    public var clientControls = ClientControls()
    // Failover tiers and what happens to sessions when a backend goes (SessionShutdown.swift).
    /// `failover-threshold`, 1 to 100 (%); nil: a tier takes every client while any of it is healthy.
    public var failoverThreshold: Int?
    public var onDown = OnBackendDown.none
    public var onUp = OnBackendUp.none
    public var removalGrace: Duration?

    public init(connectTimeout: Duration = .seconds(5), idleTimeout: Duration? = nil, routing: SNIRouting? = nil,
                sniTimeout: Duration = .seconds(5), backendTimeout: Duration? = nil,
                queueSize: Int = ServiceSettings.defaultQueueSize, queueTimeout: Duration = ServiceSettings.defaultQueueTimeout,
                slowStart: Duration? = nil) {
        self.connectTimeout = connectTimeout
        self.idleTimeout = idleTimeout
        self.routing = routing
        self.sniTimeout = sniTimeout
        self.backendTimeout = backendTimeout
        self.queueSize = queueSize
        self.queueTimeout = queueTimeout
        self.slowStart = slowStart
    }

    /// `queue-size`: 0 (no queue: a client finding every backend full is closed) to 1,000,000.
    public static func parseQueueSize(_ text: String) throws(ConfigError) -> Int {
        guard !text.isEmpty, text.allSatisfy({ $0.isASCII && $0.isNumber }), let value = Int(text),
              (0...maximumQueueSize).contains(value) else {
            throw ConfigError("queue-size '\(text)' must be a whole number from 0 to \(maximumQueueSize)")
        }
        return value
    }

    /// `queue-timeout`: a duration above 0.
    public static func parseQueueTimeout(_ text: String) throws(ConfigError) -> Duration {
        try parsePositiveDuration(text, key: "queue-timeout")
    }

    /// A duration above 0 for `key`, whose name the error carries.
    static func parsePositiveDuration(_ text: String, key: String) throws(ConfigError) -> Duration {
        let duration: Duration
        do {
            duration = try Duration(parsing: text)
        } catch {
            throw ConfigError("\(key) '\(text)': \(error.message)")
        }
        guard duration > .zero else { throw ConfigError("\(key) '\(text)' must be longer than 0") }
        return duration
    }

    /// The slow-start window of `backend`: its own, else the service's; nil when none.
    public func slowStart(of backend: BackendSpec) -> Duration? {
        let window = backend.slowStart ?? slowStart
        return window.flatMap { $0 > .zero ? $0 : nil }
    }
}

/// How bytes move between a client and its backend.
public enum RelayMode: String, CaseIterable, Sendable, CustomStringConvertible {
    /// Receive into provided buffers and send from them.
    case copy
    /// Zero copy through a pipe: readiness from the ring, `splice(2)` to move bytes.
    case splice
    /// Copy, switching a direction to splice once it behaves like a bulk stream.
    case auto

    public var description: String { rawValue }
}

/// The lowest level of log line written (swift-log's levels, by name).
public enum LogLevel: String, CaseIterable, Sendable {
    case trace, debug, info, notice, warning, error, critical
}

/// One step of the path to a value in the configuration: a mapping key or a list index.
public enum ConfigPathComponent: Equatable, Sendable, CustomStringConvertible {
    case key(String)
    case index(Int)

    public var description: String {
        switch self {
        case let .key(key): key
        case let .index(index): "[\(index)]"
        }
    }
}

/// A configuration value that was refused, with the path of the key it concerns. The file loader
/// turns the path into a line and column; the command line shows the message alone.
public struct ConfigIssue: Error, Equatable, Sendable, CustomStringConvertible {
    public var path: [ConfigPathComponent]
    public var message: String

    public init(path: [ConfigPathComponent], _ message: String) {
        self.path = path
        self.message = message
    }

    public var description: String { message }
}
