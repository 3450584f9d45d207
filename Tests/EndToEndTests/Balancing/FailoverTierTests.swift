import Foundation
import Testing

/// Clients reached through `listen`, one after another, counted by the name of the
/// `ChaosBackend` that answered (the first word of its greeting line). Each client echoes a
/// line, so a backend that took it really served it.
func tallyBackendNames(_ count: Int, through listen: TCPEndpoint) throws -> [String: Int] {
    var tally: [String: Int] = [:]
    for index in 0..<count {
        let client = try TCPConnection(to: listen, timeout: 3)
        defer { client.close() }
        guard case let .line(line) = client.waitForLine(timeout: 3) else {
            throw HarnessError("client \(index) got no backend name")
        }
        try client.roundTrip(Array("payload \(index)\n".utf8))
        tally[String(line.split(separator: " ")[0]), default: 0] += 1
    }
    return tally
}

/// Waits until `show backends` on `admin` says every backend at `endpoints` has `health`.
func waitForHealth(_ admin: AdminSocket, _ endpoints: [TCPEndpoint], _ health: String, timeout: Double = 5) -> Bool {
    let wanted = Set(endpoints.map(\.description))
    return eventually(timeout: timeout * EndToEnd.sanitizerSlowdown, interval: 0.02) {
        let rows = (try? adminBackendRows(socketPath: admin.path)) ?? []
        return rows.filter { wanted.contains($0.address) && $0.health == health }.count == wanted.count
    }
}

/// The `tiers` of the first service in `show services json` on `admin`, as (tier name, share).
func tierShares(_ admin: AdminSocket) throws -> [String: Double] {
    let services = try admin.send("show services json").jsonObject()["services"] as? [[String: Any]]
    let tiers = services?.first?["tiers"] as? [[String: Any]] ?? []
    var shares: [String: Double] = [:]
    for tier in tiers {
        if let name = tier["tier"] as? String, let share = tier["share"] as? Double { shares[name] = share }
    }
    return shares
}

