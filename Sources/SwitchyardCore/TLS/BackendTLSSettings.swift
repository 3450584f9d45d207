import Yams

/// A service's `backend-tls` mapping (README, "Re-encryption to backends"): connections to its
/// backends speak TLS, whatever the client spoke.
///
/// ```yaml
/// backend-tls:
///   ca: system                 # PEM file of the CAs the backend's chain must lead to, or system
///   server-name: from-client-sni   # or a host name; default: the backend's host when it is a name
///   cert: /etc/switchyard/lb.pem   # a client certificate for backends that ask (with key)
///   key: /etc/switchyard/lb.key
///   verify: true               # the chain and the name are checked (default)
/// ```
///
/// A backend mapping's `backend-tls` overrides the service's: its own mapping, or `false`
/// (`BackendTLSOverride`). Only the shape is checked here; the files (readable, a key that is
/// not encrypted and matches its certificate) are checked by IO at start, reload and
/// `check-config`.
public struct BackendTLSSettings: Hashable, Sendable {
    /// Where the CAs that verify a backend's chain come from.
    public enum Authorities: Hashable, Sendable {
        /// OpenSSL's default verify paths (Debian: /etc/ssl/certs).
        case system
        /// A PEM file of one or more CA certificates.
        case file(String)
    }

    /// The server name sent as SNI (and verified).
    public enum ServerName: Hashable, Sendable {
        case name(String)
        /// The name the client asked for (its TLS SNI, from the terminating handshake or the
        /// ClientHello `route-by-sni` read); without one, the default.
        case fromClientSNI
    }

    public var ca = Authorities.system
    /// Nil: the backend's host when it is a name, else no SNI and no name check.
    public var serverName: ServerName?
    /// A client certificate (PEM, may hold the chain) and its key, for backends that ask.
    public var cert: String?
    public var key: String?
    /// Whether the backend's chain (against `ca`) and name are verified.
    public var verify = true

    public init(ca: Authorities = .system, serverName: ServerName? = nil, cert: String? = nil, key: String? = nil, verify: Bool = true) {
        self.ca = ca
        self.serverName = serverName
        self.cert = cert
        self.key = key
        self.verify = verify
    }

    /// The keys of the mapping.
    static let fileKeys = ["ca", "server-name", "cert", "key", "verify"]

    /// The rule across keys, as a message; nil when the settings pass.
    var problem: String? {
        if (cert == nil) != (key == nil) {
            return "backend-tls needs cert and key together (a client certificate and its key), or neither"
        }
        if !verify, case .file = ca {
            return "backend-tls: ca is only used with verify: true"
        }
        return nil
    }

    /// The name to send as SNI (and to verify) on a connection to a backend whose host is
    /// `backendHost`, for a client that asked for `clientServerName` (nil: it sent none): the
    /// configured name, the client's for `from-client-sni`, else the backend's host when it is
    /// a host name; nil (no SNI, no name check) for an IP address.
    public func serverName(backendHost: String, clientServerName: String?) -> String? {
        switch serverName {
        case let .name(name)?: return name
        case .fromClientSNI?: if let clientServerName { return clientServerName }
        case nil: break
        }
        guard IPAddress(backendHost) == nil else { return nil }
        return HostName.normalized(Array(backendHost.utf8))
    }

    /// The mapping written as text (YAML flow style, as the `--backend-tls` flag takes it):
    /// `{ca: /etc/ssl/internal.pem, server-name: db.internal}`; `{}` takes every default.
    public init(parsing text: String) throws(ConfigError) {
        self = try decodeFlowMapping(text, example: "{ca: PATH, server-name: NAME}")
    }

    /// Parses `server-name`: `from-client-sni`, or a host name as SNI carries it.
    static func parseServerName(_ text: String) throws(ConfigError) -> ServerName {
        if text == "from-client-sni" { return .fromClientSNI }
        do {
            return .name(try HealthCheckTLS.parseServerName(text))
        } catch {
            throw ConfigError("\(error.message), nor from-client-sni")
        }
    }

