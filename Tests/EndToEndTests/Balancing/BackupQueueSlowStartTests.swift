import Foundation
import Glibc
import Testing

/// What a client that may be waiting in the queue has seen so far.
enum WaitingClientState: Equatable {
    case nothing
    case line(String)
    case closed
}

extension TCPConnection {
    /// Waits up to `timeout` for the backend's name line: `.nothing` if no byte came, `.closed`
    /// on EOF or reset before a whole line.
    func waitForLine(timeout: Double) -> WaitingClientState {
        var line: [UInt8] = []
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            let remaining = deadline.timeIntervalSinceNow
            if remaining <= 0 { return .nothing }
            var descriptor = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ready = poll(&descriptor, 1, Int32(max(remaining * 1000, 1)))
            if ready == 0 { return line.isEmpty ? .nothing : .line(String(decoding: line, as: UTF8.self)) }
            if ready < 0 { if errno == EINTR { continue } else { return .closed } }
            var byte: UInt8 = 0
            let n = recv(fd, &byte, 1, 0)
            if n <= 0 { return .closed }
            if byte == UInt8(ascii: "\n") { return .line(String(decoding: line, as: UTF8.self)) }
            line.append(byte)
        }
    }
}

extension EndToEnd {
    /// Issue 13: `backup`, `max-connections` with the service queue (`queue-size`,
    /// `queue-timeout`), and `slow-start`.
    @Suite(.timeLimit(.minutes(2))) struct BackupQueueSlowStart {
        @Test func backupsTakeOverWhenEveryPrimaryIsStoppedAndHandBackWhenOneReturns() throws {
            let primaries = try ["p1", "p2"].map { try ChaosBackend(name: $0) }
            let backup = try ChaosBackend(name: "standby")
            defer { for backend in primaries + [backup] { backend.shutDown() } }
            let listen = try Sockets.freeEndpoint()
            let proxy = try ConfiguredProxy(yaml: """
                workers: 2
                services:
                  db:
                    listen: "\(listen)"
                    balance: least-conn
                    health: {interval: 100ms, timeout: 100ms, rise: 1, fall: 1}
                    backends:
                      - "\(primaries[0].endpoint)"
                      - "\(primaries[1].endpoint)"
                      - {address: "\(backup.endpoint)", backup: true}
                """, listen: [listen])

            func names(_ count: Int) throws -> [String: Int] {
                var tally: [String: Int] = [:]
                for index in 0..<count {
                    let client = try TCPConnection(to: listen, timeout: 3)
                    guard case let .line(line) = client.waitForLine(timeout: 3) else {
                        throw HarnessError("client \(index) got no backend name")
                    }
                    try client.roundTrip(Array("payload \(index)\n".utf8))
                    client.close()
                    tally[String(line.split(separator: " ")[0]), default: 0] += 1
                }
                return tally
            }

            let before = try names(20)
            #expect(before["standby"] == nil && before.values.reduce(0, +) == 20, "a backup took clients while primaries were up: \(before)")

            for primary in primaries { primary.stop() }
            try #require(eventually(timeout: 5, interval: 0.05) {
                (try? adminBackendRows(socketPath: proxy.admin.path))?.filter { $0.health == "down" }.count == 2
            }, "the stopped primaries were not marked down")
            let during = try names(20)
            #expect(during == ["standby": 20], "with every primary down, the backup must take every client: \(during)")

