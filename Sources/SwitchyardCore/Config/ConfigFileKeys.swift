/// The keys of the configuration file, as `Decodable` types. Keys are the command-line flags'
/// names (kebab-case). Unknown keys are errors that name the nearest valid key; values are
/// parsed with the same parsers as the command line, so both accept exactly the same text.

/// A key of the file, by its text.
struct ConfigKey: CodingKey {
    var stringValue: String
    var intValue: Int?
    init(_ text: String) { stringValue = text }
    init?(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) {
        stringValue = "\(intValue)"
        self.intValue = intValue
    }
}

extension KeyedDecodingContainer where Key == ConfigKey {
    /// Refuses keys not in `allowed`, naming the nearest valid one.
    func rejectUnknownKeys(_ allowed: [String], in what: String) throws {
        for key in allKeys where !allowed.contains(key.stringValue) {
            let hint = NearestKey.suggestion(for: key.stringValue, among: allowed).map { "; did you mean '\($0)'?" }
                ?? "; valid keys: \(allowed.joined(separator: ", "))"
            throw DecodingError.dataCorruptedError(
                forKey: key, in: self, debugDescription: "unknown key '\(key.stringValue)' in \(what)\(hint)")
        }
    }

    func value<T: Decodable>(_ key: String, as type: T.Type = T.self) throws -> T? {
        try decodeIfPresent(T.self, forKey: ConfigKey(key))
    }

    /// A value parsed from its text by `parse`, whose `ConfigError` is reported at the key.
    func parsed<T>(_ key: String, _ parse: (String) throws(ConfigError) -> T) throws -> T? {
        guard let text = try decodeIfPresent(String.self, forKey: ConfigKey(key)) else { return nil }
        do {
            return try parse(text)
        } catch {
            throw DecodingError.dataCorruptedError(forKey: ConfigKey(key), in: self, debugDescription: "\(key): \(error.message)")
        }
    }

    /// A list of values each parsed from its text by `parse`; an error is reported at the item.
    func parsedList<T>(_ key: String, _ parse: (String) throws(ConfigError) -> T) throws -> [T]? {
        guard contains(ConfigKey(key)) else { return nil }
        var list = try nestedUnkeyedContainer(forKey: ConfigKey(key))
        var values: [T] = []
        while !list.isAtEnd {
            let text = try list.decode(String.self)
            do {
                values.append(try parse(text))
            } catch {
                throw DecodingError.dataCorrupted(DecodingError.Context(
                    codingPath: list.codingPath + [ConfigKey(intValue: list.currentIndex - 1)!],
                    debugDescription: "\(key): \(error.message)"))
            }
        }
        return values
    }

    /// A duration such as `500ms` or `2s`; with `allowOff`, `off` gives `.some(nil)`.
    func duration(_ key: String, allowOff: Bool = false) throws -> Duration?? {
        try parsed(key) { (text) throws(ConfigError) -> Duration? in
            if allowOff && text == "off" { return nil }
            return try Duration(parsing: text)
        }
    }

    /// `true` or `false`.
    func flag(_ key: String) throws -> Bool? {
        try parsed(key) { (text) throws(ConfigError) -> Bool in
            switch text {
            case "true": return true
            case "false": return false
            default: throw ConfigError("'\(text)' must be true or false")
            }
        }
    }

