import Foundation
import Testing

extension EndToEnd {
    /// Health checks that speak the backend's protocol (issue 22): `type: redis-primary`,
    /// `postgres`, `mysql`, `http`, a `steps` sequence and `check-send-proxy`, each against a real
    /// server the test starts on loopback with a data folder of its own. Checks run every 200 ms,
    /// so each verdict takes a few checks; every wait is bounded and no timing is asserted.
    @Suite(.serialized) struct HealthProtocols {
        /// Every service's health keys but what is checked.
        static let timing = "interval: 200ms, timeout: 1s, rise: 2, fall: 2"

        /// `show backends json` as `SERVICE/ADDRESS` → (health, last check).
        static func verdicts(_ proxy: ConfiguredProxy) -> [String: (health: String, lastCheck: String)] {
            let rows = (try? adminShowBackends(socketPath: proxy.admin.path)) ?? []
            return Dictionary(rows.map { ("\($0.service)/\($0.backend)", ($0.health, $0.lastCheck)) }) { first, _ in first }
        }

        /// Waits, bounded, until every named backend has the health given; records the rows if not.
        static func waitForHealth(_ proxy: ConfiguredProxy, _ expected: [String: String], timeout: Double = 10,
                                  sourceLocation: SourceLocation = #_sourceLocation) {
            var seen: [String: (health: String, lastCheck: String)] = [:]
            let reached = eventually(timeout: timeout, interval: 0.05) {
                seen = verdicts(proxy)
                return expected.allSatisfy { seen[$0.key]?.health == $0.value }
            }
            #expect(reached, "expected \(expected); have \(seen)\nstderr:\n\(proxy.process.standardError)", sourceLocation: sourceLocation)
        }

        /// A proxy with one service `name` on `listen`, checked with `health` (flow-mapping keys
        /// before the timing) over `backends`.
        static func proxy(_ name: String, listen: TCPEndpoint, health: String, backends: [TCPEndpoint]) throws -> ConfiguredProxy {
            try ConfiguredProxy(yaml: """
                services:
                  \(name):
                    listen: ["\(listen)"]
                    health: {\(health), \(Self.timing)}
                    backends: [\(backends.map { "\"\($0)\"" }.joined(separator: ", "))]

                """, listen: [listen])
        }

        @Test func redisPrimaryFollowsAFailoverAndNewClientsReachTheNewPrimary() throws {
            let first = try RedisServer()
            let second = try RedisServer(replicaOf: first)
            let listen = try Sockets.freeEndpoint()
            let proxy = try Self.proxy("cache", listen: listen, health: "type: redis-primary", backends: [first.endpoint, second.endpoint])
            let (a, b) = ("cache/\(first.endpoint)", "cache/\(second.endpoint)")
            Self.waitForHealth(proxy, [a: "up", b: "down"])
            let replicaText = Self.verdicts(proxy)[b]?.lastCheck ?? ""
            #expect(replicaText.contains("expect prefix '# Replication\\r\\nrole:master\\r\\n'") && replicaText.contains("role:slave"),
                    "the failing step and what the replica said: \(replicaText)")
            for _ in 0..<8 { #expect(try RedisServer.portAnswering(through: listen) == first.endpoint.port) }

            // Fail over: the replica is promoted, the old primary follows it.
            try second.command(["REPLICAOF", "NO", "ONE"])
            try first.command(["REPLICAOF", "127.0.0.1", "\(second.endpoint.port)"])

            Self.waitForHealth(proxy, [a: "down", b: "up"])
            let log = proxy.process.standardError
            // fall = 2 failed checks take the old primary down; rise = 2 bring the new one up.
            let downLine = log.split(separator: "\n").first { $0.contains("\(first.endpoint) is down") } ?? ""
            #expect(downLine.contains(": step 6 (expect prefix") && downLine.contains("role:slave") && downLine.hasSuffix("(2 checks)"),
                    "\(log)")
            #expect(log.contains("\(second.endpoint) is up (2 checks)"), "\(log)")
            for _ in 0..<8 { #expect(try RedisServer.portAnswering(through: listen) == second.endpoint.port) }
        }

