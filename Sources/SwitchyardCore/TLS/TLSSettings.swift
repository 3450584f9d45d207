import Yams

/// A service's `tls:` mapping (README, "TLS termination"): its listeners terminate TLS with
/// these certificates and hand plaintext to the backends.
///
/// ```yaml
/// tls:
///   certificates:              # chosen by SNI from their SANs; the first is the default
///     - {cert: /etc/switchyard/redis.pem, key: /etc/switchyard/redis.key}
///   min-version: 1.2           # 1.2 or 1.3
///   ciphers: ECDHE+AESGCM      # TLS 1.2 and below, OpenSSL's cipher-list syntax
///   ciphersuites: TLS_AES_128_GCM_SHA256   # TLS 1.3
///   alpn: [redis]
///   client-ca: /etc/switchyard/clients.pem
///   client-auth: required      # none, optional or required
///   session-tickets: true
/// ```
///
/// Only the shape is checked here; the files (readable, a key that is not encrypted and matches
/// its certificate) and the cipher strings (OpenSSL's to judge) are checked by IO at start,
/// reload and `check-config`.
public struct TLSSettings: Equatable, Sendable {
    /// One certificate and its private key, paths to PEM files; `cert` may hold the chain after
    /// the leaf.
    public struct Certificate: Equatable, Sendable {
        public var cert: String
        public var key: String

        public init(cert: String, key: String) {
            self.cert = cert
            self.key = key
        }
    }

    /// The lowest protocol version a client may use.
    public enum Version: String, CaseIterable, Sendable {
        case tls12 = "1.2"
        case tls13 = "1.3"
    }

    /// Whether clients must present a certificate that chains to `client-ca`.
    public enum ClientAuth: String, CaseIterable, Sendable {
        /// None is asked for.
        case none
        /// One is asked for; a client without one is let in, one with a bad one is refused.
        case optional
        /// A client without a good one is refused.
        case required
    }

    /// At least one; the first is served when no other's names match the client's SNI.
    public var certificates: [Certificate]
    public var minVersion = Version.tls12
    /// `ciphers`: OpenSSL's cipher list for TLS 1.2; nil: `defaultCiphers`.
    public var ciphers: String?
    /// `ciphersuites`: OpenSSL's TLS 1.3 suites; nil keeps OpenSSL's default.
    public var ciphersuites: String?
    /// Protocols offered by ALPN, in the server's order of preference; empty: no ALPN.
    public var alpn: [String] = []
    /// `client-ca`: the CAs a client certificate must chain to.
    public var clientCA: String?
    public var clientAuth = ClientAuth.none
    /// Whether resumption by session tickets is offered.
    public var sessionTickets = true

    public init(certificates: [Certificate]) {
        self.certificates = certificates
    }

    /// The TLS 1.2 ciphers when `ciphers` is not given: forward-secret AEAD suites only (Mozilla's
    /// "intermediate" list without DHE), so that no CBC suite (LUCKY13) is ever offered.
    public static let defaultCiphers = "ECDHE+AESGCM:ECDHE+CHACHA20"

    /// Why `tls` is refused on a `route-by-sni` service, and what to write instead.
    static let onRoutingService = "tls on a route-by-sni service: put tls on the services its routes name "
        + "(each terminates with its own certificates; a route to a service without tls passes TLS through), "
        + "and name a terminating service as default for clients that match no route"

    /// The keys of the mapping.
    static let fileKeys = ["certificates", "min-version", "ciphers", "ciphersuites", "alpn", "client-ca", "client-auth", "session-tickets"]

    /// The rule across keys, as a message; nil when the settings pass.
    var problem: String? {
        if clientAuth != .none && clientCA == nil {
            return "client-auth \(clientAuth.rawValue) needs client-ca: PATH (the CAs client certificates must chain to)"
        }
        if clientAuth == .none && clientCA != nil {
            return "client-ca is only used with client-auth: optional or required"
        }
        return nil
    }

    /// The mapping written as text (YAML flow style, as the `--tls` flag takes it):
    /// `{certificates: [{cert: a.pem, key: a.key}], min-version: 1.3}`.
    public init(parsing text: String) throws(ConfigError) {
        self = try decodeFlowMapping(text, example: "{certificates: [{cert: PATH, key: PATH}]}")
    }
}