    /// One of an enumeration's raw values; the error lists them.
    func choice<T: RawRepresentable & CaseIterable>(_ key: String, _ type: T.Type) throws -> T? where T.RawValue == String {
        try parsed(key) { (text) throws(ConfigError) -> T in
            guard let value = T(rawValue: text) else {
                throw ConfigError("'\(text)' is not one of \(T.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            return value
        }
    }
}

/// The whole file.
struct RawConfigFile: Decodable {
    static let globalKeys = [
        "workers", "relay", "admin-socket", "max-connections", "shutdown-grace", "buffer-size", "buffers",
        "pipe-size", "log-level", "state-file", "resolvers", "metrics", "access-log", "access-log-format",
        "source-table-size", "parked-memory",
    ]
        + ["admin-socket-mode", "admin-socket-group", "admin-socket-readonly"]  // Admin socket access (issue 27).
    static let keys = globalKeys + ["defaults", "services"]

    var workers: Int?
    var relay: RelayMode?
    /// `off` disables the socket.
    var adminSocket: String?
    var adminSocketMode: UInt32?
    var adminSocketGroup: String?
    var adminSocketReadOnly: String?
    var maxConnections: Int?
    var shutdownGrace: Duration?
    var bufferSize: Int?
    var buffers: Int?
    var pipeSize: Int?
    var parkedMemory: Int?
    var logLevel: LogLevel?
    var stateFile: String?
    var resolvers: [Endpoint]?
    var metrics: Endpoint?
    var accessLog: String?
    var accessLogFormat: AccessLogFormat?
    var sourceTableSize: Int?
    var defaults: RawService?
    /// In file order.
    var services: [(name: String, service: RawService)] = []

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: ConfigKey.self)
        try container.rejectUnknownKeys(Self.keys, in: "the top level")
        workers = try container.value("workers")
        relay = try container.choice("relay", RelayMode.self)
        adminSocket = try container.value("admin-socket")
        adminSocketMode = try container.parsed("admin-socket-mode", AdminAccess.parseSocketMode)
        adminSocketGroup = try container.parsed("admin-socket-group") { (text) throws(ConfigError) -> String in
            try AdminAccess.checkSocketGroup(text)
            return text
        }
        adminSocketReadOnly = try container.value("admin-socket-readonly")
        maxConnections = try container.value("max-connections")
        shutdownGrace = try container.duration("shutdown-grace") ?? nil
        bufferSize = try container.value("buffer-size")
        buffers = try container.value("buffers")
        pipeSize = try container.value("pipe-size")
        parkedMemory = try container.value("parked-memory")
        logLevel = try container.choice("log-level", LogLevel.self)
        stateFile = try container.value("state-file")
        resolvers = try container.parsedList("resolvers") { (text) throws(ConfigError) -> Endpoint in
            let server = try Endpoint(parsing: text)
            guard server.address != nil else { throw ConfigError("'\(text)' must be an IP address and port, such as 127.0.0.1:53") }
            return server
        }
        metrics = try container.parsed("metrics") { (text) throws(ConfigError) in try Endpoint(parsing: text, allowPortZero: true) }
        accessLog = try container.value("access-log")
        accessLogFormat = try container.choice("access-log-format", AccessLogFormat.self)
        sourceTableSize = try container.value("source-table-size")
        defaults = try container.value("defaults")
        if defaults?.listen != nil {
            throw DecodingError.dataCorrupted(DecodingError.Context(
                codingPath: container.codingPath + [ConfigKey("defaults"), ConfigKey("listen")],
                debugDescription: "'listen' cannot be a default: each service needs listen addresses of its own"))
        }
        guard container.contains(ConfigKey("services")) else {
            throw DecodingError.keyNotFound(ConfigKey("services"), DecodingError.Context(
                codingPath: container.codingPath, debugDescription: "no services"))
        }
        let services = try container.nestedContainer(keyedBy: ConfigKey.self, forKey: ConfigKey("services"))
        for key in services.allKeys {
            guard ServiceConfiguration.isValidName(key.stringValue) else {
                throw DecodingError.dataCorruptedError(
                    forKey: key, in: services,
                    debugDescription: "service name '\(key.stringValue)' may hold only letters, digits, '_', '.' and '-'")
            }
            self.services.append((key.stringValue, try services.decode(RawService.self, forKey: key)))
        }
    }

    /// The configuration the file describes, with defaults applied (validated by the caller).
    func configuration() throws(ConfigIssue) -> Configuration {
        var global = GlobalSettings()
        if let workers { global.workers = workers }
        if let relay { global.relay = relay }
        if let adminSocket {
            if adminSocket == "off" { global.adminSocketEnabled = false } else { global.adminSocket = adminSocket }
        }
        if let adminSocketMode { global.adminSocketMode = adminSocketMode }
        global.adminSocketGroup = adminSocketGroup
        global.adminSocketReadOnly = adminSocketReadOnly
        global.maxConnections = maxConnections
        if let shutdownGrace { global.shutdownGrace = shutdownGrace }
        if let bufferSize { global.bufferSize = bufferSize }
        if let buffers { global.buffers = buffers }
        if let pipeSize { global.pipeSize = pipeSize }
        global.parkedMemory = parkedMemory
        if let logLevel { global.logLevel = logLevel }
        global.stateFile = stateFile
        global.resolvers = resolvers ?? []
        global.metrics = metrics
        global.accessLog = accessLog
        if let accessLogFormat { global.accessLogFormat = accessLogFormat }
        if let sourceTableSize { global.sourceTableSize = sourceTableSize }
        var built: [ServiceConfiguration] = []
        for (name, raw) in services {
            built.append(try raw.merged(over: defaults).service(named: name))
        }
        return Configuration(global: global, services: built)
    }
}

