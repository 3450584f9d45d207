/// The per-client control keys of a service in the configuration file (and under `defaults`),
/// parsed with the same parsers as the command-line flags of the same names.
struct RawClientControls {
    static let keys = [
        "allow", "deny", "max-connections-per-source", "connection-rate-per-source", "connection-burst-per-source",
        "source-mask", "max-connection-rate", "reject-with",
    ]

    var allow: [CIDR]?
    var deny: [CIDR]?
    var maxConnectionsPerSource: Int?
    var connectionRatePerSource: ConnectionRate?
    var connectionBurstPerSource: Int?
    var sourceMask: SourceMask?
    var maxConnectionRate: ConnectionRate?
    var rejectWith: RejectWith?

    init() {}

    init(_ container: KeyedDecodingContainer<ConfigKey>) throws {
        allow = try Self.blocks("allow", in: container)
        deny = try Self.blocks("deny", in: container)
        maxConnectionsPerSource = try container.parsed("max-connections-per-source") { (text) throws(ConfigError) in
            try ClientControls.parseCount(text, key: "max-connections-per-source")
        }
        connectionRatePerSource = try container.parsed("connection-rate-per-source") { (text) throws(ConfigError) in
            try ConnectionRate(parsing: text, key: "connection-rate-per-source")
        }
        connectionBurstPerSource = try container.parsed("connection-burst-per-source") { (text) throws(ConfigError) in
            try ClientControls.parseCount(text, key: "connection-burst-per-source")
        }
        sourceMask = try container.parsed("source-mask") { (text) throws(ConfigError) in try SourceMask(parsing: text) }
        maxConnectionRate = try container.parsed("max-connection-rate") { (text) throws(ConfigError) in
            try ConnectionRate(parsing: text, key: "max-connection-rate")
        }
        rejectWith = try container.choice("reject-with", RejectWith.self)
    }

    /// A list of blocks, or one text `CIDR[,CIDR...]` as on the command line.
    private static func blocks(_ key: String, in container: KeyedDecodingContainer<ConfigKey>) throws -> [CIDR]? {
        guard container.contains(ConfigKey(key)) else { return nil }
        if (try? container.decode(String.self, forKey: ConfigKey(key))) != nil {
            return try container.parsed(key, ClientControls.parseBlocks)
        }
        return try container.parsedList(key) { (text) throws(ConfigError) in try CIDR(parsing: text) }
    }

    /// These keys over `defaults`' (each key on its own).
    func merged(over defaults: RawClientControls) -> RawClientControls {
        var result = self
        result.allow = allow ?? defaults.allow
        result.deny = deny ?? defaults.deny
        result.maxConnectionsPerSource = maxConnectionsPerSource ?? defaults.maxConnectionsPerSource
        result.connectionRatePerSource = connectionRatePerSource ?? defaults.connectionRatePerSource
        result.connectionBurstPerSource = connectionBurstPerSource ?? defaults.connectionBurstPerSource
        result.sourceMask = sourceMask ?? defaults.sourceMask
        result.maxConnectionRate = maxConnectionRate ?? defaults.maxConnectionRate
        result.rejectWith = rejectWith ?? defaults.rejectWith
        return result
    }

    var controls: ClientControls {
        ClientControls(allow: allow, deny: deny, maxConnectionsPerSource: maxConnectionsPerSource,
                       connectionRatePerSource: connectionRatePerSource, connectionBurstPerSource: connectionBurstPerSource,
                       sourceMask: sourceMask, maxConnectionRate: maxConnectionRate, rejectWith: rejectWith)
    }
}
