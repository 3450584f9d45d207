/// One backend as given on the command line or to `add`:
/// `HOST:PORT[,weight=N][,priority=N][,backup][,max-connections=N][,slow-start=D]`.
public struct BackendSpec: Hashable, Sendable, CustomStringConvertible {
    public static let maximumWeight = 256
    public static let maximumConnectionLimit = 1_000_000

    public var endpoint: Endpoint
    public var weight: Int
    /// Whether the weight was written explicitly (round robin warns that it ignores it).
    public var weightGiven: Bool

    // Backups, connection limits, slow start (issue 13).
    /// Used only while no primary backend of the service is selectable: the last failover
    /// tier, after every `priority`.
    public var backup = false
    /// The failover tier (0: the first); clients reach a higher number only as the tiers
    /// before it lose healthy capacity (`FailoverTiers`).
    public var priority = 0
    /// At most this many connections at once, over every worker; clients past it wait in the
    /// service's queue. Nil: no limit.
    public var maxConnections: Int?
    /// Ramp from a small share to the full weight over this long after coming up or being
    /// added; nil: the service's `slow-start`.
    public var slowStart: Duration?
    // Health check on another address (issue 13, `check-port` / `check-address`).
    /// The port health checks connect to instead of the backend's (an agent, such as Patroni's
    /// REST API on 8008); nil checks the backend's own port.
    public var checkPort: UInt16?
    /// The host health checks connect to instead of the backend's; nil checks the backend's host.
    public var checkAddress: String?
    // Checks through PROXY and TLS (issue 22): this backend's `check-send-proxy` and
    // `check-tls`; nil takes the service's `health` keys of the same names.
    public var checkSendProxy: Bool?
    public var checkTLS: Bool?

    // PROXY protocol.
    /// `send-proxy` of this backend; nil takes the service's.
    public var sendProxy: ProxyProtocolVersion?
    // Agent checks (issue 22).
    /// `agent-port`, `agent-address`, `agent-interval`, `agent-send` (`AgentCheck.swift`).
    public var agent = AgentCheckSettings()
    // TLS to backends (TLS/BackendTLSSettings.swift).
    /// `backend-tls` of this backend (mapping form only): `false` or its own mapping; nil takes
    /// the service's (`ServiceSettings.backendTLS(for:)`).
    public var backendTLS: BackendTLSOverride?

    public init(endpoint: Endpoint, weight: Int = 1, weightGiven: Bool = false, sendProxy: ProxyProtocolVersion? = nil) {
        self.endpoint = endpoint
        self.weight = weight
        self.weightGiven = weightGiven
        self.sendProxy = sendProxy
    }

    /// Parses `HOST:PORT[,weight=N][,priority=N][,backup][,max-connections=N][,slow-start=D][,check-port=N]
    /// [,check-address=HOST]`, weight from 0 to 256 (0: configured but never picked).
    public init(parsing text: String) throws(ConfigError) {
        let fields = text.split(separator: ",", omittingEmptySubsequences: false)
        let endpoint = try Endpoint(parsing: String(fields[0]))
        self.init(endpoint: endpoint)
        let context = "backend '\(text)'"
        for field in fields.dropFirst() {
            let pair = field.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            switch (pair[0], pair.count) {
            case ("weight", 2):
                weight = try BackendSpec.parseWeight(String(pair[1]), context: context)
                weightGiven = true
            case ("backup", 1):
                backup = true
            case ("priority", 2):
                priority = try BackendSpec.parsePriority(String(pair[1]), context: context)
            case ("max-connections", 2):
                maxConnections = try BackendSpec.parseConnectionLimit(String(pair[1]), context: context)
            case ("slow-start", 2):
                slowStart = try BackendSpec.parseSlowStart(String(pair[1]), context: context)
            // Health check on another address (issue 13).
            case ("check-port", 2):
                checkPort = try BackendSpec.parseCheckPort(String(pair[1]), context: context)
            case ("check-address", 2):
                checkAddress = try BackendSpec.parseCheckAddress(String(pair[1]), context: context)
            // Agent checks (issue 22).
            case (let key, 2) where AgentCheckSettings.keys.contains(String(key)):
                try agent.parse(String(key), String(pair[1]), context: context)
            default:
                throw ConfigError("\(context): unknown option '\(field)' (expected weight=N, priority=N, backup, max-connections=N, slow-start=D, check-port=N, check-address=HOST, agent-port=N, agent-address=IP, agent-interval=D or agent-send=TEXT)")
            }
        }
        try agent.validate(context: context)
        try checkTier(context: context)
    }

    // Failover tiers.
    public static let maximumPriority = 255

    /// Parses a failover tier, 0 (the first) to `maximumPriority`.
    public static func parsePriority(_ text: String, context: String) throws(ConfigError) -> Int {
        guard !text.isEmpty, text.allSatisfy({ $0.isASCII && $0.isNumber }), let value = Int(text),
              (0...maximumPriority).contains(value) else {
            throw ConfigError("\(context): priority '\(text)' must be a whole number from 0 to \(maximumPriority)")
        }
        return value
    }

