import Foundation
import Testing

extension EndToEnd {
    /// Active health checks: backends that stop, answer wrongly or never answer are marked down
    /// within their budget, take no clients while down, and come back after `rise` good checks.
    ///
    /// Transitions are read from the proxy's stderr (`HOST:PORT is down: …`, `HOST:PORT is up …`).
    @Suite struct HealthChecks {
        static let interval = 0.2
        static let timeout = 0.2
        static let fall = 3.0
        /// Checks run on a shared two-core machine: room for scheduling delays beyond the budget.
        static let slack = 1.0

        /// The options of every test here unless it says otherwise.
        static func healthOptions(timeout: String = "200ms") -> [String] {
            ["--health-interval", "200ms", "--health-timeout", timeout, "--rise", "2", "--fall", "3"]
        }

        /// Waits until every backend has passed a check, so each is confirmed up and a stop must
        /// take `fall` failures to mark it down, not just the first one.
        static func waitUntilEveryBackendPassedACheck(adminSocket: String, successPrefix: String) throws {
            var rows: [AdminBackendRow] = []
            let confirmed = eventually(timeout: 3, interval: 0.05) {
                rows = (try? adminShowBackends(socketPath: adminSocket)) ?? []
                return !rows.isEmpty && rows.allSatisfy { $0.health == "up" && $0.lastCheck.hasPrefix(successPrefix) }
            }
            try #require(confirmed, "backends not confirmed up: \(rows.map { "\($0.backend) \($0.health) '\($0.lastCheck)'" })")
        }

        @Test func stoppedBackendIsMarkedDownWithinBudgetTakesNoClientsAndReturnsAfterRiseChecks() throws {
            let backends = try ["a", "b", "c"].map { try TestBackend(.identify(name: $0)) }
            let adminSocket = SwitchyardProcess.temporaryAdminSocketPath()
            let proxy = try SwitchyardProcess(
                workers: 1, options: ["--balance", "round-robin", "--admin-socket", adminSocket] + Self.healthOptions(),
                backends: backends.map(\.endpoint.description))
            try Self.waitUntilEveryBackendPassedACheck(adminSocket: adminSocket, successPrefix: "connected")
            let stoppedAddress = backends[1].endpoint

            backends[1].stop()

            let budget = Self.interval * Self.fall + Self.timeout
            let downAfter = proxy.secondsUntilStandardError(contains: "\(stoppedAddress) is down", timeout: budget + Self.slack + 1)
            #expect(downAfter != nil && downAfter! <= budget + Self.slack,
                    "down after \(downAfter.map { "\($0) s" } ?? "never"); stderr:\n\(proxy.standardError)")
            let row = try adminShowBackends(socketPath: adminSocket).first { $0.backend == stoppedAddress.description }
            #expect(row?.health == "down")

            var reached: [String] = []
            for index in 0..<20 {
                let client = try IdentifiedClient(through: proxy.listen)
                try client.roundTrip("client \(index) while b is down")
                reached.append(client.backendName)
            }
            #expect(!reached.contains("b"))
            #expect(tally(reached) == ["a": 10, "c": 10], "\(reached)")

