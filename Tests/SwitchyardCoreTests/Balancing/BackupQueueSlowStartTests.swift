import SwitchyardCore
import Testing

/// Issue 13's pure parts: the queue's order and hand-over, the connection limit's reservation,
/// backups in the snapshot, the slow-start ramp, and their keys.
@Suite struct ConnectionQueueTests {
    static func entry(_ worker: Int, _ slot: UInt32) -> ConnectionQueue.Entry {
        ConnectionQueue.Entry(worker: worker, slot: slot, generation: 7)
    }

    @Test func grantsGoToWaitersInArrivalOrderAcrossWorkers() {
        let queue = ConnectionQueue()
        #expect(queue.enqueue(Self.entry(0, 1), limit: 3))
        #expect(queue.enqueue(Self.entry(1, 2), limit: 3))
        #expect(queue.enqueue(Self.entry(0, 3), limit: 3))
        #expect(!queue.enqueue(Self.entry(1, 4), limit: 3), "a fourth client must find the queue full")
        #expect(queue.count == 3)

        #expect(queue.grantFirst(backendID: 5)?.entry == Self.entry(0, 1))
        #expect(queue.grantFirst(backendID: 6)?.entry == Self.entry(1, 2))
        #expect(queue.count == 1 && queue.pendingGrants == 2)
        #expect(queue.takeGrants(worker: 1) == [ConnectionQueue.Grant(entry: Self.entry(1, 2), backendID: 6)])
        #expect(queue.takeGrants(worker: 1).isEmpty)
        #expect(queue.takeGrants(worker: 0).map(\.backendID) == [5])
        #expect(queue.pendingGrants == 0)
        #expect(queue.grantFirst(backendID: 5)?.entry == Self.entry(0, 3))
        #expect(queue.grantFirst(backendID: 5) == nil, "nobody waits: the slot goes back to the backend")
    }

    @Test func aWaiterThatLeavesIsSkippedAndOneAlreadyGrantedCannotLeave() {
        let queue = ConnectionQueue()
        for slot in 0..<4 { #expect(queue.enqueue(Self.entry(0, UInt32(slot)), limit: 10)) }
        #expect(queue.remove(Self.entry(0, 1)))
        #expect(!queue.remove(Self.entry(0, 1)))
        #expect(queue.grantFirst(backendID: 1)?.entry.slot == 0)
        #expect(!queue.remove(Self.entry(0, 0)), "a granted client is no longer waiting: its grant is on its way")
        #expect(queue.grantFirst(backendID: 1)?.entry.slot == 2)
        #expect(queue.grantFirst(backendID: 1)?.entry.slot == 3)
        #expect(queue.count == 0)
    }

    @Test func aLongQueueStaysInOrderThroughCompaction() {
        let queue = ConnectionQueue()
        var next: UInt32 = 0, expected: UInt32 = 0
        for round in 0..<50 {
            for _ in 0..<(round % 7 + 1) {
                #expect(queue.enqueue(Self.entry(0, next), limit: 1000))
                next += 1
            }
            for _ in 0..<(round % 5) {
                guard let grant = queue.grantFirst(backendID: 0) else { break }
                #expect(grant.entry.slot == expected)
                expected += 1
            }
        }
        while let grant = queue.grantFirst(backendID: 0) {
            #expect(grant.entry.slot == expected)
            expected += 1
        }
        #expect(expected == next)
    }

    @Test func reserveNeverPassesTheLimit() {
        let stats = BackendStats()
        #expect(stats.reserve(limit: 2) && stats.reserve(limit: 2))
        #expect(!stats.reserve(limit: 2))
        #expect(stats.active.load(ordering: .relaxed) == 2)
        stats.active.subtract(1, ordering: .relaxed)
        #expect(stats.reserve(limit: 2))
    }
}

@Suite struct BackupAndSlowStartSnapshotTests {
    static func backend(_ id: Int, _ port: UInt16, backup: Bool = false, up: Bool = true) -> BackendState {
        var spec = BackendSpec(endpoint: try! Endpoint(parsing: "10.0.0.\(id + 1):\(port)"))
        spec.backup = backup
        return BackendState(id: id, spec: spec, health: HealthVerdict(isUp: up, lastCheck: ""))
    }

    static func picks(_ balancer: any Balancer, _ count: Int) -> [Int?] {
        var balancer = balancer
        return (0..<count).map { _ in balancer.pick(clientKey: 0, excluding: TriedBackends()) }
    }

    @Test func thePrimaryBalancerNeverOffersABackupAndTheBackupOneOnlyBackups() {
        let snapshot = BackendSnapshot(version: 1, backends: [
            Self.backend(0, 80), Self.backend(1, 80), Self.backend(2, 80, backup: true), Self.backend(3, 80, backup: true),
        ], algorithm: .roundRobin)
        #expect(Set(Self.picks(snapshot.balancer, 8)) == [0, 1])
        #expect(Set(Self.picks(snapshot.backupBalancer!, 8)) == [2, 3])
        #expect(snapshot.anyPrimarySelectable)

        let primariesDown = BackendSnapshot(version: 2, backends: [
            Self.backend(0, 80, up: false), Self.backend(1, 80, up: false), Self.backend(2, 80, backup: true),
        ], algorithm: .leastConnections)
        #expect(!primariesDown.anyPrimarySelectable)
        #expect(Self.picks(primariesDown.balancer, 2) == [nil, nil])
        #expect(Self.picks(primariesDown.backupBalancer!, 2) == [2, 2])
        #expect(BackendSnapshot(version: 3, backends: [Self.backend(0, 80)], algorithm: .weighted).backupBalancer == nil)
    }

