import Testing
@testable import SwitchyardCore

/// `backend-tls` of a service and of a backend's mapping (README, "Re-encryption to backends"):
/// every key, the defaults, the rules across keys, the override, and the server name each
/// connection sends.
@Suite struct BackendTLSSettingsTests {
    static func file(service: String = "", backends: String = "[127.0.0.1:6379]") -> String {
        "services:\n  db:\n    listen: [127.0.0.1:6380]\n    backends: \(backends)\n\(service)"
    }

    static func settings(_ text: String) throws -> ServiceConfiguration {
        try ConfigFile.parse(text, file: "a.yaml").services[0]
    }

    @Test func everyKeyIsRead() throws {
        let service = try Self.settings(Self.file(service: """
                backend-tls:
                  ca: /etc/ssl/internal.pem
                  server-name: db.internal
                  cert: /etc/lb.pem
                  key: /etc/lb.key
                  verify: true

            """))
        #expect(service.settings.backendTLS == BackendTLSSettings(
            ca: .file("/etc/ssl/internal.pem"), serverName: .name("db.internal"), cert: "/etc/lb.pem", key: "/etc/lb.key", verify: true))
    }

    @Test func anEmptyMappingTakesTheSystemsCAsAndVerifies() throws {
        let settings = try #require(try Self.settings(Self.file(service: "    backend-tls: {}\n")).settings.backendTLS)
        #expect(settings.ca == .system)
        #expect(settings.verify)
        #expect(settings.serverName == nil && settings.cert == nil && settings.key == nil)
        #expect(try Self.settings(Self.file()).settings.backendTLS == nil, "off unless given")
    }

    @Test func theFlagTextReadsTheSameAsTheFile() throws {
        let fromFile = try Self.settings(Self.file(service: "    backend-tls: {ca: system, server-name: from-client-sni, verify: false}\n"))
        let fromText = try BackendTLSSettings(parsing: "{ca: system, server-name: from-client-sni, verify: false}")
        #expect(fromFile.settings.backendTLS == fromText)
        #expect(fromText.serverName == .fromClientSNI && !fromText.verify)
    }

    @Test func badValuesAreRefusedAtTheirKey() {
        expectConfigFileError(Self.file(service: "    backend-tls: {server-name: 10.0.0.1}\n"), line: 5, column: 32,
                              message: "is not a host name")
        expectConfigFileError(Self.file(service: "    backend-tls: {verify: maybe}\n"), line: 5, column: 27, message: "'maybe' must be true or false")
        expectConfigFileError(Self.file(service: "    backend-tls: {cafile: a.pem}\n"), line: 5, column: 19, message: "unknown key 'cafile' in backend-tls")
        expectConfigFileError(Self.file(service: "    backend-tls: {key: a.key}\n"), line: 5, column: 18,
                              message: "backend-tls needs cert and key together")
        expectConfigFileError(Self.file(service: "    backend-tls: {ca: a.pem, verify: false}\n"), line: 5, column: 18,
                              message: "ca is only used with verify: true")
    }

    @Test func aRoutingServiceRefusesIt() {
        let text = """
            services:
              edge:
                listen: [127.0.0.1:443]
                route-by-sni: {default: db}
                backend-tls: {}
              db:
                backends: [127.0.0.1:5432]

            """
        expectConfigFileError(text, line: 5, column: 18, message: "backend-tls goes on the services route-by-sni routes to")
    }

    @Test func aBackendsOwnMappingOrFalseOverridesTheServices() throws {
        let service = try Self.settings(Self.file(service: "    backend-tls: {ca: ca.pem}\n", backends: """

                  - 127.0.0.1:1
                  - {address: 127.0.0.1:2, backend-tls: false}
                  - {address: 127.0.0.1:3, backend-tls: {ca: other.pem, server-name: three.internal}}
            """))
        let (inherits, plain, own) = (service.backends[0], service.backends[1], service.backends[2])
        #expect(service.settings.backendTLS(for: inherits) == BackendTLSSettings(ca: .file("ca.pem")))
        #expect(service.settings.backendTLS(for: plain) == nil)
        #expect(service.settings.backendTLS(for: own) == BackendTLSSettings(ca: .file("other.pem"), serverName: .name("three.internal")))
        // Without the service's key, a backend's own mapping still turns TLS on for it alone.
        var bare = ServiceSettings()
        bare.backendTLS = nil
        #expect(bare.backendTLS(for: own) != nil && bare.backendTLS(for: inherits) == nil)
    }

    @Test func aBackendsTrueOrBrokenMappingIsRefused() {
        expectConfigFileError(Self.file(backends: "[{address: 127.0.0.1:1, backend-tls: true}]"), line: 4, column: 52,
                              message: "backend-tls: false turns TLS off for this backend")
        expectConfigFileError(Self.file(backends: "[{address: 127.0.0.1:1, backend-tls: {cert: a.pem}}]"), line: 4, column: 52,
                              message: "backend-tls needs cert and key together")
    }

    @Test func theServerNameIsTheConfiguredOneTheClientsOrTheBackendsHostName() {
        let named = BackendTLSSettings(serverName: .name("db.internal"))
        #expect(named.serverName(backendHost: "10.0.0.1", clientServerName: "asked.example") == "db.internal")
        let fromClient = BackendTLSSettings(serverName: .fromClientSNI)
        #expect(fromClient.serverName(backendHost: "10.0.0.1", clientServerName: "asked.example") == "asked.example")
        // No SNI from the client: the backend's host when it is a name, else none.
        #expect(fromClient.serverName(backendHost: "db-1.internal", clientServerName: nil) == "db-1.internal")
        #expect(fromClient.serverName(backendHost: "10.0.0.1", clientServerName: nil) == nil)
        let byDefault = BackendTLSSettings()
        #expect(byDefault.serverName(backendHost: "DB-1.Internal", clientServerName: "asked.example") == "db-1.internal")
        #expect(byDefault.serverName(backendHost: "::1", clientServerName: nil) == nil)
    }
}

/// README's re-encryption example must stay a valid file.
@Test func theReadmeReEncryptionExampleIsValid() throws {
    let configuration = try readmeExample(after: "### Re-encryption to backends")
    let postgres = try #require(configuration.service(named: "postgres"))
    let settings = postgres.settings
    #expect(settings.backendTLS == BackendTLSSettings(ca: .file("/etc/ssl/internal-ca.pem"), serverName: .name("db.internal"),
                                                      cert: "/etc/switchyard/lb.pem", key: "/etc/switchyard/lb.key"))
    #expect(settings.backendTLS(for: postgres.backends[1])?.serverName == .name("db2.internal"))
    #expect(settings.backendTLS(for: postgres.backends[2]) == nil)
    #expect(postgres.health?.tls.checkTLS == true)
}
