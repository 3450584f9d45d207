import Foundation
import Testing

extension EndToEnd {
    /// Admin commands that change backends (drain, ready, maint, weight, add, remove, shutdown),
    /// sent to the real binary's admin socket and checked by where clients land: every backend is
    /// `.identify`, so each client reads the name of the backend it reached.
    @Suite struct AdminBackendControl {
        @Test func drainMovesNewConnectionsAwayWhileOpenOnesKeepEchoingAndWaitReportsWhenTheyEnd() throws {
            let a = try TestBackend(.identify(name: "A"))
            let b = try TestBackend(.identify(name: "B"))
            let proxy = try AdminProxy(backends: [a.endpoint.description, b.endpoint.description])
            let nameA = a.endpoint.description

            let held = try IdentifiedClients.hold(3, on: "A", through: proxy.listen)
            let drain = try proxy.admin.send("drain \(nameA)")
            #expect(drain.isOK, "drain: \(drain)")

            let reached = try IdentifiedClients.tally(10, through: proxy.listen)
            #expect(reached == ["B": 10], "new connections after drain reached \(reached)")
            for (index, connection) in held.enumerated() {
                try connection.roundTrip(Array("held \(index) after drain".utf8), timeout: 2)
            }

            // The worker updates its counters after the connects complete: allow it a moment.
            var rowA: [String: Any] = [:]
            let reported = eventually(timeout: 2, interval: 0.05) {
                rowA = (try? proxy.admin.backends()[nameA]) ?? [:]
                return rowA["state"] as? String == "drain" && rowA["active"] as? Int == 3
            }
            #expect(reported, "show backends json row for A: \(rowA)")

            // Connections are open: a short wait must time out, near its timeout.
            let waitStart = Date()
            let shortWait = try proxy.admin.send("wait \(nameA) 300ms")
            let waited = Date().timeIntervalSince(waitStart)
            #expect(shortWait.isError, "wait with 3 open connections: \(shortWait)")
            #expect(waited >= 0.25 && waited <= 1.0, "wait 300ms replied after \(waited) s")

            // A longer wait, with a command pipelined behind it, answers OK soon after the last
            // held connection closes. Until then it holds back that connection's replies only.
            let waiter = try proxy.admin.connect()
            try waiter.send(Array("wait \(nameA) 10s\nshow stats\n".utf8))
            #expect(throws: (any Error).self, "a reply arrived while A still had open connections") {
                try waiter.readReply(timeout: 0.3)
            }
            let otherStart = Date()
            let other = try proxy.admin.send("show stats")
            let otherElapsed = Date().timeIntervalSince(otherStart)
            #expect(other.isOK && otherElapsed < 1, "another client during the wait: \(other) after \(otherElapsed) s")
            for connection in held { connection.close() }
            let closedAt = Date()
            let longWait = try waiter.readReply(timeout: 5)
            let afterClose = Date().timeIntervalSince(closedAt)
            #expect(longWait.isOK, "wait after the connections closed: \(longWait)")
            #expect(afterClose < 2, "wait answered \(afterClose) s after the connections closed")
            let pipelined = try waiter.readReply(timeout: 2)
            #expect(pipelined.isOK && pipelined.body.contains { $0.hasPrefix("uptime") }, "the command after wait: \(pipelined)")

            let ready = try proxy.admin.send("ready \(nameA)")
            #expect(ready.isOK, "ready: \(ready)")
            let afterReady = try IdentifiedClients.tally(4, through: proxy.listen)
            #expect(afterReady == ["A": 2, "B": 2], "round robin after ready reached \(afterReady)")
        }