    /// Parses `ca`: `system`, or a path.
    static func parseAuthorities(_ text: String) throws(ConfigError) -> Authorities {
        text == "system" ? .system : .file(try TLSSettings.path(text))
    }
}

extension BackendTLSSettings: Decodable {
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: ConfigKey.self)
        try container.rejectUnknownKeys(Self.fileKeys, in: "backend-tls")
        ca = try container.parsed("ca", Self.parseAuthorities) ?? .system
        serverName = try container.parsed("server-name", Self.parseServerName)
        cert = try container.parsed("cert", TLSSettings.path)
        key = try container.parsed("key", TLSSettings.path)
        verify = try container.flag("verify") ?? true
    }
}

/// A backend mapping's `backend-tls`: `false` (plaintext to this backend whatever the service
/// says), or a mapping of its own (TLS to it with those settings).
public enum BackendTLSOverride: Hashable, Sendable, Decodable {
    case off
    case on(BackendTLSSettings)

    public init(from decoder: any Decoder) throws {
        let single = try decoder.singleValueContainer()
        if let text = try? single.decode(String.self), text == "false" || text == "true" {
            guard text == "false" else {
                throw DecodingError.dataCorruptedError(in: single, debugDescription:
                    "backend-tls: false turns TLS off for this backend; to turn it on give a mapping ({} for the defaults)")
            }
            self = .off
            return
        }
        self = .on(try single.decode(BackendTLSSettings.self))
    }
}

extension ServiceSettings {
    /// The TLS settings of connections to a backend of `spec`: its own `backend-tls`, else the
    /// service's; nil: plaintext.
    public func backendTLS(for spec: BackendSpec) -> BackendTLSSettings? {
        switch spec.backendTLS {
        case .off?: nil
        case let .on(settings)?: settings
        case nil: backendTLS
        }
    }

    /// `backend-tls`: the mapping, or its text as the `--backend-tls` flag takes it.
    static let backendTLSKeys: [ServiceKey] = [
        ServiceKey(name: "backend-tls", parse: { (text) throws(ConfigError) -> ServiceKey.Setting in
            let settings = try BackendTLSSettings(parsing: text)
            return ServiceKey.Setting(key: "backend-tls") { $0.backendTLS = settings }
        }, decode: { container in
            guard container.contains(ConfigKey("backend-tls")) else { return nil }
            if (try? container.decode(String.self, forKey: ConfigKey("backend-tls"))) != nil {
                return try container.parsed("backend-tls", ServiceKey.named("backend-tls").parse)
            }
            let settings = try container.decode(BackendTLSSettings.self, forKey: ConfigKey("backend-tls"))
            return ServiceKey.Setting(key: "backend-tls") { $0.backendTLS = settings }
        }, check: { settings in
            guard let backendTLS = settings.backendTLS else { return nil }
            if settings.routing != nil {
                return "backend-tls goes on the services route-by-sni routes to: a routing service connects to no backend itself"
            }
            return backendTLS.problem
        }, reset: { $0.backendTLS = nil }),
    ]
}

/// Decodes a mapping written as YAML flow text (a flag's value such as `{a: 1, b: [x]}`) as
/// `T`; `example` shows the expected shape in the error.
func decodeFlowMapping<T: Decodable>(_ text: String, example: String) throws(ConfigError) -> T {
    let node: Node
    do {
        guard let composed = try Yams.compose(yaml: text) else { throw ConfigError("empty; expected \(example)") }
        node = composed
    } catch let error as ConfigError {
        throw error
    } catch {
        throw ConfigError("'\(text)' is not a YAML mapping such as \(example)")
    }
    guard node.mapping != nil else {
        throw ConfigError("'\(text)' is not a mapping such as \(example)")
    }
    do {
        return try YAMLDecoder().decode(T.self, from: node)
    } catch let error as DecodingError {
        throw ConfigError(ConfigFile.locate(error, in: node, file: "").message)
    } catch {
        throw ConfigError("\(error)")
    }
}