        /// The command-line form: `--health-type` with the type's defaults.
        @Test func healthTypeOnTheCommandLineChecksRedisAndFailsWhatIsNotRedis() throws {
            let redis = try RedisServer()
            let other = try TestBackend(.identify(name: "not redis"))
            let proxy = try SwitchyardProcess(
                options: ["--health-type", "redis", "--health-interval", "200ms", "--health-timeout", "1s", "--rise", "2", "--fall", "2"],
                backends: [redis.endpoint.description, other.endpoint.description])
            let socket = try #require(proxy.adminSocketPath)
            var rows: [String: AdminBackendRow] = [:]
            let settled = eventually(timeout: 10, interval: 0.05) {
                rows = Dictionary(((try? adminShowBackends(socketPath: socket)) ?? []).map { ($0.backend, $0) }) { first, _ in first }
                return rows[redis.endpoint.description]?.health == "up" && rows[other.endpoint.description]?.health == "down"
                    && rows[redis.endpoint.description]?.lastCheck.hasPrefix("PONG in ") == true
            }
            #expect(settled, "\(rows.values.map { "\($0.backend) \($0.health) '\($0.lastCheck)'" })\n\(proxy.standardError)")
            let otherText = rows[other.endpoint.description]?.lastCheck ?? ""
            #expect(otherText.hasPrefix("step 2 (expect prefix '+PONG\\r\\n'): got 'not redis\\n"), "\(otherText)")
            #expect(try RedisServer.portAnswering(through: proxy.listen) == redis.endpoint.port)
        }

        /// HAProxy's most copied `tcp-check` sequence, as `steps`: AUTH, PING, INFO replication.
        @Test func stepsAuthenticatePingAndAskTheRoleAndAWrongPasswordFailsAtItsStep() throws {
            let redis = try RedisServer(password: "s3cret")
            let listen = try Sockets.freeEndpoint()
            let other = try Sockets.freeEndpoint()
            func service(_ name: String, _ listen: TCPEndpoint, password: String) -> String {
                """
                  \(name):
                    listen: ["\(listen)"]
                    health:
                      interval: 200ms
                      timeout: 1s
                      rise: 2
                      fall: 2
                      steps:
                        - send: "AUTH \(password)\\r\\n"
                        - expect: {string: "+OK", match: prefix}
                        - send: "PING\\r\\n"
                        - expect: {string: "+PONG\\r\\n", match: prefix}
                        - send-hex: "2a320d0a24340d0a494e464f0d0a2431310d0a7265706c69636174696f6e0d0a"
                        - expect: {regex: "role:master\\\\r\\\\n"}
                        - send: "QUIT\\r\\n"
                        - expect: {string: "+OK"}
                        - expect: close
                    backends: ["\(redis.endpoint)"]

                """
            }
            let proxy = try ConfiguredProxy(
                yaml: "services:\n" + service("right", listen, password: "s3cret") + service("wrong", other, password: "guess"),
                listen: [listen, other])
            Self.waitForHealth(proxy, ["right/\(redis.endpoint)": "up", "wrong/\(redis.endpoint)": "down"])
            let verdicts = Self.verdicts(proxy)
            #expect(verdicts["right/\(redis.endpoint)"]?.lastCheck.hasPrefix("9 steps passed in ") == true, "\(verdicts)\n\(proxy.process.standardError)")
            let wrong = verdicts["wrong/\(redis.endpoint)"]?.lastCheck ?? ""
            #expect(wrong.hasPrefix("step 2 (expect prefix '+OK'): got '-WRONGPASS"), "\(wrong)")
            let downLine = proxy.process.standardError.split(separator: "\n").first { $0.contains("\(redis.endpoint) is down") }
            #expect(downLine?.contains("step 2 (expect prefix '+OK'): got '-WRONGPASS") == true, "\(downLine ?? "no down line")")
            #expect(try RedisServer.portAnswering(through: listen, password: "s3cret") == redis.endpoint.port)
        }