extension TLSSettings: Decodable {
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: ConfigKey.self)
        try container.rejectUnknownKeys(Self.fileKeys, in: "tls")
        guard container.contains(ConfigKey("certificates")) else {
            throw DecodingError.keyNotFound(ConfigKey("certificates"), DecodingError.Context(
                codingPath: container.codingPath, debugDescription: "tls needs certificates: [{cert: PATH, key: PATH}]"))
        }
        certificates = try container.decode([Certificate].self, forKey: ConfigKey("certificates"))
        guard !certificates.isEmpty else {
            throw DecodingError.dataCorruptedError(
                forKey: ConfigKey("certificates"), in: container,
                debugDescription: "certificates: list at least one {cert: PATH, key: PATH}")
        }
        minVersion = try container.choice("min-version", Version.self) ?? .tls12
        ciphers = try container.parsed("ciphers", Self.cipherText)
        ciphersuites = try container.parsed("ciphersuites", Self.cipherText)
        alpn = try container.parsedList("alpn", Self.protocolName) ?? []
        clientCA = try container.parsed("client-ca", Self.path)
        clientAuth = try container.choice("client-auth", ClientAuth.self) ?? .none
        sessionTickets = try container.flag("session-tickets") ?? true
    }

    /// A PEM file's path: not empty.
    static func path(_ text: String) throws(ConfigError) -> String {
        guard !text.isEmpty else { throw ConfigError("a path is empty") }
        return text
    }

    /// A cipher list or suite list: OpenSSL judges it at start; here only not empty.
    static func cipherText(_ text: String) throws(ConfigError) -> String {
        guard !text.isEmpty else { throw ConfigError("empty; leave the key out for OpenSSL's default") }
        return text
    }

    /// An ALPN protocol name: 1 to 255 bytes (RFC 7301, section 3.1).
    static func protocolName(_ text: String) throws(ConfigError) -> String {
        guard (1...255).contains(text.utf8.count) else { throw ConfigError("'\(text)' must be 1 to 255 bytes long") }
        return text
    }
}

extension TLSSettings.Certificate: Decodable {
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: ConfigKey.self)
        try container.rejectUnknownKeys(["cert", "key"], in: "a certificate")
        for name in ["cert", "key"] where !container.contains(ConfigKey(name)) {
            throw DecodingError.keyNotFound(ConfigKey(name), DecodingError.Context(
                codingPath: container.codingPath, debugDescription: "a certificate needs cert: PATH and key: PATH"))
        }
        cert = try container.parsed("cert", TLSSettings.path)!
        key = try container.parsed("key", TLSSettings.path)!
    }
}

extension ServiceSettings {
    /// TLS termination: `tls` (the mapping, or its text as the `--tls` flag takes it) and
    /// `tls-handshake-timeout`.
    static let tlsKeys: [ServiceKey] = [
        ServiceKey(name: "tls", parse: { (text) throws(ConfigError) -> ServiceKey.Setting in
            let settings = try TLSSettings(parsing: text)
            return ServiceKey.Setting(key: "tls") { $0.tls = settings }
        }, decode: { container in
            guard container.contains(ConfigKey("tls")) else { return nil }
            if (try? container.decode(String.self, forKey: ConfigKey("tls"))) != nil {
                return try container.parsed("tls", ServiceKey.named("tls").parse)
            }
            let settings = try container.decode(TLSSettings.self, forKey: ConfigKey("tls"))
            return ServiceKey.Setting(key: "tls") { $0.tls = settings }
        }, check: { settings in
            guard let tls = settings.tls else { return nil }
            // A routing service terminates nothing itself: each route's service does, with its own
            // certificates, so one port can mix terminating and passthrough routes. One place
            // says which certificate a client gets: the route's service (or `default`'s).
            if settings.routing != nil { return TLSSettings.onRoutingService }
            return tls.problem
        }, reset: { $0.tls = nil }),
        .value("tls-handshake-timeout", \.tlsHandshakeTimeout, parse: { (text) throws(ConfigError) in try Duration(parsing: text) },
               check: { $0.tlsHandshakeTimeout <= .zero ? "tls-handshake-timeout must be longer than 0" : nil }),
    ]
}
