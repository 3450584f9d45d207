/// The per-service values a worker reads from the service's snapshot: every per-service key of
/// the file and the command line (`ServiceKey`), each with its default here and nowhere else.
///
/// Stored properties live in this one declaration (Swift keeps them out of extensions); each
/// feature's keys, parsers and rules live with the feature, e.g. `proxyProtocolKeys` in
/// `Proxy/ProxyProtocol+Keys.swift`.
public struct ServiceSettings: Equatable, Sendable {
    // Timeouts (`timeoutKeys`, below).
    /// `connect-timeout`: how long a backend connect may take before the next backend is tried.
    public var connectTimeout: Duration = .seconds(5)
    /// `idle-timeout`; nil (`off`): idle connections are never closed.
    public var idleTimeout: Duration?
    /// `route-by-sni`: set for a service that routes by SNI instead of having a pool (a file-only
    /// mapping, read by `RawService`).
    public var routing: SNIRouting?
    /// `sni-timeout`: how long a routed connection may take to send its ClientHello.
    public var sniTimeout: Duration = .seconds(5)
    /// `backend-timeout`: how long an established backend connection may go unanswered
    /// (unacknowledged data, or no keepalive reply) before it counts as dead: `TCP_USER_TIMEOUT`
    /// plus keepalive timings. Nil keeps the kernel's defaults (minutes).
    public var backendTimeout: Duration?

    // Queue and slow start (`queueKeys`, ServiceSettings+Queue.swift).
    /// `queue-size`: clients that may wait for a backend below its `max-connections`.
    public var queueSize = 1024
    /// `queue-timeout`: how long a client may wait in the queue.
    public var queueTimeout: Duration = .seconds(5)
    /// `slow-start`: the ramp of every backend without its own; nil: none.
    public var slowStart: Duration?

    // PROXY protocol (`proxyProtocolKeys`, Proxy/ProxyProtocol+Keys.swift).
    /// `send-proxy`: the header for backends whose spec says none; nil sends none.
    public var sendProxy: ProxyProtocolVersion?
    /// `accept-proxy: true`: every client of the service's listeners starts with a PROXY header.
    public var acceptsProxy = false
    /// `accept-proxy-timeout`: how long a client may take to send it.
    public var acceptProxyTimeout: Duration = AcceptProxySettings.defaultTimeout
    /// `accept-proxy-from`: who may send one; empty means anyone.
    public var acceptProxyFrom: [CIDR] = []

    /// `source` (`sourceKeys`, SourceAddresses.swift): local addresses to bind backend sockets
    /// to, in rotation; empty: the kernel chooses.
    public var sourceAddresses: [IPAddress] = []

    /// `allow`, `deny`, the per-source limits, `max-connection-rate` and `reject-with`
    /// (`clientControlKeys`, SourceControl/ClientControls+ConfigFile.swift).
    public var clientControls = ClientControls()

    // Failover tiers and what happens to sessions when a backend goes (`failoverKeys`,
    // Balancing/SessionShutdown.swift).
    /// `failover-threshold`, 1 to 100 (%); nil: a tier takes every client while any of it is healthy.
    public var failoverThreshold: Int?
    /// `on-down`.
    public var onDown = OnBackendDown.none
    /// `on-up`.
    public var onUp = OnBackendUp.none
    /// `removal-grace`: how long a removed backend's sessions may stay; nil: until they end.
    public var removalGrace: Duration?

    // TLS termination (`tlsKeys`, TLS/TLSSettings.swift).
    /// `tls`: the service's listeners terminate TLS; nil: bytes pass as they come.
    public var tls: TLSSettings?
    /// `tls-handshake-timeout`: how long a client may take to complete its handshake.
    public var tlsHandshakeTimeout: Duration = .seconds(10)
    /// `backend-tls`: connections to the backends speak TLS with these settings (a backend's
    /// own `backend-tls` overrides them, `backendTLS(for:)`); nil: plaintext.
    public var backendTLS: BackendTLSSettings?

    public init() {}

    /// Checks every key's rule; throws the first problem, at `base` + the key's name.
    public func validate(at base: [ConfigPathComponent] = []) throws(ConfigIssue) {
        for key in Self.keys {
            if let problem = key.check(self) { throw ConfigIssue(path: base + [.key(key.name)], problem) }
        }
        do {
            try clientControls.validate()
        } catch {
            throw ConfigIssue(path: base + error.path, error.message)
        }
    }

    /// The timeouts: `connect-timeout`, `idle-timeout` (`off`: none), `backend-timeout` (not
    /// checked for a service that routes by SNI, which connects nowhere) and `sni-timeout`
    /// (checked only for one that does).
    static let timeoutKeys: [ServiceKey] = [
        .value("connect-timeout", \.connectTimeout, parse: { (text) throws(ConfigError) in try Duration(parsing: text) },
               check: { $0.routing == nil && $0.connectTimeout <= .zero ? "connect-timeout must be longer than 0" : nil }),
        .value("idle-timeout", \.idleTimeout, parse: { (text) throws(ConfigError) -> Duration? in
            text == "off" ? nil : try Duration(parsing: text)
        }, check: { settings in
            guard settings.routing == nil, let idle = settings.idleTimeout, idle <= .zero else { return nil }
            return "idle-timeout must be longer than 0"
        }),
        .value("sni-timeout", \.sniTimeout, parse: { (text) throws(ConfigError) in try Duration(parsing: text) },
               check: { $0.routing != nil && $0.sniTimeout <= .zero ? "sni-timeout must be longer than 0" : nil }),
        .value("backend-timeout", \.backendTimeout, parse: { (text) throws(ConfigError) -> Duration? in try Duration(parsing: text) },
               check: { settings in
                   guard settings.routing == nil, let timeout = settings.backendTimeout, timeout < .seconds(1) else { return nil }
                   return "backend-timeout must be at least 1s"
               }),
    ]
}
