import Foundation
import Testing

/// Opens clients through `listen` until `wanted` of them are held on each `ChaosBackend` name
/// (the first word of its greeting); the others are closed. Each held client has read its
/// greeting and made one echo round trip. Throws after a bounded number of attempts.
func holdClients(_ wanted: [String: Int], through listen: TCPEndpoint) throws -> [String: [TCPConnection]] {
    var held: [String: [TCPConnection]] = [:]
    let total = wanted.values.reduce(0, +)
    for attempt in 0..<(total * 4 + 8) where held.values.map(\.count).reduce(0, +) < total {
        let (connection, line) = try IdentifiedClients.connect(to: listen)
        let name = String(line.split(separator: " ")[0])
        guard held[name, default: []].count < wanted[name, default: 0] else {
            connection.close()
            continue
        }
        try connection.roundTrip(Array("hello \(attempt)\n".utf8))
        held[name, default: []].append(connection)
    }
    guard wanted.allSatisfy({ held[$0.key]?.count == $0.value }) else {
        throw HarnessError("held \(held.mapValues(\.count)), wanted \(wanted)")
    }
    return held
}

/// The `switchyard_connections_closed_total` count of `cause` on `listen`'s listener.
func closedCount(_ metrics: TCPEndpoint, service: String, listener: TCPEndpoint, cause: String) -> Double? {
    let text = (try? httpGet(metrics, "/metrics")) ?? ""
    return metricValue(text, "switchyard_connections_closed_total{service=\"\(service)\",listener=\"\(listener)\",cause=\"\(cause)\"}")
}

extension EndToEnd {
    /// What happens to open sessions when a backend goes: `on-down: shutdown-sessions`,
    /// `on-up: shutdown-backup-sessions` and `removal-grace`. Every client either sees a reset
    /// or gets all its bytes back (checksummed); none sees a clean end of stream.
    @Suite(.timeLimit(.minutes(2))) struct SessionShutdown {
        /// A configuration with two workers, metrics on `metrics`, and service `db` on `listen`
        /// with health checks every 200 ms, the service key line `key` and `backends` (YAML items);
        /// an access log at `accessLog` if given.
        static func yaml(listen: TCPEndpoint, metrics: TCPEndpoint, key: String, backends: [String], accessLog: String? = nil) -> String {
            """
            workers: 2
            metrics: "\(metrics)"
            \(accessLog.map { "access-log: \"\($0)\"" } ?? "")
            services:
              db:
                listen: "\(listen)"
                \(key)
                health: {interval: 200ms, timeout: 2s, rise: 1, fall: 1}
                backends: [\(backends.joined(separator: ", "))]
            """
        }

        /// Expects each of `clients` to be reset (not closed cleanly, not left open) within a bound.
        static func expectReset(_ clients: [TCPConnection], _ what: String, sourceLocation: SourceLocation = #_sourceLocation) {
            for (index, client) in clients.enumerated() {
                let outcome = client.readToEnd(timeout: 5 * EndToEnd.sanitizerSlowdown)
                #expect(outcome.end == .reset, "\(what) client \(index): \(outcome.end)", sourceLocation: sourceLocation)
                client.close()
            }
        }

        /// Expects each of `clients` to echo a stream of its own whole, then end cleanly.
        static func expectServed(_ clients: [TCPConnection], seed: UInt64, sourceLocation: SourceLocation = #_sourceLocation) {
            for (index, client) in clients.enumerated() {
                #expect(throws: Never.self, sourceLocation: sourceLocation) {
                    try client.verifyEchoStream(seed: seed + UInt64(index), count: 256 << 10, timeout: 10)
                }
                client.close()
            }
        }