/// One service, or the `defaults` every service starts from. Every key is optional here.
struct RawService: Decodable {
    static let keys = [
        "listen", "balance", "connect-timeout", "idle-timeout", "health", "backends", "dns", "dns-srv", "weight",
        "dns-min-ttl", "dns-max-ttl", "route-by-sni", "sni-timeout", "backend-timeout",
        // Queue and slow start (issue 13).
        "queue-size", "queue-timeout", "slow-start",
        // PROXY protocol.
        "send-proxy", "accept-proxy", "accept-proxy-timeout", "accept-proxy-from",
    ]
        + ["source"]  // Many connections to one backend (issue 13).
        + RawClientControls.keys
        + ["failover-threshold", "on-down", "on-up", "removal-grace"]  // Failover tiers and sessions.


    var listen: [Endpoint]?
    var balance: BalanceAlgorithm?
    var connectTimeout: Duration?
    /// `.some(nil)`: `idle-timeout: off`.
    var idleTimeout: Duration??
    var health: RawHealth?
    var backends: [BackendSpec]?
    var discovery: BackendDiscovery?
    var weight: Int?
    var dnsMinTTL: Duration?
    var dnsMaxTTL: Duration?
    var routeBySNI: SNIRouting?
    var sniTimeout: Duration?
    var backendTimeout: Duration?
    // Queue and slow start (issue 13).
    var queueSize: Int?
    var queueTimeout: Duration?
    var slowStart: Duration?
    // PROXY protocol.
    var sendProxy: ProxyProtocolVersion?
    var acceptProxy: Bool?
    var acceptProxyTimeout: Duration?
    var acceptProxyFrom: [CIDR]?
    /// `source: ADDR[,ADDR...]` or a list (issue 13).
    var source: [IPAddress]?
    var clientControls = RawClientControls()
    // Failover tiers and what happens to sessions when a backend goes.
    var failoverThreshold: Int?
    var onDown: OnBackendDown?
    var onUp: OnBackendUp?
    var removalGrace: Duration?

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
        connectTimeout = try container.duration("connect-timeout") ?? nil
        idleTimeout = try container.duration("idle-timeout", allowOff: true)
        health = try container.value("health")
        if container.contains(ConfigKey("backends")) {
            backends = try container.decode([RawBackend].self, forKey: ConfigKey("backends")).map(\.spec)
        }
        if let address = try container.parsed("dns", { (text) throws(ConfigError) -> BackendDiscovery in
            let endpoint = try Endpoint(parsing: text)
            guard endpoint.address == nil else {
                throw ConfigError("'\(text)' is an address, not a name: list it under backends")
            }
            _ = try DNSName(parsing: endpoint.host)
            return .addresses(name: endpoint.host, port: endpoint.port)
        }) {
            discovery = address
        }
        if let service = try container.parsed("dns-srv", { (text) throws(ConfigError) -> BackendDiscovery in
            _ = try DNSName(parsing: text)
            guard text.hasPrefix("_"), text.split(separator: ".").count >= 3 else {
                throw ConfigError("'\(text)' is not an SRV name such as _postgres._tcp.db.example.com")
            }
            return .serviceRecords(name: text)
        }) {
            if discovery != nil {
                throw DecodingError.dataCorruptedError(
                    forKey: ConfigKey("dns-srv"), in: container, debugDescription: "dns and dns-srv cannot both be given: choose one")
            }
            discovery = service
        }
        weight = try container.parsed("weight") { (text) throws(ConfigError) in
            try BackendSpec.parseWeight(text, context: "weight")
        }
        dnsMinTTL = try container.duration("dns-min-ttl") ?? nil
        dnsMaxTTL = try container.duration("dns-max-ttl") ?? nil
        if container.contains(ConfigKey("route-by-sni")) {
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
            routeBySNI = SNIRouting(routes: routes, defaultService: fallback)
        }
        sniTimeout = try container.duration("sni-timeout") ?? nil
        backendTimeout = try container.duration("backend-timeout") ?? nil
        queueSize = try container.parsed("queue-size") { (text) throws(ConfigError) in try ServiceSettings.parseQueueSize(text) }
        queueTimeout = try container.parsed("queue-timeout") { (text) throws(ConfigError) in try ServiceSettings.parseQueueTimeout(text) }
        slowStart = try container.parsed("slow-start") { (text) throws(ConfigError) in
            try BackendSpec.parseSlowStart(text, context: "service")
        }
        // PROXY protocol.
        sendProxy = try container.choice("send-proxy", ProxyProtocolVersion.self)
        acceptProxy = try container.value("accept-proxy")
        acceptProxyTimeout = try container.duration("accept-proxy-timeout") ?? nil
        acceptProxyFrom = try container.parsedList("accept-proxy-from") { (text) throws(ConfigError) in try CIDR(parsing: text) }
        // Many connections to one backend (issue 13): one text `ADDR[,ADDR...]` or a list of addresses.
        if container.contains(ConfigKey("source")) {
            if (try? container.decode(String.self, forKey: ConfigKey("source"))) != nil {
                source = try container.parsed("source", SourceAddresses.parse)
            } else {
                source = try container.parsedList("source", SourceAddresses.parseOne)
            }
        }
        clientControls = try RawClientControls(container)
        // Failover tiers and what happens to sessions when a backend goes.
        failoverThreshold = try container.parsed("failover-threshold", FailoverTiers.parseThreshold)
        onDown = try container.choice("on-down", OnBackendDown.self)
        onUp = try container.choice("on-up", OnBackendUp.self)
        removalGrace = try container.parsed("removal-grace", ServiceSettings.parseRemovalGrace)
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
        result.connectTimeout = connectTimeout ?? defaults.connectTimeout
        result.idleTimeout = idleTimeout ?? defaults.idleTimeout
        result.backends = backends ?? (discovery == nil ? defaults.backends : nil)
        result.discovery = discovery ?? (backends == nil ? defaults.discovery : nil)
        result.weight = weight ?? defaults.weight
        result.dnsMinTTL = dnsMinTTL ?? defaults.dnsMinTTL
        result.dnsMaxTTL = dnsMaxTTL ?? defaults.dnsMaxTTL
        result.sniTimeout = sniTimeout ?? defaults.sniTimeout
        result.backendTimeout = backendTimeout ?? defaults.backendTimeout
        result.queueSize = queueSize ?? defaults.queueSize
        result.queueTimeout = queueTimeout ?? defaults.queueTimeout
        result.slowStart = slowStart ?? defaults.slowStart
        // PROXY protocol.
        result.sendProxy = sendProxy ?? defaults.sendProxy
        result.acceptProxy = acceptProxy ?? defaults.acceptProxy
        result.acceptProxyTimeout = acceptProxyTimeout ?? defaults.acceptProxyTimeout
        result.acceptProxyFrom = acceptProxyFrom ?? defaults.acceptProxyFrom
        result.source = source ?? defaults.source  // Source addresses (issue 13).
        result.clientControls = clientControls.merged(over: defaults.clientControls)
        // Failover tiers and sessions.
        result.failoverThreshold = failoverThreshold ?? defaults.failoverThreshold
        result.onDown = onDown ?? defaults.onDown
        result.onUp = onUp ?? defaults.onUp
        result.removalGrace = removalGrace ?? defaults.removalGrace
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
        if let connectTimeout { service.connectTimeout = connectTimeout }
        if let idleTimeout { service.idleTimeout = idleTimeout }
        if let health {
            service.health = health.off ? nil : health.configuration
        }
        service.discovery = discovery
        if let weight { service.discoveredWeight = weight }
        if let dnsMinTTL { service.dnsMinTTL = dnsMinTTL }
        if let dnsMaxTTL { service.dnsMaxTTL = dnsMaxTTL }
        service.routeBySNI = routeBySNI
        if let sniTimeout { service.sniTimeout = sniTimeout }
        service.backendTimeout = backendTimeout
        if let queueSize { service.queueSize = queueSize }
        if let queueTimeout { service.queueTimeout = queueTimeout }
        if let slowStart { service.slowStart = slowStart == .zero ? nil : slowStart }
        // PROXY protocol.
        service.sendProxy = sendProxy
        if let acceptProxy { service.acceptProxy = acceptProxy }
        if let acceptProxyTimeout { service.acceptProxyTimeout = acceptProxyTimeout }
        service.acceptProxyFrom = acceptProxyFrom ?? []
        if let source { service.source = source }  // Source addresses (issue 13).
        service.clientControls = clientControls.controls
        // Failover tiers and sessions.
        service.failoverThreshold = failoverThreshold
        if let onDown { service.onDown = onDown }
        if let onUp { service.onUp = onUp }
        service.removalGrace = removalGrace
        if routeBySNI != nil { service.health = nil }
        return service
    }
}

