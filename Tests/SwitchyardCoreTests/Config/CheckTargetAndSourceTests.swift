import Testing
@testable import SwitchyardCore

// Issue 13: `check-port`/`check-address` on a backend, and `source` on a service.

private let patroni = """
services:
  pg-primary:
    listen: ["0.0.0.0:5000"]
    health: {send: "GET /primary HTTP/1.0\\r\\n\\r\\n", expect: "HTTP/1.1 200", expect-match: prefix}
    source: 10.0.0.100,10.0.0.101
    backends:
      - {address: 10.0.0.1:5432, check-port: 8008}
      - {address: 10.0.0.2:5432, check-port: 8008, check-address: 10.0.1.2}
      - 10.0.0.3:5432
  other:
    listen: ["0.0.0.0:5001"]
    source: ["10.0.0.100", "[fd00::100]"]
    backends: ["10.0.0.4:5432", "[fd00::4]:5432"]
"""

@Test func checkPortAndCheckAddressMoveOnlyWhereTheCheckConnects() throws {
    let configuration = try ConfigFile.parse(patroni, file: "patroni.yaml")
    let service = try #require(configuration.service(named: "pg-primary"))
    let backends = service.backends
    #expect(backends.map(\.endpoint.description) == ["10.0.0.1:5432", "10.0.0.2:5432", "10.0.0.3:5432"])
    #expect(backends.map(\.checkEndpoint.description) == ["10.0.0.1:8008", "10.0.1.2:8008", "10.0.0.3:5432"])
    #expect(backends.map(\.checksElsewhere) == [true, true, false])
    #expect(backends[0].checkEndpoint.address == IPAddress("10.0.0.1"))
}

@Test func theCommandLineBackendFormTakesTheCheckOptionsAndWritesThemBack() throws {
    let spec = try BackendSpec(parsing: "db-1:5432,weight=2,check-port=8008,check-address=[::1]")
    #expect(spec.endpoint.description == "db-1:5432")
    #expect(spec.weight == 2)
    #expect(spec.checkPort == 8008)
    #expect(spec.checkAddress == "::1")
    #expect(spec.checkEndpoint.description == "[::1]:8008")
    #expect(spec.description == "db-1:5432,weight=2,check-address=::1,check-port=8008")
    #expect(try BackendSpec(parsing: spec.description) == spec)
    let same = try BackendSpec(parsing: "10.0.0.1:80,check-port=80")
    #expect(!same.checksElsewhere)
}

@Test(arguments: [
    ("10.0.0.1:80,check-port=0", "check-port '0' must be a number from 1 to 65535"),
    ("10.0.0.1:80,check-port=x", "check-port 'x' must be a number"),
    ("10.0.0.1:80,check-address=10.0.0.2:8008", "is not an IP address or hostname (give the port as check-port)"),
    ("10.0.0.1:80,check=8008", "unknown option 'check=8008'"),
])
func badCheckOptionsAreRefusedByName(_ text: String, _ message: String) {
    do {
        let spec = try BackendSpec(parsing: text)
        Issue.record("accepted: \(spec)")
    } catch {
        #expect(error.message.contains(message), "\(error.message)")
    }
}

@Test func sourceIsTextOrAListAndReachesTheWorkersSettings() throws {
    let configuration = try ConfigFile.parse(patroni, file: "patroni.yaml")
    let primary = try #require(configuration.service(named: "pg-primary"))
    #expect(primary.sourceAddresses == [IPAddress("10.0.0.100")!, IPAddress("10.0.0.101")!])
    #expect(primary.settings.sourceAddresses == primary.sourceAddresses)
    let other = try #require(configuration.service(named: "other"))
    #expect(other.sourceAddresses == [IPAddress("10.0.0.100")!, IPAddress("fd00::100")!])
}

@Test func sourceIsADefaultLikeTheOtherServiceKeys() throws {
    let text = """
    defaults: {source: "127.0.0.2, 127.0.0.3"}
    services:
      a: {listen: ["127.0.0.1:1"], backends: ["127.0.0.1:2"]}
      b: {listen: ["127.0.0.1:3"], source: 127.0.0.4, backends: ["127.0.0.1:2"]}
    """
    let configuration = try ConfigFile.parse(text, file: "f")
    #expect(configuration.service(named: "a")?.sourceAddresses == [IPAddress("127.0.0.2")!, IPAddress("127.0.0.3")!])
    #expect(configuration.service(named: "b")?.sourceAddresses == [IPAddress("127.0.0.4")!])
}