            try primaries[1].start()
            try #require(eventually(timeout: 5, interval: 0.05) {
                (try? adminBackendRows(socketPath: proxy.admin.path))?.first { $0.address == primaries[1].endpoint.description }?.health == "up"
            }, "the restarted primary did not come back up")
            let after = try names(20)
            #expect(after == ["p2": 20], "once a primary is back, the backup must hand every new client back: \(after)")
            let rows = try adminBackendRows(socketPath: proxy.admin.path)
            #expect(rows.count == 3)
        }

        @Test func clientsPastMaxConnectionsWaitInArrivalOrderAndThoseOverTheQueueOrItsTimeoutAreClosedByCause() throws {
            let a = try TestBackend(.identify(name: "A")), b = try TestBackend(.identify(name: "B"))
            let listen = try Sockets.freeEndpoint(), metrics = try Sockets.freeEndpoint()
            let proxy = try ConfiguredProxy(yaml: """
                workers: 2
                metrics: "\(metrics)"
                services:
                  db:
                    listen: "\(listen)"
                    health: off
                    queue-size: 3
                    queue-timeout: 3s
                    backends:
                      - {address: "\(a.endpoint)", max-connections: 2}
                      - {address: "\(b.endpoint)", max-connections: 2}
                """, listen: [listen])
            try #require(eventually(timeout: 3, interval: 0.05) {
                (try? adminBackendRows(socketPath: proxy.admin.path))?.allSatisfy { $0.active == 0 } ?? false
            })

            let held = try (0..<4).map { _ in try IdentifiedClient(through: listen) }
            #expect(tally(held.map(\.backendName)) == ["A": 2, "B": 2], "\(held.map(\.backendName))")

            // Three clients queue, one after the other; the fourth finds the queue full.
            var waiting: [TCPConnection] = []
            for index in 0..<3 {
                let client = try TCPConnection(to: listen, timeout: 3)
                #expect(client.waitForLine(timeout: 0.3) == .nothing, "waiting client \(index) was served past max-connections")
                waiting.append(client)
            }
            let overflow = try TCPConnection(to: listen, timeout: 3)
            #expect(overflow.waitForLine(timeout: 3) == .closed, "a client over queue-size must be closed at once")
            #expect(try proxy.admin.send("show services json").jsonObject()["services"].flatMap { ($0 as? [[String: Any]])?.first?["queued"] as? Int } == 3)

            // Each slot that frees goes to the longest-waiting client, and only to it.
            held[0].close()
            let first = waiting[0].waitForLine(timeout: 3)
            #expect(first == .line(held[0].backendName), "the first waiting client must get the freed slot of \(held[0].backendName)")
            #expect(waiting[1].waitForLine(timeout: 0.2) == .nothing && waiting[2].waitForLine(timeout: 0.01) == .nothing)
            try waiting[0].roundTrip(Array(repeating: UInt8(ascii: "x"), count: 100_000), timeout: 5)
            held[3].close()
            #expect(waiting[1].waitForLine(timeout: 3) == .line(held[3].backendName), "the second waiting client must get the next slot")
            try waiting[1].roundTrip(Array("second waiter\n".utf8))

            // The third waits out its queue-timeout and is closed; the others carry on.
            #expect(waiting[2].waitForLine(timeout: 8) == .closed, "a client past queue-timeout must be closed")
            for (index, client) in [held[1], held[2]].enumerated() {
                #expect(throws: Never.self, "held client \(index)") { try client.roundTrip("still relayed \(index)") }
            }

            // Workers publish their figures at each tick: wait for the last close to be counted.
            let labels = "service=\"db\",listener=\"\(listen)\""
            var text = ""
            _ = eventually(timeout: 3, interval: 0.1) {
                text = (try? httpGet(metrics, "/metrics")) ?? ""
                return metricValue(text, "switchyard_connections_closed_total{\(labels),cause=\"queue_timeout\"}") == 1
            }
            #expect(metricValue(text, "switchyard_connections_closed_total{\(labels),cause=\"queue_full\"}") == 1, "\(text.split(separator: "\n").filter { $0.contains("closed_total") })")
            #expect(metricValue(text, "switchyard_connections_closed_total{\(labels),cause=\"queue_timeout\"}") == 1)
            #expect(metricValue(text, "switchyard_queued_total{\(labels)}") == 3)
            let rows = try adminBackendRows(socketPath: proxy.admin.path)
            #expect(rows.allSatisfy { $0.active <= 2 }, "\(rows)")
        }

        @Test func aBackendBroughtBackUnderSlowStartGetsARisingShareOverItsWindow() throws {
            let a = try TestBackend(.identify(name: "A")), b = try TestBackend(.identify(name: "B"))
            let listen = try Sockets.freeEndpoint()
            let proxy = try ConfiguredProxy(yaml: """
                workers: 1
                services:
                  web:
                    listen: "\(listen)"
                    balance: weighted
                    health: off
                    slow-start: 4s
                    backends: ["\(a.endpoint)", "\(b.endpoint)"]
                """, listen: [listen])
            let reply = try proxy.admin.send("maint web/\(b.endpoint)")
            try #require(reply.isOK, "\(reply)")
            #expect(try IdentifiedClients.tally(10, through: listen) == ["A": 10])

            // Back to ready: B ramps over 4 s. Count where clients go, second by second.
            let ready = try proxy.admin.send("ready web/\(b.endpoint)")
            try #require(ready.isOK, "\(ready)")
            let start = Date()
            var perSecond: [[String: Int]] = Array(repeating: [:], count: 6)
            while Date().timeIntervalSince(start) < 6 {
                let second = min(Int(Date().timeIntervalSince(start)), 5)
                let client = try IdentifiedClient(through: listen)
                perSecond[second][client.backendName, default: 0] += 1
                client.close()
                usleep(5_000)
            }
            let shares = perSecond.map { tally -> Double in
                let total = tally.values.reduce(0, +)
                return total == 0 ? 0 : Double(tally["B"] ?? 0) / Double(total)
            }
            let report = "B's share per second: \(shares.map { String(format: "%.2f", $0) }), counts \(perSecond)"
            #expect(perSecond.allSatisfy { $0.values.reduce(0, +) >= 10 }, "too few clients to measure: \(report)")
            #expect(shares[0] > 0 && shares[0] < 0.25, "B must start from a small share: \(report)")
            #expect(shares[1] < shares[3], "B's share must rise over the window: \(report)")
            #expect(shares[5] > 0.4 && shares[5] < 0.6, "after the window B must have its full (equal) share: \(report)")
        }
    }
}
