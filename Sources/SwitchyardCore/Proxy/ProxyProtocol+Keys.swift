/// The PROXY protocol's per-service keys: `send-proxy` (a backend's own `send-proxy` overrides
/// it), `accept-proxy`, `accept-proxy-timeout` and `accept-proxy-from`.
extension ServiceSettings {
    static let proxyProtocolKeys: [ServiceKey] = [
        .value("send-proxy", \.sendProxy, parse: { (text) throws(ConfigError) -> ProxyProtocolVersion? in
            try parseChoice(text, as: ProxyProtocolVersion.self)
        }),
        .decoded("accept-proxy", \.acceptsProxy, parse: parseBool),
        .value("accept-proxy-timeout", \.acceptProxyTimeout, parse: { (text) throws(ConfigError) in try Duration(parsing: text) },
               check: { $0.acceptProxyTimeout <= .zero ? "accept-proxy-timeout must be longer than 0" : nil }),
        .list("accept-proxy-from", \.acceptProxyFrom, item: { (text) throws(ConfigError) in try CIDR(parsing: text) },
              text: ClientControls.parseBlocks,
              check: { !$0.acceptsProxy && !$0.acceptProxyFrom.isEmpty ? "accept-proxy-from needs accept-proxy: true" : nil }),
    ]

    /// What the service's listeners require of every client; nil: no PROXY header.
    public var acceptProxy: AcceptProxySettings? {
        acceptsProxy ? AcceptProxySettings(timeout: acceptProxyTimeout, trusted: acceptProxyFrom) : nil
    }

    /// These settings with the PROXY protocol's keys at their defaults: what a reload compares
    /// to tell whether only the PROXY protocol changed.
    var withoutProxyProtocol: ServiceSettings {
        var settings = self
        for key in Self.proxyProtocolKeys { key.reset(&settings) }
        return settings
    }
}
