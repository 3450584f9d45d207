import Foundation
import Testing
@testable import SwitchyardCore

/// README's configuration example must stay a valid file: it is what a newcomer copies.
@Test func theReadmeConfigurationExampleIsValid() throws {
    var root = URL(fileURLWithPath: #filePath)
    for _ in 0..<3 { root.deleteLastPathComponent() }
    let readme = try String(contentsOf: root.appendingPathComponent("README.md"), encoding: .utf8)
    let section = try #require(readme.range(of: "## Configuration file"))
    let rest = readme[section.upperBound...]
    let start = try #require(rest.range(of: "```yaml\n"))
    let end = try #require(rest[start.upperBound...].range(of: "```\n"))
    let yaml = String(rest[start.upperBound..<end.lowerBound])

    let configuration = try ConfigFile.parse(yaml, file: "README.md")

    #expect(configuration.services.map(\.name) == ["pg-primary", "pg-replicas", "redis"])
    let redis = try #require(configuration.service(named: "redis"))
    #expect(redis.health?.send == Array("PING\r\n".utf8))
    #expect(redis.health?.expect == Array("+PONG".utf8))
    #expect(redis.health?.expectMatch == .prefix)
    #expect(configuration.service(named: "pg-replicas")?.backends.map(\.weight) == [2, 1])
    #expect(configuration.service(named: "pg-primary")?.balance == .leastConnections)
}
