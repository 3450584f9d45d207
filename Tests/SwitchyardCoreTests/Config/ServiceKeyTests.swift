import Testing
@testable import SwitchyardCore

/// Every per-service key (`ServiceSettings.keys`) reads the same from the file as from its
/// `serve` flag: the command line applies `key.parse` (ServiceOptions) and checks the settings
/// with `validate()`; the file reads the key through the same declaration.
@Suite struct ServiceKeyTests {
    /// One valid value per key, a value its parser refuses with the text the error must hold,
    /// and, where the key has a rule, a value that parses but breaks it with the rule's message.
    /// A new key must be added here (the first test fails otherwise).
    static let samples: [String: (valid: String, unparsable: (String, String), breaking: (String, String)?)] = [
        "connect-timeout": ("3s", ("5x", "'5x' is not a duration"), ("0s", "connect-timeout must be longer than 0")),
        "idle-timeout": ("30s", ("soon", "'soon' is not a duration"), ("0s", "idle-timeout must be longer than 0")),
        "sni-timeout": ("2s", ("2", "'2' is not a duration"), nil),
        "backend-timeout": ("2s", ("2q", "'2q' is not a duration"), ("500ms", "backend-timeout must be at least 1s")),
        "queue-size": ("10", ("-1", "queue-size '-1' must be a whole number from 0 to 1000000"), nil),
        "queue-timeout": ("1s", ("0s", "queue-timeout '0s' must be longer than 0"), nil),
        "slow-start": ("10s", ("2h", "slow-start '2h' must be at most 1h"), nil),
        "send-proxy": ("v2", ("v3", "'v3' is not one of v1, v2"), nil),
        "accept-proxy": ("true", ("maybe", "'maybe' must be true or false"), nil),
        "accept-proxy-timeout": ("2s", ("2x", "'2x' is not a duration"), ("0s", "accept-proxy-timeout must be longer than 0")),
        "accept-proxy-from": ("10.0.0.0/8", ("10.0.0.1/8", "10.0.0.1/8"), ("10.0.0.0/8", "accept-proxy-from needs accept-proxy: true")),
        "source": ("127.0.0.2,127.0.0.3", ("127.0.0.2:80", "'127.0.0.2:80' is not an IP address"), nil),
        "allow": ("10.0.0.0/8,192.0.2.0/24", ("10.0.0.1/8", "10.0.0.1/8"), nil),
        "deny": ("10.0.0.0/8", ("10.0.0.0/33", "10.0.0.0/33"), nil),
        "max-connections-per-source": ("5", ("0", "max-connections-per-source '0' must be a whole number from 1"), nil),
        "connection-rate-per-source": ("10/s", ("10", "connection-rate-per-source '10' must be a rate"), nil),
        "connection-burst-per-source": ("5", ("x", "connection-burst-per-source 'x' must be a whole number"), nil),
        "source-mask": ("24,64", ("33,128", "33"), nil),
        "max-connection-rate": ("100/s", ("fast", "max-connection-rate 'fast' must be a rate"), nil),
        "reject-with": ("close", ("drop", "'drop' is not one of close, reset"), nil),
        "failover-threshold": ("50%", ("0%", "failover-threshold '0%' must be a percentage from 1% to 100%"), nil),
        "on-down": ("shutdown-sessions", ("close", "'close' is not one of none, shutdown-sessions"), nil),
        "on-up": ("shutdown-backup-sessions", ("close", "'close' is not one of none, shutdown-backup-sessions"), nil),
        "removal-grace": ("5s", ("0s", "removal-grace '0s' must be longer than 0"), nil),
        "tls": ("{certificates: [{cert: a.pem, key: a.key}], min-version: 1.3}",
                ("{certificates: [{cert: a.pem, key: a.key}], min-version: 1.1}", "'1.1' is not one of 1.2, 1.3"),
                ("{certificates: [{cert: a.pem, key: a.key}], client-auth: required}", "client-auth required needs client-ca: PATH (the CAs client certificates must chain to)")),
        "tls-handshake-timeout": ("5s", ("5x", "'5x' is not a duration"), ("0s", "tls-handshake-timeout must be longer than 0")),
        "backend-tls": ("{ca: ca.pem, server-name: db.internal}", ("{ca: ca.pem, verify: maybe}", "'maybe' must be true or false"),
                        ("{cert: a.pem}", "backend-tls needs cert and key together (a client certificate and its key), or neither")),
    ]

