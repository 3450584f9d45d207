import Testing
@testable import SwitchyardCore

/// The `tls:` mapping of a service (README, "TLS termination"): every key, its defaults, and
/// the errors that point at the key at fault.
@Suite struct TLSSettingsTests {
    static func file(_ tls: String, extra: String = "") -> String {
        "services:\n  redis:\n    listen: [127.0.0.1:6380]\n    backends: [127.0.0.1:6379]\n\(extra)    tls:\n\(tls)"
    }

    @Test func everyKeyIsRead() throws {
        let text = Self.file("""
                  certificates:
                    - {cert: /etc/a.pem, key: /etc/a.key}
                    - cert: /etc/b.pem
                      key: /etc/b.key
                  min-version: 1.3
                  ciphers: ECDHE+AESGCM
                  ciphersuites: TLS_AES_128_GCM_SHA256
                  alpn: [redis, http/1.1]
                  client-ca: /etc/clients.pem
                  client-auth: optional
                  session-tickets: false

            """, extra: "    tls-handshake-timeout: 3s\n")
        let settings = try ConfigFile.parse(text, file: "a.yaml").services[0].settings
        var expected = TLSSettings(certificates: [.init(cert: "/etc/a.pem", key: "/etc/a.key"), .init(cert: "/etc/b.pem", key: "/etc/b.key")])
        expected.minVersion = .tls13
        expected.ciphers = "ECDHE+AESGCM"
        expected.ciphersuites = "TLS_AES_128_GCM_SHA256"
        expected.alpn = ["redis", "http/1.1"]
        expected.clientCA = "/etc/clients.pem"
        expected.clientAuth = .optional
        expected.sessionTickets = false
        #expect(settings.tls == expected)
        #expect(settings.tlsHandshakeTimeout == .seconds(3))
    }

    @Test func theDefaultsAreTLS12WithTicketsAndNoClientCertificate() throws {
        let settings = try ConfigFile.parse(Self.file("      certificates: [{cert: a.pem, key: a.key}]\n"), file: "a.yaml").services[0].settings
        let tls = try #require(settings.tls)
        #expect(tls.minVersion == .tls12)
        #expect(tls.clientAuth == .none)
        #expect(tls.sessionTickets)
        #expect(tls.alpn.isEmpty && tls.ciphers == nil && tls.ciphersuites == nil && tls.clientCA == nil)
        #expect(settings.tlsHandshakeTimeout == .seconds(10))
        #expect(ServiceSettings().tls == nil, "no tls: bytes pass through")
    }

    @Test(arguments: [
        ("      certificates: []\n", 6, 21, "certificates: list at least one {cert: PATH, key: PATH}"),
        ("      min-version: 1.2\n", 6, 7, "missing key 'certificates'"),
        ("      certificates: [{cert: a.pem}]\n", 6, 22, "missing key 'key'"),
        ("      certificates: [{cert: a.pem, key: a.key, chain: c.pem}]\n", 6, 48, "unknown key 'chain' in a certificate"),
        ("      certificates: [{cert: a.pem, key: a.key}]\n      min-version: 1.0\n", 7, 20, "min-version: '1.0' is not one of 1.2, 1.3"),
        ("      certificates: [{cert: a.pem, key: a.key}]\n      client-auth: always\n", 7, 20, "'always' is not one of none, optional, required"),
        ("      certificates: [{cert: a.pem, key: a.key}]\n      session-tickets: yes please\n", 7, 24, "must be true or false"),
        ("      certificates: [{cert: a.pem, key: a.key}]\n      ciphers: ''\n", 7, 16, "ciphers: empty"),
        ("      certificates: [{cert: a.pem, key: a.key}]\n      alpn: ['']\n", 7, 14, "alpn: '' must be 1 to 255 bytes long"),
        ("      certificates: [{cert: a.pem, key: a.key}]\n      min-versoin: 1.3\n", 7, 7, "unknown key 'min-versoin' in tls; did you mean 'min-version'?"),
        ("      certificates: [{cert: a.pem, key: a.key}]\n      client-ca: ca.pem\n", 6, 7, "client-ca is only used with client-auth: optional or required"),
        ("      certificates: [{cert: a.pem, key: a.key}]\n      client-auth: required\n", 6, 7, "client-auth required needs client-ca: PATH"),
    ])
    func badValuesAreRefusedAtTheirKey(tls: String, line: Int, column: Int, message: String) {
        expectConfigFileError(Self.file(tls), line: line, column: column, message: message)
    }