        @Test func drainIsInEffectForEveryConnectionAcceptedAfterItsReplyWithTwoWorkers() throws {
            let a = try TestBackend(.identify(name: "A"))
            let b = try TestBackend(.identify(name: "B"))
            let proxy = try AdminProxy(workers: 2, backends: [a.endpoint.description, b.endpoint.description])
            let nameA = a.endpoint.description

            // Echo traffic on four connections to B keeps the workers busy with completions, so a
            // worker may be in the middle of a batch when the drain is published.
            let busy = try IdentifiedClients.hold(4, on: "B", through: proxy.listen)
            let stop = StopSignal()
            let traffic = busy.enumerated().map { index, connection in
                BackgroundTask {
                    var generator = DeterministicBytes(seed: UInt64(index + 1))
                    while !stop.isRaised {
                        try connection.roundTrip(generator.next(16 << 10), timeout: 5)
                    }
                }
            }
            defer {
                stop.raise()
                for task in traffic { _ = task.join(timeout: 6) }
            }

            // Three rounds, so that a worker still on the previous snapshot has several chances to show.
            for round in 0..<3 {
                let ready = try proxy.admin.send("ready \(nameA)")
                #expect(ready.isOK, "round \(round) ready: \(ready)")
                let beforeDrain = try IdentifiedClients.tally(6, through: proxy.listen)
                #expect(beforeDrain["A", default: 0] > 0, "round \(round): A took nothing while ready: \(beforeDrain)")

                let drain = try proxy.admin.send("drain \(nameA)")
                #expect(drain.isOK, "round \(round) drain: \(drain)")
                // Fifty clients, ten at a time, all connecting after the OK arrived.
                let (tally, failures) = IdentifiedClients.tallyInParallel(50, parallelism: 10, through: proxy.listen)
                #expect(failures.isEmpty, "round \(round): \(failures)")
                #expect(tally == ["B": 50], "round \(round): right after drain's OK, connections reached \(tally)")
            }
            stop.raise()
            for (index, task) in traffic.enumerated() {
                #expect(task.join(timeout: 6) == nil, "background traffic on B connection \(index)")
            }
        }

        @Test(arguments: RelayMode.allCases)
        func shutdownClosesOnlyThatBackendsClientsWithinOneSecond(relay: RelayMode) throws {
            try checkShutdownClosesOnlyThatBackendsClients(relay: relay, workers: 1, clientsPerBackend: 2)
        }

        /// Both workers may be idle in their rings when the command arrives; each must still
        /// close its own connections to the backend.
        @Test func shutdownClosesThatBackendsClientsOnEveryWorker() throws {
            try checkShutdownClosesOnlyThatBackendsClients(relay: .auto, workers: 2, clientsPerBackend: 6)
        }

        private func checkShutdownClosesOnlyThatBackendsClients(relay: RelayMode, workers: Int, clientsPerBackend: Int) throws {
            let a = try TestBackend(.identify(name: "A"))
            let b = try TestBackend(.identify(name: "B"))
            let proxy = try AdminProxy(
                relay: relay, workers: workers, backends: [a.endpoint.description, b.endpoint.description])

            let onA = try IdentifiedClients.hold(clientsPerBackend, on: "A", through: proxy.listen)
            let onB = try IdentifiedClients.hold(clientsPerBackend, on: "B", through: proxy.listen)
            // Traffic first, so that the connections are fully relaying when the command comes.
            for (index, connection) in (onA + onB).enumerated() {
                try connection.roundTrip(Array("before shutdown \(index)".utf8), timeout: 2)
            }
            let shutdown = try proxy.admin.send("shutdown \(a.endpoint.description)")
            #expect(shutdown.isOK, "shutdown: \(shutdown)")

            for (index, connection) in onA.enumerated() {
                let outcome = connection.readToEnd(timeout: 1)
                #expect(outcome.end.isClosed, "client \(index) on A after shutdown: \(outcome.end) after \(outcome.elapsed) s")
                #expect(outcome.checksum.byteCount == 0, "client \(index) on A received stray bytes")
            }
            for (index, connection) in onB.enumerated() {
                try connection.roundTrip(Array("B client \(index) after shutdown of A".utf8), timeout: 2)
            }
            let wait = try proxy.admin.send("wait \(a.endpoint.description) 2s")
            #expect(wait.isOK, "wait after shutdown: \(wait)")

            // Shutdown is not a state: A takes new clients and keeps them, until the next shutdown.
            let later = try IdentifiedClients.hold(clientsPerBackend, on: "A", through: proxy.listen)
            usleep(200_000)
            for (index, connection) in later.enumerated() {
                try connection.roundTrip(Array("A client \(index) after shutdown".utf8), timeout: 2)
            }
            let again = try proxy.admin.send("shutdown \(a.endpoint.description)")
            #expect(again.isOK, "second shutdown: \(again)")
            for (index, connection) in later.enumerated() {
                let outcome = connection.readToEnd(timeout: 1)
                #expect(outcome.end.isClosed, "later client \(index) on A after the second shutdown: \(outcome.end)")
            }
            for (index, connection) in onB.enumerated() {
                try connection.roundTrip(Array("B client \(index) after the second shutdown".utf8), timeout: 2)
            }
            #expect(proxy.process.isRunning, "stderr:\n\(proxy.process.standardError)")
        }