extension EndToEnd {
    /// Failover tiers: `priority: N` on backends (`backup: true` the last tier) and
    /// `failover-threshold`, through the real binary with health checks every 200 ms (a stopped backend refuses them at once; the long timeout keeps a busy machine from failing a healthy one).
    @Suite(.timeLimit(.minutes(2))) struct FailoverTiers {
        /// Backends named `NAME` on loopback address `host`, each listening on a port of its own.
        static func backends(_ names: [String], host: String) throws -> [ChaosBackend] {
            try names.map { try ChaosBackend(name: $0, host: host) }
        }

        static func yaml(listen: TCPEndpoint, threshold: String?, _ tiers: [(backends: [ChaosBackend], key: String)]) -> String {
            let lines = tiers.flatMap { tier in
                tier.backends.map { "          - {address: \"\($0.endpoint)\", \(tier.key)}" }
            }
            return """
                workers: 1
                services:
                  db:
                    listen: "\(listen)"
                    balance: round-robin
                    health: {interval: 200ms, timeout: 2s, rise: 1, fall: 1}
                \(threshold.map { "    failover-threshold: \($0)\n" } ?? "")    backends:
                \(lines.joined(separator: "\n"))
                """
        }

        @Test func clientsMoveTierByTierAsBackendsStopAndBackAsTheyReturn() throws {
            let first = try Self.backends(["first-a", "first-b"], host: "127.0.0.2")
            let second = try Self.backends(["second-a", "second-b"], host: "127.0.0.3")
            let backup = try Self.backends(["standby"], host: "127.0.0.4")
            defer { for backend in first + second + backup { backend.shutDown() } }
            let listen = try Sockets.freeEndpoint()
            let proxy = try ConfiguredProxy(yaml: Self.yaml(listen: listen, threshold: nil, [
                (first, "priority: 0"), (second, "priority: 1"), (backup, "backup: true"),
            ]), listen: [listen])
            try #require(waitForHealth(proxy.admin, (first + second + backup).map(\.endpoint), "up"))

            #expect(try tallyBackendNames(8, through: listen) == ["first-a": 4, "first-b": 4])
            #expect(try tierShares(proxy.admin) == ["0": 1, "1": 0, "backup": 0])

            first[0].stop()
            try #require(waitForHealth(proxy.admin, [first[0].endpoint], "down"))
            #expect(try tallyBackendNames(8, through: listen) == ["first-b": 8], "tier 0 keeps every client while any of it is up")

            first[1].stop()
            try #require(waitForHealth(proxy.admin, [first[1].endpoint], "down"))
            #expect(try tallyBackendNames(8, through: listen) == ["second-a": 4, "second-b": 4])
            #expect(try tierShares(proxy.admin) == ["0": 0, "1": 1, "backup": 0])

            for backend in second { backend.stop() }
            try #require(waitForHealth(proxy.admin, second.map(\.endpoint), "down"))
            #expect(try tallyBackendNames(8, through: listen) == ["standby": 8])

            try second[1].start()
            try #require(waitForHealth(proxy.admin, [second[1].endpoint], "up"))
            #expect(try tallyBackendNames(8, through: listen) == ["second-b": 8], "tier 1 is back before the backup")

            try first[0].start()
            try #require(waitForHealth(proxy.admin, [first[0].endpoint], "up"))
            #expect(try tallyBackendNames(8, through: listen) == ["first-a": 8], "tier 0 is back before tier 1")
            #expect(try tierShares(proxy.admin) == ["0": 1, "1": 0, "backup": 0])
        }

        @Test func belowTheThresholdClientsSpillToTheNextTierInProportion() throws {
            let first = try Self.backends(["first-a", "first-b", "first-c", "first-d"], host: "127.0.0.2")
            let second = try Self.backends(["second-a", "second-b"], host: "127.0.0.3")
            defer { for backend in first + second { backend.shutDown() } }
            let listen = try Sockets.freeEndpoint()
            let proxy = try ConfiguredProxy(yaml: Self.yaml(listen: listen, threshold: "100%", [
                (first, "priority: 0"), (second, "priority: 1"),
            ]), listen: [listen])
            try #require(waitForHealth(proxy.admin, (first + second).map(\.endpoint), "up"))

            #expect(try tallyBackendNames(16, through: listen) == ["first-a": 4, "first-b": 4, "first-c": 4, "first-d": 4])

            // Three quarters of tier 0 healthy against 100 %: it keeps 3/4 of the clients.
            first[0].stop()
            try #require(waitForHealth(proxy.admin, [first[0].endpoint], "down"))
            #expect(try tierShares(proxy.admin) == ["0": 0.75, "1": 0.25])
            #expect(try tallyBackendNames(16, through: listen) == ["first-b": 4, "first-c": 4, "first-d": 4, "second-a": 2, "second-b": 2])

            first[1].stop()
            try #require(waitForHealth(proxy.admin, [first[1].endpoint], "down"))
            #expect(try tallyBackendNames(16, through: listen) == ["first-c": 4, "first-d": 4, "second-a": 4, "second-b": 4])

            // As tier 0 recovers, its clients come back.
            for backend in first.prefix(2) { try backend.start() }
            try #require(waitForHealth(proxy.admin, first.prefix(2).map(\.endpoint), "up"))
            #expect(try tallyBackendNames(16, through: listen) == ["first-a": 4, "first-b": 4, "first-c": 4, "first-d": 4])
        }

        @Test func theCommandLineTakesPriorityAsABackendOptionAndTheServiceFlags() throws {
            let first = try ChaosBackend(name: "first", host: "127.0.0.2")
            let second = try ChaosBackend(name: "second", host: "127.0.0.3")
            defer { for backend in [first, second] { backend.shutDown() } }
            let proxy = try AdminProxy(healthChecks: true, options: [
                "--health-interval", "200ms", "--health-timeout", "2s", "--rise", "1", "--fall", "1",
                "--failover-threshold", "100%", "--on-down", "shutdown-sessions", "--on-up", "shutdown-backup-sessions",
                "--removal-grace", "5s",
            ], backends: ["\(first.endpoint)", "\(second.endpoint),priority=1"])
            try #require(waitForHealth(proxy.admin, [first.endpoint, second.endpoint], "up"))
            #expect(try tallyBackendNames(4, through: proxy.listen) == ["first": 4])

            first.stop()
            try #require(waitForHealth(proxy.admin, [first.endpoint], "down"))
            #expect(try tallyBackendNames(4, through: proxy.listen) == ["second": 4])
            let services = try proxy.admin.send("show services")
            #expect(services.body.last?.hasSuffix("0:0%,1:100%") == true, "\(services.body)")
        }
    }
}
