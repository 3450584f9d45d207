import Testing
@testable import SwitchyardCore

// TLS in health checks (issue 22): the keys, their defaults and merging, and the date
// arithmetic behind switchyard_backend_certificate_expiry_seconds.

@Test func typeTLSWithServerNameAndCAFileParses() throws {
    let configuration = try ConfigFile.parse("""
        services:
          db:
            listen: [127.0.0.1:1]
            health: {type: tls, server-name: DB.Example.com, ca-file: /etc/ssl/db-ca.pem}
            backends: [127.0.0.1:2]
        """, file: "f")
    let health = try #require(configuration.service(named: "db")?.health)
    #expect(health.tls == HealthCheckTLS(handshakeOnly: true, serverName: "db.example.com", caFile: "/etc/ssl/db-ca.pem"))
    #expect(health.summary.hasPrefix("tls handshake (server name db.example.com, verified against /etc/ssl/db-ca.pem) every 2s"))
}

@Test func checkTLSIsAServiceKeyABackendOverrides() throws {
    let configuration = try ConfigFile.parse("""
        defaults:
          health: {check-tls: true, server-name: api.test}
        services:
          api:
            listen: [127.0.0.1:1]
            health: {send: "GET / HTTP/1.0\\r\\n\\r\\n", expect: "200"}
            backends:
              - 127.0.0.1:2
              - {address: 127.0.0.1:3, check-tls: false}
              - {address: 127.0.0.1:4, check-tls: true}
        """, file: "f")
    let api = try #require(configuration.service(named: "api"))
    let tls = try #require(api.health?.tls)
    #expect(tls.checkTLS && !tls.handshakeOnly && tls.serverName == "api.test", "merged over the defaults")
    #expect(api.backends.map(\.checkTLS) == [nil, false, true])
    #expect(api.backends.map { tls.applies(backendCheckTLS: $0.checkTLS) } == [true, false, true])
    #expect(api.health?.summary.hasPrefix("tcp connect + send + expect (contains) over TLS (server name api.test) every") == true)
}

@Test func aBackendTurnsTLSOnWhereTheServiceHasItOff() {
    let plain = HealthCheckTLS()
    #expect(!plain.applies(backendCheckTLS: nil))
    #expect(plain.applies(backendCheckTLS: true))
    #expect(HealthCheckTLS(handshakeOnly: true).applies(backendCheckTLS: false), "type: tls is the check itself")
}

@Test func theServerNameDefaultsToTheCheckedHostName() {
    #expect(HealthCheckTLS().serverName(forHost: "Redis-1.Internal") == "redis-1.internal")
    #expect(HealthCheckTLS().serverName(forHost: "10.0.0.7") == nil, "no SNI for an IP address")
    #expect(HealthCheckTLS().serverName(forHost: "::1") == nil)
    #expect(HealthCheckTLS(serverName: "db.test").serverName(forHost: "10.0.0.7") == "db.test")
}

@Test(arguments: [
    ("services:\n  a:\n    listen: [127.0.0.1:1]\n    health: {type: tls, send: x}\n    backends: [127.0.0.1:2]\n", 4, 13,
     "use check-tls: true"),
    ("services:\n  a:\n    listen: [127.0.0.1:1]\n    health: {type: ssl}\n    backends: [127.0.0.1:2]\n", 4, 20,
     "'ssl' is not one of tcp, tls"),
    ("services:\n  a:\n    listen: [127.0.0.1:1]\n    health: {type: tls, server-name: 10.0.0.1}\n    backends: [127.0.0.1:2]\n", 4, 38,
     "'10.0.0.1' is not a host name"),
    ("services:\n  a:\n    listen: [127.0.0.1:1]\n    health: {check-tls: yes}\n    backends: [127.0.0.1:2]\n", 4, 25,
     "must be true or false"),
    ("services:\n  a:\n    listen: [127.0.0.1:1]\n    health: {ca-file: ''}\n    backends: [127.0.0.1:2]\n", 4, 23,
     "the CA file path is empty"),
])
func badTLSCheckKeysAreRefusedAtTheirPlace(text: String, line: Int, column: Int, message: String) {
    expectConfigFileError(text, line: line, column: column, message: message)
}

@Test func calendarTimesBecomeSecondsSinceTheEpoch() {
    #expect(CertificateExpiry.secondsSinceEpoch(year: 1970, month: 1, day: 1, hour: 0, minute: 0, second: 0) == 0)
    #expect(CertificateExpiry.secondsSinceEpoch(year: 1969, month: 12, day: 31, hour: 23, minute: 59, second: 59) == -1)
    #expect(CertificateExpiry.secondsSinceEpoch(year: 2000, month: 2, day: 29, hour: 12, minute: 0, second: 0) == 951_825_600)
    #expect(CertificateExpiry.secondsSinceEpoch(year: 2000, month: 3, day: 1, hour: 0, minute: 0, second: 0) == 951_868_800)
    #expect(CertificateExpiry.secondsSinceEpoch(year: 2038, month: 1, day: 19, hour: 3, minute: 14, second: 8) == 2_147_483_648)
    // `openssl x509 -enddate` of a certificate made for this test: notAfter=Dec  5 23:55:17 2026 GMT.
    #expect(CertificateExpiry.secondsSinceEpoch(year: 2026, month: 12, day: 5, hour: 23, minute: 55, second: 17) == 1_796_514_917)
    #expect(CertificateExpiry.secondsSinceEpoch(year: 2100, month: 3, day: 1, hour: 0, minute: 0, second: 0) == 4_107_542_400)
}

@Test func expiryReadsInWholeUnits() {
    #expect(CertificateExpiry.describe(notAfter: 1000 + 30 * 86_400 + 5, now: 1000) == "expires in 30d")
    #expect(CertificateExpiry.describe(notAfter: 1000 + 86_399, now: 1000) == "expires in 23h")
    #expect(CertificateExpiry.describe(notAfter: 1000 + 47 * 3600, now: 1000) == "expires in 47h")
    #expect(CertificateExpiry.describe(notAfter: 1000 + 90, now: 1000) == "expires in 1m")
    #expect(CertificateExpiry.describe(notAfter: 1000, now: 1000) == "expires in 0s")
    #expect(CertificateExpiry.describe(notAfter: 1000 - 3 * 86_400, now: 1000) == "expired 3d ago")
}

@Test func theReadmeTLSCheckExampleIsValid() throws {
    let example = try readmeExample(after: "### TLS checks")
    let cache = try #require(example.service(named: "cache")?.health?.tls)
    #expect(cache == HealthCheckTLS(handshakeOnly: true, serverName: "cache.internal", caFile: "/etc/ssl/internal-ca.pem"))
    let api = try #require(example.service(named: "api"))
    #expect(api.health?.tls.checkTLS == true)
    #expect(api.health?.expect == Array("HTTP/1.1 200".utf8))
    #expect(api.backends.map(\.checkTLS) == [nil, false])
}

@Test func aReloadReportsABackendsCheckTLSChange() throws {
    let old = try ConfigFile.parse("""
        services:
          a:
            listen: [127.0.0.1:1]
            health: {check-tls: true}
            backends: ["127.0.0.1:2"]
        """, file: "f")
    let new = try ConfigFile.parse("""
        services:
          a:
            listen: [127.0.0.1:1]
            health: {check-tls: true}
            backends: [{address: "127.0.0.1:2", check-tls: false}]
        """, file: "f")
    #expect(ConfigDifference(from: old, to: new).summary == ["a: backend 127.0.0.1:2 check-tls the service's -> false"])
}