    @Test func acceptProxyAndRoutesToTerminatingServicesAreAccepted() throws {
        let proxied = try ConfigFile.parse(Self.file("      certificates: [{cert: a.pem, key: a.key}]\n", extra: "    accept-proxy: true\n"),
                                           file: "a.yaml")
        try proxied.validate()
        #expect(proxied.services[0].settings.acceptsProxy && proxied.services[0].settings.tls != nil)
        // One port: a terminating route, a passthrough route, and a terminating default.
        let routed = try ConfigFile.parse("""
            services:
              front:
                listen: [127.0.0.1:443]
                accept-proxy: true
                route-by-sni: {a.example: a, b.example: b, default: a}
              a:
                backends: [127.0.0.1:6379]
                tls: {certificates: [{cert: a.pem, key: a.key}]}
              b:
                backends: [127.0.0.1:8443]

            """, file: "a.yaml")
        try routed.validate()
        #expect(routed.services.filter { $0.settings.tls != nil }.map(\.name) == ["a"])
    }

    @Test func tlsOnTheRoutingServiceItselfIsRefusedWithWhatToWriteInstead() {
        let routed = "services:\n  front:\n    listen: [127.0.0.1:443]\n    route-by-sni: {default: back}\n    tls: {certificates: [{cert: a.pem, key: a.key}]}\n"
            + "  back:\n    backends: [127.0.0.1:8443]\n"
        expectConfigFileError(routed, line: 5, column: 10, message: TLSSettings.onRoutingService)
        #expect(TLSSettings.onRoutingService.hasPrefix("tls on a route-by-sni service: put tls on the services its routes name"))
    }

    @Test func theFlagTextIsTheMappingInFlowStyle() throws {
        let settings = try TLSSettings(parsing: "{certificates: [{cert: a.pem, key: a.key}], alpn: [redis], min-version: 1.3}")
        var expected = TLSSettings(certificates: [.init(cert: "a.pem", key: "a.key")])
        expected.alpn = ["redis"]
        expected.minVersion = .tls13
        #expect(settings == expected)
        #expect(throws: ConfigError.self) { try TLSSettings(parsing: "a.pem") }
        #expect(throws: ConfigError.self) { try TLSSettings(parsing: "{certificates: [{cert: a.pem") }
    }
}

@Suite struct CertificateChoiceTests {
    static let choice = CertificateChoice(names: [
        ["default.example"],
        ["api.example.com", "*.example.com"],
        ["*.db.example.com", "10.0.0.1", "bad name"],
        ["api.example.com", "primary.db.example.com"],
    ])

    @Test(arguments: [
        (nil, 0),
        ("unknown.test", 0),
        ("default.example", 0),
        ("api.example.com", 1),
        ("API.EXAMPLE.com", 1),
        ("www.example.com", 1),
        ("example.com", 0),
        ("a.b.example.com", 0),
        ("replica.db.example.com", 2),
        ("primary.db.example.com", 3),
    ] as [(String?, Int)])
    func theCertificateNamingTheServerAnswers(name: String?, certificate: Int) {
        #expect(Self.choice.certificate(for: name) == certificate)
    }

    @Test func theFirstCertificateAnswersWhenNamesRepeatOrNoneIsValid() {
        #expect(Self.choice.certificate(for: "bad name") == 0, "a malformed name matches nothing")
        #expect(CertificateChoice(names: []).certificate(for: "a.example") == 0)
        #expect(CertificateChoice(names: [["a.example"], ["a.example"]]).certificate(for: "a.example") == 0)
    }
}

@Suite struct TLSHandshakeFiguresTests {
    @Test func countsByVersionAndReasonAndMergesWorkers() {
        var one = TLSHandshakeFigures()
        #expect(one.isEmpty)
        one.recordCompleted(version: "TLSv1.3", resumed: true, nanoseconds: 2_000_000)
        one.recordFailed(.timeout)
        var two = TLSHandshakeFigures()
        two.recordCompleted(version: "TLSv1.2", resumed: false, nanoseconds: 1_000_000)
        two.recordCompleted(version: "TLSv1.3", resumed: false, nanoseconds: 1_000_000)
        two.recordFailed(.protocol)
        two.recordFailed(.protocol)
        one.merge(two)
        #expect(one.completed == ["TLSv1.3": 2, "TLSv1.2": 1])
        #expect(one.resumed == 1)
        #expect(one.failures(.protocol) == 2 && one.failures(.timeout) == 1 && one.failures(.unknownCA) == 0)
        #expect(one.totalFailed == 3)
        #expect(!one.isEmpty)
        #expect(TLSHandshakeFailure.allCases.map(\.label) == ["no_shared_cipher", "bad_certificate", "unknown_ca", "timeout", "protocol"])
    }
}
