import Foundation
import Testing
@testable import SwitchyardCore

/// The first ```yaml block after `heading` in the repository's README, parsed as a configuration
/// file: README's examples are what a newcomer copies, so each must stay valid.
func readmeExample(after heading: String) throws -> Configuration {
    var root = URL(fileURLWithPath: #filePath)
    for _ in 0..<3 { root.deleteLastPathComponent() }
    let readme = try String(contentsOf: root.appendingPathComponent("README.md"), encoding: .utf8)
    let section = try #require(readme.range(of: heading), "README has no '\(heading)'")
    let rest = readme[section.upperBound...]
    let start = try #require(rest.range(of: "```yaml\n"), "no yaml block after '\(heading)'")
    let end = try #require(rest[start.upperBound...].range(of: "```\n"))
    return try ConfigFile.parse(String(rest[start.upperBound..<end.lowerBound]), file: "README.md")
}

/// README's configuration example must stay a valid file: it is what a newcomer copies.
@Test func theReadmeConfigurationExampleIsValid() throws {
    let configuration = try readmeExample(after: "## Configuration file")

    #expect(configuration.services.map(\.name) == ["pg-primary", "pg-replicas", "redis"])
    let redis = try #require(configuration.service(named: "redis"))
    #expect(redis.health?.send == Array("PING\r\n".utf8))
    #expect(redis.health?.expect == Array("+PONG".utf8))
    #expect(redis.health?.expectMatch == .prefix)
    #expect(configuration.service(named: "pg-replicas")?.backends.map(\.weight) == [2, 1])
    #expect(configuration.service(named: "pg-primary")?.balance == .leastConnections)
}

/// README's Patroni example (check-port) and source example must stay valid files (issue 13).
@Test func theReadmeCheckPortAndSourceExamplesAreValid() throws {
    let patroni = try readmeExample(after: "### Checking another address")
    let primary = try #require(patroni.service(named: "pg-primary"))
    #expect(primary.backends.map(\.checkEndpoint.description) == ["10.0.0.1:8008", "10.0.0.2:8008"])
    #expect(primary.health?.send == Array("GET /primary HTTP/1.1\r\nHost: patroni\r\nConnection: close\r\n\r\n".utf8))
    #expect(primary.health?.expect == Array("HTTP/1.1 200".utf8))

    let sources = try readmeExample(after: "## Source addresses")
    #expect(sources.service(named: "cache")?.sourceAddresses.map(\.description) == ["10.0.0.100", "10.0.0.101", "10.0.0.102"])
}

/// README's backups / max-connections / slow-start example must stay a valid file (issue 13).
@Test func theReadmeBackupQueueAndSlowStartExampleIsValid() throws {
    let configuration = try readmeExample(after: "## Backups, connection limits and slow start")
    let pg = try #require(configuration.service(named: "pg"))
    #expect(pg.queueSize == 200 && pg.queueTimeout == .seconds(3) && pg.slowStart == .seconds(30))
    #expect(pg.backends.map(\.maxConnections) == [100, 100, nil])
    #expect(pg.backends.map(\.backup) == [false, false, true])
}

/// README's check sequence, protocol check and check-send-proxy examples must stay valid files (issue 22).
@Test func theReadmeStepsTypesAndCheckSendProxyExamplesAreValid() throws {
    let steps = try readmeExample(after: "### Check sequences and protocol checks")
    #expect(steps.service(named: "redis-steps")?.health?.steps?.count == 9)
    let types = try readmeExample(after: "`--health-type TYPE` gives the command-line form")
    let kinds = Dictionary(uniqueKeysWithValues: types.services.map { ($0.name, $0.health?.type?.kind) })
    #expect(kinds == ["cache": .redis, "cache-primary": .redisPrimary, "pg": .postgres, "pg-primary": .http, "mysql": .mysql,
                      "web": .http, "mail": .smtp])
    #expect(types.service(named: "pg-primary")?.backends.map(\.checkEndpoint.description) == ["10.0.0.1:8008", "10.0.0.2:8008"])
    let proxy = try readmeExample(after: "**Through PROXY.**")
    let service = try #require(proxy.service(named: "behind-haproxy"))
    #expect(service.health?.checkSendProxy == true && service.backends.map(\.checkSendProxy) == [nil, false])
}

/// README's Redis TLS offload example must stay a valid file (issue 23).
@Test func theReadmeTLSTerminationExampleIsValid() throws {
    let configuration = try readmeExample(after: "## TLS termination")
    let redis = try #require(configuration.service(named: "redis"))
    let tls = try #require(redis.settings.tls)
    #expect(tls.certificates.map(\.cert) == ["/etc/switchyard/redis.pem", "/etc/switchyard/redis-rsa.pem"])
    #expect(tls.alpn == ["redis"])
    #expect(redis.settings.tlsHandshakeTimeout == .seconds(5))
}