            let revived = try TestBackend(.identify(name: "b"), at: stoppedAddress)
            // rise = 2 checks one interval apart; the first may come up to one interval after the restart.
            let upAfter = proxy.secondsUntilStandardError(contains: "\(stoppedAddress) is up", timeout: 2 * Self.interval + Self.slack + 1)
            #expect(upAfter != nil && upAfter! <= 2 * Self.interval + Self.slack,
                    "up after \(upAfter.map { "\($0) s" } ?? "never"); stderr:\n\(proxy.standardError)")
            #expect(proxy.standardError.contains("\(stoppedAddress) is up (2 checks)"))
            let afterRevival = try proxy.backendNamesOfSequentialClients(6)
            #expect(tally(afterRevival)["b"] == 2, "\(afterRevival)")
            #expect(revived.acceptedCount >= 2)
        }

        @Test func backendAnsweringTheWrongReplyIsMarkedDownAndEveryClientGoesToTheRightOne() throws {
            let right = try TestBackend(.identify(name: "+PONG"))
            let wrong = try TestBackend(.identify(name: "-ERR wrong"))
            let proxy = try SwitchyardProcess(
                workers: 1,
                options: ["--balance", "round-robin", "--health-send", "PING\\r\\n", "--health-expect", "+PONG"]
                    + Self.healthOptions(),
                backends: [wrong.endpoint.description, right.endpoint.description])

            // A backend starts "up, unconfirmed", so its first failed check takes it down.
            let downAfter = proxy.secondsUntilStandardError(contains: "\(wrong.endpoint) is down", timeout: 3)
            try #require(downAfter != nil, "wrong backend never marked down; stderr:\n\(proxy.standardError)")
            let downLine = proxy.standardError.split(separator: "\n").first { $0.contains("\(wrong.endpoint) is down") }
            #expect(downLine?.contains("-ERR wrong") == true, "the down line should show what came back: \(downLine ?? "")")

            var reached: [String] = []
            for index in 0..<20 {
                let client = try IdentifiedClient(through: proxy.listen)
                try client.roundTrip("client \(index)")
                reached.append(client.backendName)
            }

            #expect(reached == Array(repeating: "+PONG", count: 20), "\(tally(reached))")
            #expect(!proxy.standardError.contains("\(right.endpoint) is down"), "stderr:\n\(proxy.standardError)")
        }

        /// Timeout 1 s here (interval still 200 ms): a checker that waited on the silent backend's
        /// probes would need at least 3 s to see `fall` failures of the stopped one, far outside
        /// the interval × fall + slack allowed.
        @Test func silentBackendFailsOnTimeoutWithoutDelayingAnotherBackendGoingDown() throws {
            let silent = try TestBackend(.silent)
            let doomed = try TestBackend(.identify(name: "+PONG doomed"))
            let steady = try TestBackend(.identify(name: "+PONG steady"))
            let adminSocket = SwitchyardProcess.temporaryAdminSocketPath()
            let proxy = try SwitchyardProcess(
                workers: 1,
                options: ["--admin-socket", adminSocket, "--health-send", "PING\\r\\n", "--health-expect", "+PONG"]
                    + Self.healthOptions(timeout: "1s"),
                backends: [silent.endpoint.description, doomed.endpoint.description, steady.endpoint.description])

            let silentDownAfter = proxy.secondsUntilStandardError(contains: "\(silent.endpoint) is down: timeout", timeout: 4)
            try #require(silentDownAfter != nil, "silent backend not marked down on timeout; stderr:\n\(proxy.standardError)")
            #expect(silent.acceptedCount >= 1, "the silent backend was never even connected to")
            var confirmed: [AdminBackendRow] = []
            try #require(eventually(timeout: 3, interval: 0.05) {
                confirmed = ((try? adminShowBackends(socketPath: adminSocket)) ?? []).filter {
                    $0.backend != silent.endpoint.description && $0.lastCheck.hasPrefix("expected reply")
                }
                return confirmed.count == 2
            }, "doomed and steady never passed a check; stderr:\n\(proxy.standardError)")

            doomed.stop()

            // Refused connects fail at once, so three checks one interval apart are enough.
            let budget = Self.interval * Self.fall + 0.6
            let downAfter = proxy.secondsUntilStandardError(contains: "\(doomed.endpoint) is down", timeout: 4)
            #expect(downAfter != nil && downAfter! <= budget,
                    "stopped backend down after \(downAfter.map { "\($0) s" } ?? "never"), budget \(budget) s; stderr:\n\(proxy.standardError)")
            let reached = try proxy.backendNamesOfSequentialClients(6)
            #expect(reached == Array(repeating: "+PONG steady", count: 6))
        }

        @Test func allBackendsDownClosesClientsPromptlyAndWarnsOnlyOnce() throws {
            let dead = try (0..<2).map { _ in try Sockets.freeEndpoint() }
            let proxy = try SwitchyardProcess(
                workers: 1, options: ["--connect-timeout", "1s"] + Self.healthOptions(),
                backends: dead.map(\.description))
            let warning = "all backends are down"
            try #require(proxy.secondsUntilStandardError(contains: warning, timeout: 3) != nil,
                         "no all-down warning; stderr:\n\(proxy.standardError)")

            for index in 0..<20 {
                let client = try TCPConnection(to: proxy.listen, timeout: 2)
                try? client.send("client \(index)")  // May fail once the proxy closed; the read decides.
                let outcome = client.readToEnd(timeout: 2)
                #expect(outcome.end.isClosed, "client \(index): \(outcome.end)")
                #expect(outcome.elapsed < 1, "client \(index) closed after \(outcome.elapsed) s")
                #expect(outcome.checksum.byteCount == 0)
            }
            // Two more check rounds fail meanwhile; neither may repeat the warning.
            usleep(UInt32(2 * Self.interval * 1_000_000))

            #expect(proxy.standardErrorCount(of: warning) == 1, "stderr:\n\(proxy.standardError)")
            #expect(proxy.isRunning)
        }
    }
}