        @Test func onDownResetsTheSessionsOfABackendMarkedDownAndOnlyThose() throws {
            let victim = try ChaosBackend(name: "victim")
            let other = try ChaosBackend(name: "other")
            // The victim's checks go to a port of their own, so that it fails them while its
            // open sessions would still be served: only on-down can cut them.
            let victimCheck = try TestBackend(.echo)
            defer { for backend in [victim, other] { backend.shutDown() } }
            let listen = try Sockets.freeEndpoint()
            let metrics = try Sockets.freeEndpoint()
            let folder = try ConfiguredProxy.makeFolder()
            defer { try? FileManager.default.removeItem(atPath: folder) }
            let accessLog = folder + "/access.log"
            let proxy = try ConfiguredProxy(yaml: Self.yaml(listen: listen, metrics: metrics, key: "on-down: shutdown-sessions", backends: [
                "{address: \"\(victim.endpoint)\", check-port: \(victimCheck.endpoint.port)}", "\"\(other.endpoint)\"",
            ], accessLog: accessLog), listen: [listen], folder: folder)
            try #require(waitForHealth(proxy.admin, [victim.endpoint, other.endpoint], "up"))
            let held = try holdClients(["victim": 3, "other": 3], through: listen)

            victimCheck.stop()
            try #require(waitForHealth(proxy.admin, [victim.endpoint], "down"))
            Self.expectReset(held["victim"]!, "victim")
            Self.expectServed(held["other"]!, seed: 0x0D0)
            #expect(eventually(timeout: 5) { closedCount(metrics, service: "db", listener: listen, cause: "backend_down") == 3 },
                    "\(closedCount(metrics, service: "db", listener: listen, cause: "backend_down") ?? -1)")
            #expect(victim.isListening, "the backend itself never went away; only its checks failed")
            #expect(eventually(timeout: 5) {
                let lines = ((try? String(contentsOfFile: accessLog, encoding: .utf8)) ?? "").split(separator: "\n")
                return lines.filter { $0.contains("/\(victim.endpoint) ") && $0.contains(" backend_down ") }.count == 3
            }, "the access log names the cause of each reset")
        }

        @Test func onUpResetsBackupSessionsOnceThePrimaryTierIsBack() throws {
            let primary = try ChaosBackend(name: "primary")
            let backup = try ChaosBackend(name: "standby")
            defer { for backend in [primary, backup] { backend.shutDown() } }
            let listen = try Sockets.freeEndpoint()
            let metrics = try Sockets.freeEndpoint()
            let proxy = try ConfiguredProxy(yaml: Self.yaml(listen: listen, metrics: metrics, key: "on-up: shutdown-backup-sessions", backends: [
                "\"\(primary.endpoint)\"", "{address: \"\(backup.endpoint)\", backup: true}",
            ]), listen: [listen])
            try #require(waitForHealth(proxy.admin, [primary.endpoint, backup.endpoint], "up"))
            primary.stop()
            try #require(waitForHealth(proxy.admin, [primary.endpoint], "down"))
            let onBackup = try holdClients(["standby": 3], through: listen)["standby"]!

            try primary.start()
            try #require(waitForHealth(proxy.admin, [primary.endpoint], "up"))
            Self.expectReset(onBackup, "backup")
            #expect(try tallyBackendNames(4, through: listen) == ["primary": 4], "clients reconnect to the primary tier")
            let fresh = try holdClients(["primary": 2], through: listen)["primary"]!
            Self.expectServed(fresh, seed: 0x0A1)
            #expect(eventually(timeout: 5) { closedCount(metrics, service: "db", listener: listen, cause: "backup_preempted") == 3 },
                    "\(closedCount(metrics, service: "db", listener: listen, cause: "backup_preempted") ?? -1)")
        }

        @Test func aRemovedBackendDrainsAndItsSessionsAreResetOnceTheRemovalGraceRunsOut() throws {
            let leaving = try ChaosBackend(name: "leaving")
            let staying = try ChaosBackend(name: "staying")
            defer { for backend in [leaving, staying] { backend.shutDown() } }
            let listen = try Sockets.freeEndpoint()
            let metrics = try Sockets.freeEndpoint()
            func yaml(_ backends: [ChaosBackend]) -> String {
                Self.yaml(listen: listen, metrics: metrics, key: "removal-grace: 3s", backends: backends.map { "\"\($0.endpoint)\"" })
            }
            let proxy = try ConfiguredProxy(yaml: yaml([leaving, staying]), listen: [listen])
            try #require(waitForHealth(proxy.admin, [leaving.endpoint, staying.endpoint], "up"))
            let held = try holdClients(["leaving": 2, "staying": 2], through: listen)

            try proxy.rewrite(yaml([staying]))
            let reply = try proxy.admin.send("reload")
            try #require(reply.isOK, "\(reply)")
            // Draining: new clients go elsewhere, open ones are still served.
            #expect(try tallyBackendNames(4, through: listen) == ["staying": 4])
            for (index, client) in held["leaving"]!.enumerated() {
                #expect(throws: Never.self) { try client.roundTrip(Array("still here \(index)\n".utf8)) }
            }
            #expect(closedCount(metrics, service: "db", listener: listen, cause: "removal_grace") ?? 0 == 0)

            Self.expectReset(held["leaving"]!, "removed backend's")
            Self.expectServed(held["staying"]!, seed: 0x6CE)
            #expect(eventually(timeout: 5) { closedCount(metrics, service: "db", listener: listen, cause: "removal_grace") == 2 })
            #expect(eventually(timeout: 5) {
                ((try? adminBackendRows(socketPath: proxy.admin.path)) ?? []).map(\.address) == [staying.endpoint.description]
            }, "the removed backend goes once its last session ended")
        }

        @Test func aBackendItsDNSNameNoLongerListsDrainsThenItsSessionsAreResetAfterTheGrace() throws {
            let (port, backends) = try SamePortBackends.start(hosts: ["127.0.0.2", "127.0.0.3"])
            let dns = try DnsmasqServer(hosts: ["127.0.0.2 pool.test", "127.0.0.3 pool.test"])
            let listen = try Sockets.freeEndpoint()
            let metrics = try Sockets.freeEndpoint()
            let proxy = try ConfiguredProxy(yaml: """
                resolvers: ["\(dns.endpoint)"]
                workers: 2
                metrics: "\(metrics)"
                services:
                  pool:
                    listen: "\(listen)"
                    dns: pool.test:\(port)
                    dns-min-ttl: 200ms
                    dns-max-ttl: 1s
                    removal-grace: 3s
                    health: off
                """, listen: [listen])
            // In this order: left to deinit, teardown took 5 s more.
            defer {
                dns.stop()
                for backend in backends { backend.stop() }
                proxy.process.kill()
            }
            let gone = "127.0.0.2:\(port)"
            try #require(eventually(timeout: 5 * EndToEnd.sanitizerSlowdown) {
                ((try? adminBackendRows(socketPath: proxy.admin.path)) ?? []).count == 2
            })
            let held = try holdClients(["127.0.0.2": 2, "127.0.0.3": 2], through: listen)

            try dns.setHosts(["127.0.0.3 pool.test"])
            try #require(eventually(timeout: 6 * EndToEnd.sanitizerSlowdown) {
                ((try? adminBackendRows(socketPath: proxy.admin.path)) ?? []).contains { $0.address == gone && $0.state == "drain" }
            }, "the vanished address does not drain")
            for (index, client) in held["127.0.0.2"]!.enumerated() {
                #expect(throws: Never.self) { try client.roundTrip(Array("still here \(index)\n".utf8)) }
            }
            Self.expectReset(held["127.0.0.2"]!, "vanished backend's")
            Self.expectServed(held["127.0.0.3"]!, seed: 0xD45)
            #expect(eventually(timeout: 5) { closedCount(metrics, service: "pool", listener: listen, cause: "removal_grace") == 2 })
            #expect(eventually(timeout: 5) {
                ((try? adminBackendRows(socketPath: proxy.admin.path)) ?? []).map(\.address) == ["127.0.0.3:\(port)"]
            })
        }
    }
}
