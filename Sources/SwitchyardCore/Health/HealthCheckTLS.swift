/// TLS in health checks (issue 22): `type: tls` (the TLS handshake is the check) and
/// `check-tls: true` (the check's steps run inside TLS), with the `server-name` sent as SNI
/// and the `ca-file` the server's chain is verified against. Keys of a service's `health`;
/// a backend's `check-tls` overrides the service's. HAProxy's counterparts: `check-ssl` (with
/// `check-sni`, `ca-file`, `verify required`) for both, and `ssl-hello-chk`, which sends a
/// hello alone and judges the reply's first bytes, where `type: tls` completes the handshake.
public struct HealthCheckTLS: Sendable, Equatable {
    /// `type: tls`: a full handshake (and, with `caFile`, verification) is the whole check.
    public var handshakeOnly = false
    /// `check-tls: true`: connect with TLS and run the check's steps over it.
    public var checkTLS = false
    /// SNI, and the name the certificate must carry when verifying. Nil: the checked host
    /// when it is a name (an IP address sends no SNI and is not verified by name).
    public var serverName: String?
    /// PEM file of the CAs the server's chain must lead to; nil verifies nothing (the
    /// handshake must still complete).
    public var caFile: String?

    public init(handshakeOnly: Bool = false, checkTLS: Bool = false, serverName: String? = nil, caFile: String? = nil) {
        self.handshakeOnly = handshakeOnly
        self.checkTLS = checkTLS
        self.serverName = serverName
        self.caFile = caFile
    }

    /// Whether checks of a backend whose own `check-tls` is `backendCheckTLS` (nil: not given)
    /// speak TLS.
    public func applies(backendCheckTLS: Bool?) -> Bool {
        handshakeOnly || (backendCheckTLS ?? checkTLS)
    }

    /// The name to send as SNI (and verify) for a check of `host`: `serverName`, else `host`
    /// when it is a host name; nil for an IP address.
    public func serverName(forHost host: String) -> String? {
        if let serverName { return serverName }
        guard IPAddress(host) == nil else { return nil }
        return HostName.normalized(Array(host.utf8))
    }

    /// Parses `server-name`: a host name as SNI carries it (no IP address, no trailing dot).
    public static func parseServerName(_ text: String) throws(ConfigError) -> String {
        guard IPAddress(text) == nil, let name = HostName.normalized(Array(text.utf8)) else {
            throw ConfigError("'\(text)' is not a host name (letters, digits, '-' and '_' in dot-separated labels)")
        }
        return name
    }

    /// Parses `ca-file`: a path, absolute or relative to the working directory; read when the
    /// checks start (a file that cannot be loaded fails every TLS check with the reason).
    public static func parseCAFile(_ text: String) throws(ConfigError) -> String {
        guard !text.isEmpty, !text.utf8.contains(0) else { throw ConfigError("the CA file path is empty") }
        return text
    }

    /// For the startup line: ` over TLS (server name db.example.com, verified against ca.pem)`.
    var summary: String {
        var text = handshakeOnly ? "tls handshake" : " over TLS"
        var details: [String] = []
        if let serverName { details.append("server name \(serverName)") }
        if let caFile { details.append("verified against \(caFile)") }
        if !details.isEmpty { text += " (\(details.joined(separator: ", ")))" }
        return text
    }
}