    /// A backup is the last tier whatever its priority would be: both together are refused.
    public func checkTier(context: String) throws(ConfigError) {
        if backup && priority != 0 {
            throw ConfigError("\(context): backup is the last failover tier; give it priority=N or backup, not both")
        }
    }

    /// Parses a per-backend connection limit from 1 to `maximumConnectionLimit`.
    public static func parseConnectionLimit(_ text: String, context: String) throws(ConfigError) -> Int {
        guard !text.isEmpty, text.allSatisfy({ $0.isASCII && $0.isNumber }), let value = Int(text),
              (1...maximumConnectionLimit).contains(value) else {
            throw ConfigError("\(context): max-connections '\(text)' must be a whole number from 1 to \(maximumConnectionLimit)")
        }
        return value
    }

    /// Parses a slow-start window: a duration above 0, or `off` (0: no ramp).
    public static func parseSlowStart(_ text: String, context: String) throws(ConfigError) -> Duration {
        if text == "off" { return .zero }
        let duration: Duration
        do {
            duration = try Duration(parsing: text)
        } catch {
            throw ConfigError("\(context): slow-start '\(text)': \(error.message)")
        }
        guard duration <= .seconds(3600) else {
            throw ConfigError("\(context): slow-start '\(text)' must be at most 1h")
        }
        // Whole milliseconds, as the backend is written back (state file, `show`), so that what
        // is read back is what was parsed.
        return .milliseconds(duration.milliseconds)
    }

    /// Where health checks connect: `check-address`/`check-port` where given, else the backend.
    /// The backend's resolved address is kept when the host is the backend's own.
    public var checkEndpoint: Endpoint {
        guard checkPort != nil || checkAddress != nil else { return endpoint }
        var target = endpoint
        if let checkAddress, checkAddress != endpoint.host { target = Endpoint(host: checkAddress, port: endpoint.port) }
        if let checkPort { target.port = checkPort }
        return target
    }

    /// Whether checks go somewhere other than the backend itself (`show backends` shows where).
    public var checksElsewhere: Bool { checkEndpoint.description != endpoint.description }

    /// Parses a `check-port`: 1 to 65535. A nil `context` leaves the message without a prefix
    /// (the file's decoder names the key itself).
    public static func parseCheckPort(_ text: String, context: String?) throws(ConfigError) -> UInt16 {
        guard !text.isEmpty, text.allSatisfy({ $0.isASCII && $0.isNumber }), let port = UInt16(text), port != 0 else {
            throw ConfigError("\(context.map { "\($0): check-port " } ?? "")'\(text)' must be a number from 1 to 65535")
        }
        return port
    }

    /// Parses a `check-address`: an IP address (IPv6 with or without brackets) or a hostname.
    public static func parseCheckAddress(_ text: String, context: String?) throws(ConfigError) -> String {
        var host = Substring(text)
        if host.hasPrefix("[") && host.hasSuffix("]") { host = host.dropFirst().dropLast() }
        let valid = !host.isEmpty && (IPAddress(String(host)) != nil
            || (!host.contains(":") && host.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || ".-_".contains($0)) }))
        guard valid else {
            throw ConfigError("\(context.map { "\($0): check-address " } ?? "")'\(text)' is not an IP address or hostname (give the port as check-port)")
        }
        return String(host)
    }

    /// Parses a weight from 0 to `maximumWeight`.
    public static func parseWeight(_ text: String, context: String) throws(ConfigError) -> Int {
        guard !text.isEmpty, text.allSatisfy({ $0.isASCII && $0.isNumber }), let value = Int(text),
              (0...maximumWeight).contains(value) else {
            throw ConfigError("\(context): weight '\(text)' must be a whole number from 0 to \(maximumWeight)")
        }
        return value
    }

    public var description: String {
        var text = weightGiven ? "\(endpoint),weight=\(weight)" : endpoint.description
        if priority != 0 { text += ",priority=\(priority)" }
        if backup { text += ",backup" }
        if let maxConnections { text += ",max-connections=\(maxConnections)" }
        if let slowStart { text += ",slow-start=\(slowStart.shortDescription)" }
        if let checkAddress { text += ",check-address=\(checkAddress)" }
        if let checkPort { text += ",check-port=\(checkPort)" }
        text += agent.options  // Agent checks (issue 22).
        return text
    }
}

/// One backend: `HOST:PORT[,weight=N]` as on the command line, or a mapping with `address`.
struct RawBackend: Decodable {
    static let keys = ["address", "weight", "backup", "max-connections", "slow-start", /* PROXY protocol */ "send-proxy"]
        + ["check-port", "check-address"]  // Health check on another address (issue 13).
        + ["check-send-proxy", "check-tls"]  // The service's health keys of the same names, overridden (issue 22).
        + AgentCheckSettings.keys  // Agent checks (issue 22).
        + ["priority"]  // Failover tiers.
        + ["backend-tls"]  // TLS to backends: the service's key of the same name, overridden.

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
        // TLS to backends.
        spec.backendTLS = try container.value("backend-tls", as: BackendTLSOverride.self)
        if case let .on(settings)? = spec.backendTLS, let problem = settings.problem {
            throw DecodingError.dataCorruptedError(forKey: ConfigKey("backend-tls"), in: container, debugDescription: problem)
        }
    }
}