        @Test func postgresFollowsTheServerDownAndUpAndAWrongDatabaseIsDownWithTheServersError() throws {
            let postgres = try PostgresServer()
            let (listen, other) = (try Sockets.freeEndpoint(), try Sockets.freeEndpoint())
            let proxy = try ConfiguredProxy(yaml: """
                services:
                  pg:
                    listen: ["\(listen)"]
                    health: {type: postgres, user: postgres, database: postgres, \(Self.timing)}
                    backends: ["\(postgres.endpoint)"]
                  nodb:
                    listen: ["\(other)"]
                    health: {type: postgres, user: postgres, database: nope, \(Self.timing)}
                    backends: ["\(postgres.endpoint)"]

                """, listen: [listen, other])
            let (right, wrong) = ("pg/\(postgres.endpoint)", "nodb/\(postgres.endpoint)")
            Self.waitForHealth(proxy, [right: "up", wrong: "down"])
            var verdicts = Self.verdicts(proxy)
            #expect(verdicts[right]?.lastCheck.hasPrefix("ready for query in ") == true, "\(verdicts)")
            #expect(verdicts[wrong]?.lastCheck == "PostgreSQL error: FATAL 3D000: database \"nope\" does not exist", "\(verdicts)")

            postgres.stop()
            Self.waitForHealth(proxy, [right: "down"])
            verdicts = Self.verdicts(proxy)
            #expect(verdicts[right]?.lastCheck == "connection refused", "\(verdicts)")

            try postgres.start()
            Self.waitForHealth(proxy, [right: "up", wrong: "down"])
            #expect(proxy.process.standardError.contains("\(postgres.endpoint) is up (2 checks)"))
        }

        @Test func mysqlCheckReadsMariaDBsGreetingAndFollowsItsStop() throws {
            let mariadb = try MariaDBServer()
            let notMySQL = try TestBackend(.identify(name: "not a database"))
            let listen = try Sockets.freeEndpoint()
            let proxy = try Self.proxy("db", listen: listen, health: "type: mysql", backends: [mariadb.endpoint, notMySQL.endpoint])
            let (db, other) = ("db/\(mariadb.endpoint)", "db/\(notMySQL.endpoint)")
            Self.waitForHealth(proxy, [db: "up", other: "down"])
            let verdicts = Self.verdicts(proxy)
            #expect(verdicts[db]?.lastCheck.hasPrefix("protocol 10, ") == true && verdicts[db]?.lastCheck.contains("MariaDB") == true,
                    "\(verdicts)")
            #expect(verdicts[other]?.lastCheck == "not a protocol 10 greeting: 'not a database\\n'", "\(verdicts)")

            mariadb.stop()
            Self.waitForHealth(proxy, [db: "down"])
            #expect(Self.verdicts(proxy)[db]?.lastCheck == "connection refused")
        }

        /// Python's `smtpd` (a real SMTP dialogue: banner, EHLO, QUIT) against a server whose
        /// banner refuses service.
        @Test func smtpCheckReadsTheBannerAndTheEhloReplyAndFollowsTheServersStop() throws {
            let endpoint = try Sockets.freeEndpoint()
            let folder = try ConfiguredProxy.makeFolder()
            defer { try? FileManager.default.removeItem(atPath: folder) }
            let smtp = try ForegroundServer("/usr/bin/python3", ["-W", "ignore", "-m", "smtpd", "-n", "-c", "DebuggingServer", "\(endpoint)"],
                                            folder: folder)
            try smtp.waitUntilListening(endpoint, timeout: 10)
            let refusing = try TestBackend(.identify(name: "554 no service here"))
            let listen = try Sockets.freeEndpoint()
            let proxy = try Self.proxy("mail", listen: listen, health: "type: smtp, ehlo: lb.test", backends: [endpoint, refusing.endpoint])
            let (server, other) = ("mail/\(endpoint)", "mail/\(refusing.endpoint)")
            Self.waitForHealth(proxy, [server: "up", other: "down"])
            let verdicts = Self.verdicts(proxy)
            #expect(verdicts[server]?.lastCheck.hasPrefix("220 banner, EHLO 250 in ") == true, "\(verdicts)")
            #expect(verdicts[other]?.lastCheck.hasPrefix("step 1 (expect prefix '220'): got '554 no service here\\n") == true, "\(verdicts)")

            smtp.stop()
            Self.waitForHealth(proxy, [server: "down"])
            #expect(Self.verdicts(proxy)[server]?.lastCheck == "connection refused")
        }

