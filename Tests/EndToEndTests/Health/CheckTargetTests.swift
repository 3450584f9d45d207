import Foundation
import Testing

extension EndToEnd {
    /// `check-port` / `check-address` (issue 13): a backend's health checks ask an agent beside
    /// it instead of the service itself, the Patroni pattern: writes go to the node whose
    /// `GET /primary` on the agent port answers 200.
    @Suite struct CheckTarget {
        @Test func onlyTheBackendWhoseAgentSaysPrimaryGetsClientsAndFlippingTheAgentsMovesThem() throws {
            let nodes = try ["a", "b"].map { try TestBackend(.identify(name: $0)) }
            // a's agent shares a's host on another port; b's lives on another address (check-address).
            let agents = [try HealthAgent(primary: true), try HealthAgent(primary: false, host: "127.0.0.3")]
            let listen = try Sockets.freeEndpoint()
            let proxy = try ConfiguredProxy(yaml: """
                services:
                  pg-primary:
                    listen: ["\(listen)"]
                    health:
                      interval: 100ms
                      timeout: 500ms
                      rise: 1
                      fall: 1
                      send: "GET /primary HTTP/1.1\\r\\nHost: patroni\\r\\n\\r\\n"
                      expect: "HTTP/1.1 200"
                      expect-match: prefix
                    backends:
                      - {address: "\(nodes[0].endpoint)", check-port: \(agents[0].endpoint.port)}
                      - {address: "\(nodes[1].endpoint)", check-address: 127.0.0.3, check-port: \(agents[1].endpoint.port)}

                """, listen: [listen])
            let names = nodes.map(\.endpoint.description)
            func healthIs(_ a: String, _ b: String) -> Bool {
                guard let rows = try? proxy.admin.backends() else { return false }
                return rows[names[0]]?["health"] as? String == a && rows[names[1]]?["health"] as? String == b
            }
            #expect(eventually(timeout: 5, interval: 0.05) { healthIs("up", "down") },
                    "\(String(describing: try? proxy.admin.backends()))\n\(proxy.process.standardError)")
            let rows = try proxy.admin.backends()
            #expect(rows[names[0]]?["check"] as? String == agents[0].endpoint.description)
            #expect(rows[names[1]]?["check"] as? String == agents[1].endpoint.description)
            #expect((rows[names[1]]?["last_check"] as? String)?.contains("HTTP/1.1 503") == true, "\(String(describing: rows[names[1]]))")

            func serve(_ count: Int, seed: UInt64) throws -> [String: Int] {
                var reached: [String: Int] = [:]
                for client in 0..<count {
                    let (connection, backend) = try IdentifiedClients.connect(to: listen)
                    defer { connection.close() }
                    try connection.verifyEchoStream(seed: seed + UInt64(client), count: 96 << 10, timeout: 10)
                    reached[backend, default: 0] += 1
                }
                return reached
            }
            #expect(try serve(12, seed: 0xA6E47) == ["a": 12])

            // The old primary steps down and the other is promoted.
            agents[0].isPrimary = false
            agents[1].isPrimary = true
            #expect(eventually(timeout: 5, interval: 0.05) { healthIs("down", "up") },
                    "\(String(describing: try? proxy.admin.backends()))\n\(proxy.process.standardError)")
            #expect(try serve(12, seed: 0xB6E47) == ["b": 12])

            // The checks went to the agents (each was asked before and after the flip) and never
            // to the services themselves: the nodes saw only the clients (and the harness's one
            // readiness probe).
            for agent in agents {
                let lines = agent.requestLines
                #expect(lines.count >= 2, "\(agent.endpoint) was asked \(lines.count) times")
                #expect(lines.allSatisfy { $0 == "GET /primary HTTP/1.1" }, "\(lines.prefix(3))")
            }
            let accepted = nodes.map(\.acceptedCount).reduce(0, +)
            #expect(accepted <= 24 + 1, "the nodes accepted \(accepted) connections for 24 clients: checks reached them")
        }

        @Test func aReloadThatMovesTheCheckChecksTheNewTargetAtOnce() throws {
            let node = try TestBackend(.identify(name: "a"))
            let replica = try HealthAgent(primary: false)
            let primary = try HealthAgent(primary: true)
            let listen = try Sockets.freeEndpoint()
            func yaml(checkPort: UInt16) -> String {
                """
                services:
                  main:
                    listen: ["\(listen)"]
                    health: {interval: 1s, timeout: 500ms, rise: 1, fall: 1, send: "GET /primary HTTP/1.0\\r\\n\\r\\n", expect: "HTTP/1.1 200", expect-match: prefix}
                    backends: [{address: "\(node.endpoint)", check-port: \(checkPort)}]

                """
            }
            let proxy = try ConfiguredProxy(yaml: yaml(checkPort: replica.endpoint.port), listen: [listen])
            let name = node.endpoint.description
            #expect(eventually(timeout: 5, interval: 0.05) { (try? proxy.admin.backends())?[name]?["health"] as? String == "down" })

            try proxy.rewrite(yaml(checkPort: primary.endpoint.port))
            let reload = try proxy.admin.send("reload")
            #expect(reload.description.contains("main: backend \(name) checked at 127.0.0.1:\(replica.endpoint.port) -> 127.0.0.1:\(primary.endpoint.port)"),
                    "\(reload)")
            // At once, not a 1 s interval later.
            let reloaded = Date()
            #expect(eventually(timeout: 3, interval: 0.02) { (try? proxy.admin.backends())?[name]?["health"] as? String == "up" })
            #expect(Date().timeIntervalSince(reloaded) < 0.8, "up only after \(Date().timeIntervalSince(reloaded)) s")
            #expect(try proxy.admin.backends()[name]?["check"] as? String == primary.endpoint.description)
            let (connection, backend) = try IdentifiedClients.connect(to: listen)
            defer { connection.close() }
            #expect(backend == "a")
            try connection.verifyEchoStream(seed: 0xC4EC, count: 32 << 10, timeout: 5)
        }
    }
}