        @Test func weightChangesTheSplitOfNewConnectionsUnderWeightedBalance() throws {
            let a = try TestBackend(.identify(name: "A"))
            let b = try TestBackend(.identify(name: "B"))
            let proxy = try AdminProxy(
                options: ["--balance", "weighted"],
                backends: [a.endpoint.description + ",weight=1", b.endpoint.description + ",weight=1"])

            let even = try IdentifiedClients.tally(20, through: proxy.listen)
            #expect(even == ["A": 10, "B": 10], "weights 1 and 1: \(even)")

            let weight = try proxy.admin.send("weight \(b.endpoint.description) 3")
            #expect(weight.isOK, "weight: \(weight)")
            let skewed = try IdentifiedClients.tally(40, through: proxy.listen)
            #expect(skewed == ["A": 10, "B": 30], "weights 1 and 3: \(skewed)")
            let rowB = try proxy.admin.backends()[b.endpoint.description]
            #expect(rowB?["weight"] as? Int == 3, "show backends json row for B: \(String(describing: rowB))")

            let zero = try proxy.admin.send("weight \(a.endpoint.description) 0")
            #expect(zero.isOK, "weight 0: \(zero)")
            let onlyB = try IdentifiedClients.tally(10, through: proxy.listen)
            #expect(onlyB == ["B": 10], "weight 0 for A: \(onlyB)")
        }

        @Test func addedBackendTakesTrafficAndIsRemovableOnlyOnceItsConnectionsEnded() throws {
            let a = try TestBackend(.identify(name: "A"))
            let c = try TestBackend(.identify(name: "C"))
            let proxy = try AdminProxy(backends: [a.endpoint.description])
            let nameC = c.endpoint.description

            let add = try proxy.admin.send("add \(nameC)")
            #expect(add.isOK, "add: \(add)")
            let afterAdd = try IdentifiedClients.tally(10, through: proxy.listen)
            #expect(afterAdd == ["A": 5, "C": 5], "round robin after add: \(afterAdd)")

            let held = try IdentifiedClients.hold(1, on: "C", through: proxy.listen)
            let refused = try proxy.admin.send("remove \(nameC)")
            #expect(refused.isError, "remove with an open connection: \(refused)")
            let message = refused.errorMessage ?? ""
            #expect(message.contains("drain") || message.contains("wait"), "the refusal does not say what to do: \(refused)")
            try held[0].roundTrip(Array("still served after a refused remove".utf8), timeout: 2)

            held[0].close()
            // The worker counts the connection closed once it has seen the client's FIN.
            var removal = refused
            _ = eventually(timeout: 3, interval: 0.05) {
                removal = (try? proxy.admin.send("remove \(nameC)")) ?? removal
                return removal.isOK
            }
            #expect(removal.isOK, "remove after the client closed: \(removal)")

            let acceptedByC = c.acceptedCount
            let afterRemove = try IdentifiedClients.tally(10, through: proxy.listen)
            #expect(afterRemove == ["A": 10], "after remove: \(afterRemove)")
            #expect(c.acceptedCount == acceptedByC, "the removed backend still accepted connections")
            #expect(try proxy.admin.backends()[nameC] == nil, "show backends still lists the removed backend")

            let unknown = try proxy.admin.send("remove 127.0.0.1:1")
            #expect(unknown.isError, "remove of an unknown backend: \(unknown)")
        }