    @Test func aRampingBackendStartsFromASixteenthAndReachesItsFullShare() throws {
        let start = ContinuousClock.now
        var ramping = Self.backend(1, 80)
        ramping.rampStartedAt = start
        let backends = [Self.backend(0, 80), ramping]
        let settings = ServiceSettings([try ServiceKey.named("slow-start").parse("10s")])
        func share(at offset: Duration) -> Double {
            let snapshot = BackendSnapshot(version: 1, backends: backends, algorithm: .weighted, settings: settings, now: start + offset)
            let picks = Self.picks(snapshot.balancer, 3200)
            return Double(picks.filter { $0 == 1 }.count) / Double(picks.count)
        }
        let shares = [Duration.zero, .seconds(2), .seconds(5), .seconds(9), .seconds(11)].map(share)
        #expect(abs(shares[0] - 1.0 / 17.0) < 0.01, "\(shares)")
        #expect(shares[0] < shares[1] && shares[1] < shares[2] && shares[2] < shares[3], "\(shares)")
        #expect(abs(shares[2] - 8.0 / 24.0) < 0.01, "half-way, weight 8 of 16 against 16: \(shares)")
        #expect(shares[4] == 0.5, "after the window both weigh the same: \(shares)")
        #expect(BackendSnapshot(version: 1, backends: backends, algorithm: .weighted, settings: settings, now: start).ramping)
        #expect(!BackendSnapshot(version: 1, backends: backends, algorithm: .weighted, settings: settings, now: start + .seconds(11)).ramping)
        #expect(!BackendSnapshot(version: 1, backends: backends, algorithm: .roundRobin, settings: settings, now: start).ramping,
                "round robin ignores weights, so it has nothing to ramp")
    }

    @Test func aBackendThatComesUpOrIsAddedStartsItsRampAndTheRampEnds() throws {
        let registry = BackendRegistry(
            backends: [BackendSpec(endpoint: try Endpoint(parsing: "10.0.0.1:80"))],
            algorithm: .weighted, settings: ServiceSettings([try ServiceKey.named("slow-start").parse("50ms")]))
        #expect(registry.snapshot().backends[0].rampStartedAt == nil, "backends present at start take their full weight")
        try registry.apply(.healthVerdict(backendID: 0, HealthVerdict(isUp: false, lastCheck: "down")))
        try registry.apply(.healthVerdict(backendID: 0, HealthVerdict(isUp: true, lastCheck: "up")))
        #expect(registry.snapshot().backends[0].rampStartedAt != nil)
        try registry.apply(.add(BackendSpec(endpoint: try Endpoint(parsing: "10.0.0.2:80"))))
        #expect(registry.snapshot().backends[1].rampStartedAt != nil)
        #expect(registry.snapshot().ramping)
        let deadline = ContinuousClock.now + .seconds(5)
        while registry.snapshot().backends.contains(where: { $0.rampStartedAt != nil }) && ContinuousClock.now < deadline {
            try registry.apply(.advanceSlowStart)
        }
        #expect(registry.snapshot().backends.allSatisfy { $0.rampStartedAt == nil })
        #expect(!registry.snapshot().ramping)
    }
}

@Suite struct BackupQueueSlowStartKeyTests {
    @Test func theFileAndTheCommandLineFormCarryEveryKey() throws {
        let configuration = try ConfigFile.parse("""
            services:
              db:
                listen: 127.0.0.1:5432
                queue-size: 50
                queue-timeout: 2s
                slow-start: 30s
                backends:
                  - {address: 10.0.0.1:5432, max-connections: 100}
                  - {address: 10.0.0.2:5432, backup: true, slow-start: off}
                  - "10.0.0.3:5432,backup,max-connections=7,slow-start=5s"
            """, file: "q.yaml")
        let service = try #require(configuration.services.first)
        #expect(service.queueSize == 50 && service.queueTimeout == .seconds(2) && service.slowStart == .seconds(30))
        #expect(service.backends.map(\.maxConnections) == [100, nil, 7])
        #expect(service.backends.map(\.backup) == [false, true, true])
        #expect(service.settings.slowStart(of: service.backends[0]) == .seconds(30))
        #expect(service.settings.slowStart(of: service.backends[1]) == nil, "slow-start: off on the backend wins")
        #expect(service.settings.slowStart(of: service.backends[2]) == .seconds(5))
        #expect(service.backends[2].description == "10.0.0.3:5432,backup,max-connections=7,slow-start=5s")
        #expect(ServiceConfiguration(name: "x", listen: [], backends: []).queueSize == 1024)
        #expect(ServiceConfiguration(name: "x", listen: [], backends: []).queueTimeout == .seconds(5))
    }

    @Test(arguments: [
        ("queue-size: -1", "queue-size '-1' must be a whole number from 0 to 1000000"),
        ("queue-timeout: 0s", "queue-timeout '0s' must be longer than 0"),
        ("slow-start: 2h", "slow-start '2h' must be at most 1h"),
        ("backends: [{address: 10.0.0.1:1, backup: yes}]", "'yes' must be true or false"),
        ("backends: [{address: 10.0.0.1:1, max-connections: 0}]", "max-connections '0' must be a whole number from 1"),
        ("backends: [{address: 10.0.0.1:1, maxconn: 3}]", "maxconn"),
    ])
    func badValuesNameTheirKey(line: String, fragment: String) {
        let text = "services:\n  db:\n    listen: 127.0.0.1:5432\n    \(line)\n"
        do {
            _ = try ConfigFile.parse(text, file: "bad.yaml")
            Issue.record("'\(line)' was accepted")
        } catch {
            #expect(error.description.contains(fragment), "\(error)")
            #expect(error.description.contains("bad.yaml:4:"), "\(error)")
        }
    }
}
