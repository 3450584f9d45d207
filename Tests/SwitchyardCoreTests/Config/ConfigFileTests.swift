import Testing
@testable import SwitchyardCore

private func endpoint(_ text: String) -> Endpoint { try! Endpoint(parsing: text, allowPortZero: true) }
private func backend(_ text: String) -> BackendSpec { try! BackendSpec(parsing: text) }

private let fullExample = """
workers: 2
relay: splice
admin-socket: /run/switchyard.sock
max-connections: 5000
shutdown-grace: 10s
buffer-size: 16
buffers: 256
pipe-size: 512
parked-memory: 16
log-level: notice
state-file: /var/lib/switchyard/state
defaults:
  balance: round-robin
  connect-timeout: 5s
  health: {interval: 2s, timeout: 1s, rise: 2, fall: 3}
services:
  pg-primary:
    listen: ["0.0.0.0:5000"]
    balance: least-conn
    connect-timeout: 3s
    idle-timeout: 30m
    health:
      send: "PING\\r\\n"
      expect: "+PONG"
      expect-match: prefix
    backends:
      - address: 10.0.0.1:5432
        weight: 1
      - 10.0.0.2:5432,weight=2
  pg-replicas:
    listen: ["0.0.0.0:5001", "[::1]:5001"]
    balance: weighted
    health: off
    backends: ["10.0.0.3:5432", "10.0.0.4:5432"]
"""

@Test func everyKeyOfTheFullExampleDecodes() throws {
    let configuration = try ConfigFile.parse(fullExample, file: "switchyard.yaml")
    let global = configuration.global
    #expect(global.workers == 2)
    #expect(global.relay == .splice)
    #expect(global.adminSocket == "/run/switchyard.sock")
    #expect(global.adminSocketEnabled)
    #expect(global.maxConnections == 5000)
    #expect(global.shutdownGrace == .seconds(10))
    #expect(global.bufferSize == 16)
    #expect(global.buffers == 256)
    #expect(global.pipeSize == 512)
    #expect(global.parkedMemory == 16)
    #expect(global.logLevel == .notice)
    #expect(global.stateFile == "/var/lib/switchyard/state")
    #expect(configuration.services.map(\.name) == ["pg-primary", "pg-replicas"])

    let primary = try #require(configuration.service(named: "pg-primary"))
    #expect(primary.listen == [endpoint("0.0.0.0:5000")])
    #expect(primary.balance == .leastConnections)
    #expect(primary.connectTimeout == .seconds(3))
    #expect(primary.idleTimeout == .seconds(1800))
    #expect(primary.health == HealthCheckConfig(
        interval: .seconds(2), timeout: .seconds(1), rise: 2, fall: 3,
        send: Array("PING\r\n".utf8), expect: Array("+PONG".utf8), expectMatch: .prefix))
    #expect(primary.backends == [BackendSpec(endpoint: endpoint("10.0.0.1:5432"), weight: 1, weightGiven: true),
                                 backend("10.0.0.2:5432,weight=2")])

    let replicas = try #require(configuration.service(named: "pg-replicas"))
    #expect(replicas.listen == [endpoint("0.0.0.0:5001"), endpoint("[::1]:5001")])
    #expect(replicas.balance == .weighted)
    #expect(replicas.connectTimeout == .seconds(5), "the default applies")
    #expect(replicas.idleTimeout == nil)
    #expect(replicas.health == nil, "health: off")
    #expect(replicas.backends == [backend("10.0.0.3:5432"), backend("10.0.0.4:5432")])
}

@Test func aMinimalFileGetsTheCommandLineDefaults() throws {
    let configuration = try ConfigFile.parse("""
        services:
          redis:
            listen: 127.0.0.1:6379
            backends: [127.0.0.1:7000]
        """, file: "f")
    #expect(configuration.global == GlobalSettings())
    let redis = try #require(configuration.service(named: "redis"))
    #expect(redis.balance == .roundRobin)
    #expect(redis.connectTimeout == .seconds(5))
    #expect(redis.health == HealthCheckConfig())
    #expect(redis.listen == [endpoint("127.0.0.1:6379")])
}

@Test func healthKeysMergeOneByOneOverTheDefaults() throws {
    let configuration = try ConfigFile.parse("""
        defaults:
          health: {interval: 5s, fall: 4}
          idle-timeout: 1m
        services:
          a:
            listen: [127.0.0.1:1]
            health: {fall: 7, send: "x"}
            idle-timeout: off
            backends: [127.0.0.1:2]
        """, file: "f")
    let a = try #require(configuration.service(named: "a"))
    #expect(a.health?.interval == .seconds(5))
    #expect(a.health?.fall == 7)
    #expect(a.health?.send == [UInt8(ascii: "x")])
    #expect(a.idleTimeout == nil, "idle-timeout: off overrides the default")
}