        /// Removing a backend before others in the list must not shift counters or commands
        /// onto its neighbours.
        @Test func removingAnEarlierBackendLeavesCountsAndCommandsOnTheRightBackends() throws {
            let a = try TestBackend(.identify(name: "A"))
            let b = try TestBackend(.identify(name: "B"))
            let c = try TestBackend(.identify(name: "C"))
            let proxy = try AdminProxy(backends: [a.endpoint.description, b.endpoint.description])
            let (nameA, nameB, nameC) = (a.endpoint.description, b.endpoint.description, c.endpoint.description)

            #expect(try proxy.admin.send("add \(nameC)").isOK)
            #expect(try proxy.admin.send("drain \(nameA)").isOK)
            // The readiness probe may have reached A; its close is counted a moment later.
            var removal = try proxy.admin.send("remove \(nameA)")
            _ = eventually(timeout: 3, interval: 0.05) {
                if !removal.isOK { removal = (try? proxy.admin.send("remove \(nameA)")) ?? removal }
                return removal.isOK
            }
            #expect(removal.isOK, "remove of the drained first backend: \(removal)")

            let onC = try IdentifiedClients.hold(2, on: "C", through: proxy.listen)
            var rows: [String: [String: Any]] = [:]
            let counted = eventually(timeout: 2, interval: 0.05) {
                rows = (try? proxy.admin.backends()) ?? [:]
                return rows[nameC]?["active"] as? Int == 2 && rows[nameB]?["active"] as? Int == 0
            }
            #expect(counted, "with 2 clients on C and none on B, show backends json says: \(rows)")
            let refused = try proxy.admin.send("remove \(nameC)")
            #expect(refused.isError, "remove of C with 2 open connections: \(refused)")

            #expect(try proxy.admin.send("drain \(nameC)").isOK)
            let afterDrain = try IdentifiedClients.tally(6, through: proxy.listen)
            #expect(afterDrain == ["B": 6], "after drain of C: \(afterDrain)")
            let shutdown = try proxy.admin.send("shutdown \(nameC)")
            #expect(shutdown.isOK, "shutdown of C: \(shutdown)")
            for (index, connection) in onC.enumerated() {
                let outcome = connection.readToEnd(timeout: 1)
                #expect(outcome.end.isClosed, "client \(index) on C after shutdown: \(outcome.end)")
            }
        }

        @Test func maintTakesNoNewConnectionsAndShowBackendsSaysMaint() throws {
            let a = try TestBackend(.identify(name: "A"))
            let b = try TestBackend(.identify(name: "B"))
            let proxy = try AdminProxy(backends: [a.endpoint.description, b.endpoint.description])

            let maint = try proxy.admin.send("maint \(b.endpoint.description)")
            #expect(maint.isOK, "maint: \(maint)")
            let reached = try IdentifiedClients.tally(10, through: proxy.listen)
            #expect(reached == ["A": 10], "after maint of B: \(reached)")

            let table = try proxy.admin.send("show backends")
            #expect(table.isOK, "show backends: \(table)")
            let rowB = table.body.first { $0.contains(b.endpoint.description) } ?? ""
            #expect(rowB.split(separator: " ").contains("maint"), "B's row in show backends: \(rowB.debugDescription)")
            let rowA = table.body.first { $0.contains(a.endpoint.description) } ?? ""
            #expect(rowA.split(separator: " ").contains("ready"), "A's row in show backends: \(rowA.debugDescription)")
        }
    }
}