@Test(arguments: [
    ("services:\n  a:\n    listen: [127.0.0.1:1]\n    source: 127.0.0.2:80\n    backends: [127.0.0.1:2]\n", 4, 13,
     "source: '127.0.0.2:80' is not an IP address"),
    ("services:\n  a:\n    listen: [127.0.0.1:1]\n    source: [127.0.0.2, host.example]\n    backends: [127.0.0.1:2]\n", 4, 25,
     "source: 'host.example' is not an IP address"),
    ("services:\n  a:\n    listen: [127.0.0.1:1]\n    source: 127.0.0.2,127.0.0.2\n    backends: [127.0.0.1:2]\n", 4, 13,
     "source: 127.0.0.2 is listed twice"),
    ("services:\n  a:\n    listen: [127.0.0.1:1]\n    source: 127.0.0.2\n    backends: [127.0.0.1:2, \"[::1]:2\"]\n", 5, 29,
     "backend [::1]:2 is IPv6 but source lists only IPv4 addresses (127.0.0.2): add an IPv6 source address"),
    ("services:\n  a:\n    listen: [127.0.0.1:1]\n    backends:\n      - {address: 127.0.0.1:2, check-port: 0}\n", 5, 44,
     "check-port: '0' must be a number from 1 to 65535"),
    ("services:\n  a:\n    listen: [127.0.0.1:1]\n    backends:\n      - {address: 127.0.0.1:2, check-adress: 127.0.0.3}\n", 5, 32,
     "unknown key 'check-adress' in a backend; did you mean 'check-address'?"),
])
func badSourceAndCheckKeysNameTheLineAndColumn(_ text: String, _ line: Int, _ column: Int, _ message: String) {
    expectConfigFileError(text, line: line, column: column, message: message)
}

@Test func aReloadThatMovesOnlyTheCheckSaysSo() throws {
    let before = try ConfigFile.parse("services:\n  a: {listen: [\"127.0.0.1:1\"], backends: [\"127.0.0.1:2\"]}\n", file: "f")
    let after = try ConfigFile.parse("services:\n  a:\n    listen: [\"127.0.0.1:1\"]\n    backends: [{address: 127.0.0.1:2, check-port: 8008}]\n", file: "f")
    let difference = ConfigDifference(from: before, to: after)
    #expect(difference.summary == ["a: backend 127.0.0.1:2 checked at 127.0.0.1:2 -> 127.0.0.1:8008"])
}

@Test func sourceFamiliesDecideWhichBackendsCanBeReached() {
    let v4 = IPAddress("127.0.0.2")!
    let v6 = IPAddress("::1")!
    #expect(SourceAddresses.canReach(v6, from: []))
    #expect(SourceAddresses.canReach(v4, from: [v4]))
    #expect(!SourceAddresses.canReach(v6, from: [v4]))
    #expect(SourceAddresses.canReach(v6, from: [v4, v6]))
}

@Test func showBackendsJSONNamesTheCheckTargetOnlyWhereItDiffers() throws {
    let specs = try ["10.0.0.1:5432,check-port=8008", "10.0.0.2:5432,check-port=5432", "10.0.0.3:5432,check-address=10.0.1.3"]
        .map { text throws(ConfigError) in try BackendSpec(parsing: text) }
    let stats = ProcessStats(uptime: .zero, workers: 1, relayMode: "copy", balance: "round-robin",
                             openConnections: 0, totalConnections: 0, bytesFromClients: 0, bytesToClients: 0)
    let controller = AdminController(registry: BackendRegistry(backends: specs, algorithm: .roundRobin),
                                     processStats: { stats }, lastCheckText: { _ in nil })
    guard case let .reply(reply) = controller.handle(line: "show backends json", now: .now) else {
        Issue.record("show backends json started a wait")
        return
    }
    let body = try #require(reply.body.first)
    #expect(body.contains("\"address\":\"10.0.0.1:5432\",\"check\":\"10.0.0.1:8008\",\"weight\":1"), "\(body)")
    #expect(body.contains("\"address\":\"10.0.0.2:5432\",\"weight\":1"), "\(body)")
    #expect(body.contains("\"address\":\"10.0.0.3:5432\",\"check\":\"10.0.1.3:5432\","), "\(body)")
}