    static func file(_ line: String) -> String {
        "services:\n  a:\n    listen: [127.0.0.1:1]\n    backends: [127.0.0.1:2]\n    \(line)\n"
    }

    /// The settings the command line makes of `--NAME text`, checked as `serve` checks them.
    static func commandLine(_ key: ServiceKey, _ text: String) throws -> ServiceSettings {
        var service = ServiceConfiguration(name: ServiceConfiguration.defaultName, listen: [try Endpoint(parsing: "127.0.0.1:1")],
                                           backends: [try BackendSpec(parsing: "127.0.0.1:2")])
        service.settings = ServiceSettings([try key.parse(text)])
        try Configuration(services: [service]).validate()
        return service.settings
    }

    @Test func everyKeyHasSamplesAndOneDeclaration() {
        let names = ServiceSettings.keys.map(\.name)
        #expect(Set(names) == Set(Self.samples.keys), "declared keys and samples differ")
        #expect(names.count == Set(names).count, "a key is declared twice")
        #expect(names.allSatisfy(RawService.keys.contains), "the file reads every key")
    }

    @Test func theDefaultsAreTheSameWithoutAnyKey() throws {
        let configuration = try ConfigFile.parse(Self.file("balance: round-robin"), file: "a.yaml")
        #expect(configuration.services[0].settings == ServiceSettings(), "the file's defaults")
        #expect(ServiceSettings([]) == ServiceSettings(), "the command line's defaults (no flag given)")
    }

    @Test(arguments: ServiceSettings.keys.map(\.name))
    func aValidValueGivesTheSameSettings(name: String) throws {
        let key = ServiceKey.named(name)
        let sample = try #require(Self.samples[name])
        var line = "\(name): \(sample.valid)"
        if name == "accept-proxy-from" { line += "\n    accept-proxy: true" }
        if name == "connection-burst-per-source" { line += "\n    connection-rate-per-source: 10/s" }
        let fromFile = try ConfigFile.parse(Self.file(line), file: "a.yaml").services[0].settings
        var fromFlags = ServiceSettings([try key.parse(sample.valid)])
        if name == "accept-proxy-from" { fromFlags.acceptsProxy = true }
        if name == "connection-burst-per-source" { fromFlags.clientControls.connectionRatePerSource = ConnectionRate(perSecond: 10) }
        #expect(fromFile == fromFlags)
        #expect(fromFile != ServiceSettings(), "\(name): \(sample.valid) changes something")
    }

    @Test(arguments: ServiceSettings.keys.map(\.name))
    func aBadValueIsRefusedWithTheSameMessage(name: String) throws {
        let key = ServiceKey.named(name)
        let sample = try #require(Self.samples[name])
        let (text, message) = sample.unparsable
        #expect(throws: ConfigError.self) { try key.parse(text) }
        do {
            _ = try key.parse(text)
        } catch {
            #expect(error.message.contains(message), "flag: \(error.message)")
            if name == "accept-proxy" {
                // A YAML boolean in the file: the YAML decoder refuses other values.
                #expect(throws: ConfigFileError.self) { try ConfigFile.parse(Self.file("\(name): \(text)"), file: "bad.yaml") }
            } else {
                expectConfigFileError(Self.file("\(name): \"\(text)\""), line: 5, column: 5 + name.count + 2, message: error.message)
            }
        }
        guard let (breaking, rule) = sample.breaking else { return }
        #expect(throws: ConfigIssue(path: [.key("services"), .key("default"), .key(name)], rule)) {
            try Self.commandLine(key, breaking)
        }
        expectConfigFileError(Self.file("\(name): \(breaking)"), line: 5, column: 5 + name.count + 2, message: rule)
    }
}
