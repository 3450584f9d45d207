/// The per-client control keys of a service (README, "Per-client controls"), in the file (under a
/// service or `defaults`) and as `serve` flags of the same names. Their rule across keys is
/// `ClientControls.validate()`.
extension ServiceSettings {
    static let clientControlKeys: [ServiceKey] = [
        .list("allow", \.clientControls.allow, item: { (text) throws(ConfigError) in try CIDR(parsing: text) },
              text: ClientControls.parseBlocks),
        .list("deny", \.clientControls.deny, item: { (text) throws(ConfigError) in try CIDR(parsing: text) },
              text: ClientControls.parseBlocks),
        .value("max-connections-per-source", \.clientControls.maxConnectionsPerSource, parse: { (text) throws(ConfigError) -> Int? in
            try ClientControls.parseCount(text, key: "max-connections-per-source")
        }),
        .value("connection-rate-per-source", \.clientControls.connectionRatePerSource, parse: { (text) throws(ConfigError) -> ConnectionRate? in
            try ConnectionRate(parsing: text, key: "connection-rate-per-source")
        }),
        .value("connection-burst-per-source", \.clientControls.connectionBurstPerSource, parse: { (text) throws(ConfigError) -> Int? in
            try ClientControls.parseCount(text, key: "connection-burst-per-source")
        }),
        .value("source-mask", \.clientControls.sourceMask, parse: { (text) throws(ConfigError) in try SourceMask(parsing: text) }),
        .value("max-connection-rate", \.clientControls.maxConnectionRate, parse: { (text) throws(ConfigError) -> ConnectionRate? in
            try ConnectionRate(parsing: text, key: "max-connection-rate")
        }),
        .value("reject-with", \.clientControls.rejectWith, parse: { (text) throws(ConfigError) in try parseChoice(text, as: RejectWith.self) }),
    ]
}