@Test func adminSocketOffDisablesIt() throws {
    let configuration = try ConfigFile.parse("""
        admin-socket: off
        services: {a: {listen: [127.0.0.1:1], backends: [127.0.0.1:2]}}
        """, file: "f")
    #expect(!configuration.global.adminSocketEnabled)
}

/// Each bad file, the line and column the error must point at, and text its message must hold.
@Test(arguments: [
    ("services:\n  a:\n    listen: [127.0.0.1:1]\n    backend: [127.0.0.1:2]\n", 4, 5, "unknown key 'backend' in a service; did you mean 'backends'?"),
    ("wrokers: 2\nservices: {}\n", 1, 1, "unknown key 'wrokers' in the top level; did you mean 'workers'?"),
    ("workers: two\nservices: {}\n", 1, 10, "'workers': expected a whole number"),
    ("workers: 0\nservices:\n  a: {listen: [127.0.0.1:1], backends: [127.0.0.1:2]}\n", 1, 10, "workers 0 must be from 1 to 256"),
    ("relay: teleport\nservices: {}\n", 1, 8, "relay: 'teleport' is not one of copy, splice, auto"),
    ("services:\n  a:\n    listen: [127.0.0.1:1]\n    connect-timeout: 5x\n    backends: [127.0.0.1:2]\n", 4, 22,
     "connect-timeout: '5x' is not a duration"),
    ("services:\n  a:\n    listen: [127.0.0.1:1]\n    backends:\n      - 127.0.0.1:2\n      - 127.0.0.1:99999\n", 6, 9,
     "port '99999' must be a number from 1 to 65535"),
    ("services:\n  a:\n    listen: [127.0.0.1:1]\n    backends: [127.0.0.1:2, 127.0.0.1:2]\n", 4, 29,
     "backend 127.0.0.1:2 is listed twice in service 'a'"),
    ("services:\n  a:\n    listen: [127.0.0.1:1]\n    backends: []\n", 4, 15, "service 'a' has an empty backend pool"),
    ("services:\n  a:\n    listen: [127.0.0.1:1]\n", 3, 5, "service 'a' has an empty backend pool"),
    ("services:\n  a: {listen: [127.0.0.1:1], backends: [127.0.0.1:2]}\n  b: {listen: [127.0.0.1:1], backends: [127.0.0.1:3]}\n",
     3, 16, "listen address 127.0.0.1:1 is used by two services: 'a' and 'b'"),
    ("services:\n  a: {listen: [127.0.0.1:1], backends: [127.0.0.1:2]}\n  a: {listen: [127.0.0.1:3], backends: [127.0.0.1:2]}\n",
     2, 3, "duplicate key 'a'"),
    ("services:\n  a:\n    listen: [127.0.0.1:1]\n    health: {rise: 0}\n    backends: [127.0.0.1:2]\n", 4, 13,
     "health check rise 0 must be from 1 to 100"),
    ("services:\n  a:\n    listen: [127.0.0.1:1]\n    health: sometimes\n    backends: [127.0.0.1:2]\n", 4, 13,
     "health: expected a mapping"),
    ("services:\n  a:\n    listen: [127.0.0.1:1]\n    backends:\n      - {address: 127.0.0.1:2, wieght: 3}\n", 5, 32,
     "unknown key 'wieght' in a backend; did you mean 'weight'?"),
    ("services:\n  a:\n    listen: [127.0.0.1:1]\n    backends:\n      - {weight: 3}\n", 5, 9, "missing key 'address'"),
    ("services:\n  a:\n    listen: [127.0.0.1:1]\n    backends:\n      - {address: 127.0.0.1:2, weight: 300}\n", 5, 40,
     "weight '300' must be a whole number from 0 to 256"),
    ("services:\n  b@d: {listen: [127.0.0.1:1], backends: [127.0.0.1:2]}\n", 2, 8, "service name 'b@d' may hold only"),
    ("services:\n  a: {listen: [127.0.0.1:1], backends: [127.0.0.1:2]\n", 3, 1, "YAML syntax"),
    ("workers: 2\n", 1, 1, "missing key 'services'"),
    ("", 1, 1, "the file is empty"),
    ("services: []\n", 1, 11, "'services': expected a mapping"),
    ("defaults:\n  listen: [127.0.0.1:1]\nservices: {}\n", 2, 11, "'listen' cannot be a default"),
    ("services: {}\n", 1, 11, "no services are configured"),
    ("buffers: 1000\nservices:\n  a: {listen: [127.0.0.1:1], backends: [127.0.0.1:2]}\n", 1, 10, "buffers 1000 must be a power of two"),
    ("services:\n  a:\n    listen: [127.0.0.1:1]\n    balance: fastest\n    backends: [127.0.0.1:2]\n", 4, 14,
     "balance: 'fastest' is not one of round-robin, weighted, least-conn, ip-hash"),
    ("services:\n  a:\n    listen: [127.0.0.1:1]\n    health: {send: \"PING\\\\q\"}\n    backends: [127.0.0.1:2]\n", 4, 20,
     "send: 'PING\\q': unknown escape"),
])
func badFilesNameTheLineAndColumnAndWhatWasExpected(_ text: String, _ line: Int, _ column: Int, _ message: String) {
    expectConfigFileError(text, line: line, column: column, message: message)
}