/// `health:` as a mapping, or `off`.
struct RawHealth: Decodable {
    static let keys = ["interval", "timeout", "rise", "fall", "send", "expect", "expect-match"]
        + ["check-tls", "server-name", "ca-file"]  // TLS in checks (issue 22).
        + RawHealthDialog.keys  // Check sequences, protocol checks (type), check-send-proxy (issue 22).

    var off = false
    var interval: Duration?
    var timeout: Duration?
    var rise: Int?
    var fall: Int?
    var send: [UInt8]?
    var expect: [UInt8]?
    var expectMatch: HealthCheckConfig.ExpectMatch?
    // TLS in checks (issue 22).
    var checkTLS: Bool?
    var serverName: String?
    var caFile: String?
    var dialog = RawHealthDialog()  // issue 22

    init(from decoder: any Decoder) throws {
        if let single = try? decoder.singleValueContainer(), let text = try? single.decode(String.self) {
            guard text == "off" || text == "false" else {
                throw DecodingError.dataCorruptedError(
                    in: single, debugDescription: "health: expected a mapping (\(Self.keys.joined(separator: ", "))) or off, found '\(text)'")
            }
            off = true
            return
        }
        let container = try decoder.container(keyedBy: ConfigKey.self)
        try container.rejectUnknownKeys(Self.keys, in: "health")
        interval = try container.duration("interval") ?? nil
        timeout = try container.duration("timeout") ?? nil
        rise = try container.value("rise")
        fall = try container.value("fall")
        send = try container.parsed("send", HealthCheckConfig.decodeEscapes)
        expect = try container.parsed("expect", HealthCheckConfig.decodeEscapes)
        expectMatch = try container.choice("expect-match", HealthCheckConfig.ExpectMatch.self)
        // TLS in checks (issue 22).
        checkTLS = try container.flag("check-tls")
        serverName = try container.parsed("server-name", HealthCheckTLS.parseServerName)
        caFile = try container.parsed("ca-file", HealthCheckTLS.parseCAFile)
        dialog = try RawHealthDialog(container)
    }