        /// The Patroni pattern: `type: http` on the agent's port (`check-port`), `path: /primary`.
        @Test func httpCheckOnAnAgentPortFollowsA503ThenA200() throws {
            let node = try TestBackend(.identify(name: "node"))
            let agent = try HealthAgent(primary: false)
            let listen = try Sockets.freeEndpoint()
            let proxy = try ConfiguredProxy(yaml: """
                services:
                  pg-primary:
                    listen: ["\(listen)"]
                    health: {type: http, path: /primary, host: patroni, status: 200-299, \(Self.timing)}
                    backends:
                      - {address: "\(node.endpoint)", check-port: \(agent.endpoint.port)}

                """, listen: [listen])
            let row = "pg-primary/\(node.endpoint)"
            Self.waitForHealth(proxy, [row: "down"])
            #expect(Self.verdicts(proxy)[row]?.lastCheck == "HTTP 503 Service Unavailable")
            #expect(agent.requestLines.first == "GET /primary HTTP/1.1", "\(agent.requestLines.prefix(2))")

            agent.isPrimary = true
            Self.waitForHealth(proxy, [row: "up"])
            #expect(Self.verdicts(proxy)[row]?.lastCheck.hasPrefix("HTTP 200 OK in ") == true)
            let client = try IdentifiedClient(through: listen)
            #expect(client.backendName == "node")
        }

        /// A backend that requires a PROXY header (and closes on anything else) passes only with
        /// `check-send-proxy`: the service's key, or a backend's override with its own version.
        @Test func checkSendProxyPassesABackendThatRequiresTheHeader() throws {
            let backend = try ProxyHeaderBackend()
            let listens = try (0..<3).map { _ in try Sockets.freeEndpoint() }
            // The backend answers the header with a line naming the addresses it carried.
            let steps = #"steps: [{send: "ping\n"}, {expect: {regex: '127\.0\.0\.1:\d+ 127\.0\.0\.1:\d+\nping\n', match: prefix}}]"#
            let proxy = try ConfiguredProxy(yaml: """
                services:
                  with:
                    listen: ["\(listens[0])"]
                    send-proxy: v1
                    health: {check-send-proxy: true, \(steps), \(Self.timing)}
                    backends: ["\(backend.endpoint)"]
                  without:
                    listen: ["\(listens[1])"]
                    health: {\(steps), \(Self.timing)}
                    backends: ["\(backend.endpoint)"]
                  override:
                    listen: ["\(listens[2])"]
                    health: {\(steps), \(Self.timing)}
                    backends:
                      - {address: "\(backend.endpoint)", send-proxy: v2, check-send-proxy: true}

                """, listen: listens)
            let name = backend.endpoint.description
            Self.waitForHealth(proxy, ["with/\(name)": "up", "without/\(name)": "down", "override/\(name)": "up"])
            let without = Self.verdicts(proxy)["without/\(name)"]?.lastCheck ?? ""
            #expect(without.hasPrefix("step 2 (expect prefix /127") && without.contains("got 'invalid ") && without.hasSuffix("(then closed)"),
                    "\(without)\n\(proxy.process.standardError)")
            // The checks' headers carry the check's own addresses: to the backend itself.
            #expect(backend.headers.contains { $0.destination?.description == name }, "\(backend.headers.prefix(3))")

            // Clients of `with` get a header too, then their bytes echoed.
            let client = try TCPConnection(to: listens[0], timeout: 5)
            defer { client.close() }
            try client.send("hello\n")
            try client.shutdownWrite()
            let reply = client.readToEnd(timeout: 5, keepingUpTo: 4096).keptText
            #expect(reply.hasPrefix("127.0.0.1:") && reply.hasSuffix("\nhello\n"), "\(reply.debugDescription)")
        }
    }
}