@Test func nearestKeyOnlySuggestsCloseNames() {
    #expect(NearestKey.suggestion(for: "backend", among: RawService.keys) == "backends")
    #expect(NearestKey.suggestion(for: "conect-timeout", among: RawService.keys) == "connect-timeout")
    #expect(NearestKey.suggestion(for: "zzzzzzzz", among: RawService.keys) == nil)
}

@Test func routeBySNIDecodesAndItsTargetsNeedNoListener() throws {
    let configuration = try ConfigFile.parse("""
        services:
          tls-edge:
            listen: ["0.0.0.0:443"]
            sni-timeout: 2s
            route-by-sni:
              "api.example.com": kube-api
              "*.db.example.com": postgres-tls
              default: web-tls
          kube-api: {backends: ["10.0.0.1:6443"]}
          postgres-tls: {backends: ["10.0.0.2:5432"]}
          web-tls: {backends: ["10.0.0.3:443"]}
        """, file: "f")
    let edge = try #require(configuration.service(named: "tls-edge"))
    #expect(edge.routing == SNIRouting(routes: [
        .init(pattern: "api.example.com", service: "kube-api"), .init(pattern: "*.db.example.com", service: "postgres-tls"),
    ], defaultService: "web-tls"))
    #expect(edge.sniTimeout == .seconds(2))
    #expect(edge.health == nil, "a routing service has no pool to check")
    #expect(configuration.service(named: "kube-api")?.listen.isEmpty == true)
    let table = try edge.routing!.table()
    #expect(table.route(serverName: "API.example.com").target == "kube-api")
    #expect(table.route(serverName: "a.db.example.com").target == "postgres-tls")
    #expect(table.route(serverName: nil).target == "web-tls")
}

@Test(arguments: [
    ("services:\n  e:\n    listen: [127.0.0.1:1]\n    route-by-sni: {\"a.test\": nope}\n", "names service 'nope', which is not defined"),
    ("services:\n  e:\n    listen: [127.0.0.1:1]\n    route-by-sni: {\"a.test\": t}\n    backends: [127.0.0.1:2]\n  t: {backends: [127.0.0.1:3]}\n",
     "routes by SNI: it has no pool of its own"),
    ("services:\n  e:\n    listen: [127.0.0.1:1]\n    route-by-sni: {\"a*.test\": t}\n  t: {backends: [127.0.0.1:3]}\n", "route-by-sni:"),
    ("services:\n  t: {backends: [127.0.0.1:3]}\n", "service 't' has no listen address (and no route-by-sni names it)"),
    ("services:\n  e:\n    listen: [127.0.0.1:1]\n    route-by-sni: {\"a.test\": f}\n  f:\n    listen: [127.0.0.1:2]\n    route-by-sni: {\"b.test\": t}\n  t: {backends: [127.0.0.1:3]}\n",
     "which routes by SNI itself"),
])
func badSNIRoutingIsRefused(_ text: String, _ message: String) {
    #expect(throws: ConfigFileError.self) { try ConfigFile.parse(text, file: "f") }
    do {
        _ = try ConfigFile.parse(text, file: "f")
    } catch {
        #expect(error.message.contains(message), "\(error)")
    }
}

/// `withdraw-delay` (issue 26): 0s by default, any duration up to 3600s, applied at SIGTERM.
@Test func withdrawDelayDefaultsToZeroAndIsBounded() throws {
    let services = "services:\n  main:\n    listen: [\"127.0.0.1:7000\"]\n    backends: [\"127.0.0.1:7001\"]\n"
    #expect(try ConfigFile.parse(services, file: "f").global.withdrawDelay == .zero)
    #expect(try ConfigFile.parse("withdraw-delay: 2s\n" + services, file: "f").global.withdrawDelay == .seconds(2))
    for bad in ["-1s", "2h", "soon"] {
        #expect(throws: ConfigFileError.self, "\(bad)") { try ConfigFile.parse("withdraw-delay: \(bad)\n" + services, file: "f") }
    }
    do {
        _ = try ConfigFile.parse("withdraw-delay: 2h\n" + services, file: "f")
    } catch {
        #expect(error.description.contains("withdraw-delay must be from 0s to 3600s"), "\(error)")
    }
}