    func merged(over defaults: RawHealth) -> RawHealth {
        guard !off, !defaults.off else { return self }
        var result = self
        result.interval = interval ?? defaults.interval
        result.timeout = timeout ?? defaults.timeout
        result.rise = rise ?? defaults.rise
        result.fall = fall ?? defaults.fall
        // What is checked comes from one place: a service's steps or type replace the defaults'
        // send/expect, and its send/expect replace the defaults' steps or type (issue 22).
        let mySendExpect = send != nil || expect != nil
        if !dialog.saysWhatIsChecked {
            result.send = send ?? defaults.send
            result.expect = expect ?? defaults.expect
            result.expectMatch = expectMatch ?? defaults.expectMatch
        }
        result.dialog = dialog.merged(over: defaults.dialog, serviceSaysWhatIsChecked: mySendExpect || dialog.saysWhatIsChecked)
        // TLS in checks (issue 22).
        result.checkTLS = checkTLS ?? defaults.checkTLS
        result.serverName = serverName ?? defaults.serverName
        result.caFile = caFile ?? defaults.caFile
        return result
    }

    var configuration: HealthCheckConfig {
        var config = HealthCheckConfig()
        if let interval { config.interval = interval }
        if let timeout { config.timeout = timeout }
        if let rise { config.rise = rise }
        if let fall { config.fall = fall }
        config.send = send
        config.expect = expect
        if let expectMatch { config.expectMatch = expectMatch }
        // TLS in checks (issue 22); `type: tls` (handshakeOnly) comes with the dialog's keys.
        config.tls = HealthCheckTLS(handshakeOnly: false, checkTLS: checkTLS ?? false, serverName: serverName, caFile: caFile)
        dialog.apply(to: &config)
        return config
    }
}

/// One backend: `HOST:PORT[,weight=N]` as on the command line, or a mapping with `address`.
struct RawBackend: Decodable {
    static let keys = ["address", "weight", "backup", "max-connections", "slow-start", /* PROXY protocol */ "send-proxy"]
        + ["check-port", "check-address"]  // Health check on another address (issue 13).
        + ["check-send-proxy", "check-tls"]  // The service's health keys of the same names, overridden (issue 22).
        + AgentCheckSettings.keys  // Agent checks (issue 22).
        + ["priority"]  // Failover tiers.

    var spec: BackendSpec

    init(from decoder: any Decoder) throws {
        if let single = try? decoder.singleValueContainer(), let text = try? single.decode(String.self) {
            do {
                spec = try BackendSpec(parsing: text)
            } catch {
                throw DecodingError.dataCorruptedError(in: single, debugDescription: error.message)
            }
            return
        }
        let container = try decoder.container(keyedBy: ConfigKey.self)
        try container.rejectUnknownKeys(Self.keys, in: "a backend")
        guard let endpoint = try container.parsed("address", { (text) throws(ConfigError) in try Endpoint(parsing: text) }) else {
            throw DecodingError.keyNotFound(ConfigKey("address"), DecodingError.Context(
                codingPath: container.codingPath, debugDescription: "a backend needs an address"))
        }
        spec = BackendSpec(endpoint: endpoint)
        if let weight = try container.parsed("weight", { (text) throws(ConfigError) in
            try BackendSpec.parseWeight(text, context: "backend \(endpoint)")
        }) {
            spec.weight = weight
            spec.weightGiven = true
        }
        // Backups, connection limits, slow start (issue 13).
        let context = "backend \(endpoint)"
        spec.backup = try container.flag("backup") ?? false
        // Failover tiers.
        spec.priority = try container.parsed("priority") { (text) throws(ConfigError) in
            try BackendSpec.parsePriority(text, context: context)
        } ?? 0
        do {
            try spec.checkTier(context: context)
        } catch {
            throw DecodingError.dataCorruptedError(forKey: ConfigKey("priority"), in: container, debugDescription: error.message)
        }
        spec.maxConnections = try container.parsed("max-connections") { (text) throws(ConfigError) in
            try BackendSpec.parseConnectionLimit(text, context: context)
        }
        spec.slowStart = try container.parsed("slow-start") { (text) throws(ConfigError) in
            try BackendSpec.parseSlowStart(text, context: context)
        }
        // PROXY protocol.
        spec.sendProxy = try container.choice("send-proxy", ProxyProtocolVersion.self)
        // Health check on another address (issue 13).
        spec.checkPort = try container.parsed("check-port") { (text) throws(ConfigError) in
            try BackendSpec.parseCheckPort(text, context: nil)
        }
        spec.checkAddress = try container.parsed("check-address") { (text) throws(ConfigError) in
            try BackendSpec.parseCheckAddress(text, context: nil)
        }
        // Checks through PROXY and TLS (issue 22).
        spec.checkSendProxy = try container.flag("check-send-proxy")
        spec.checkTLS = try container.flag("check-tls")
        // Agent checks (issue 22).
        var agent = AgentCheckSettings()
        for key in AgentCheckSettings.keys {
            _ = try container.parsed(key) { (text) throws(ConfigError) in try agent.parse(key, text, context: nil) }
        }
        spec.agent = agent
        do {
            try agent.validate(context: context)
        } catch {
            throw DecodingError.dataCorruptedError(forKey: ConfigKey("agent-port"), in: container, debugDescription: error.message)
        }
    }
}
