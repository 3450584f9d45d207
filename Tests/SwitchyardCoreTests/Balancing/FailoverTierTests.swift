import Testing
@testable import SwitchyardCore

/// Failover tiers (`priority`, `backup`, `failover-threshold`) and what happens to sessions when
/// a backend goes (`on-down`, `on-up`): the tiers a snapshot builds, the worker's tier choice,
/// the keys, and the shutdowns the registry marks.
@Suite struct FailoverTierTests {
    static func backend(_ id: Int, priority: Int = 0, backup: Bool = false, weight: Int = 1, up: Bool = true) -> BackendState {
        var spec = BackendSpec(endpoint: try! Endpoint(parsing: "10.0.0.\(id + 1):80"))
        spec.priority = priority
        spec.backup = backup
        spec.weight = weight
        return BackendState(id: id, spec: spec, health: HealthVerdict(isUp: up, lastCheck: ""))
    }

    /// Tiers 0 (ids 0-3), 1 (ids 4-5) and backup (id 6), with ids in `down` down.
    static func threeTiers(down: Set<Int> = []) -> [BackendState] {
        [0, 0, 0, 0, 1, 1].enumerated().map { backend($0.offset, priority: $0.element, up: !down.contains($0.offset)) }
            + [backend(6, backup: true, up: !down.contains(6))]
    }

    /// The tier of each of `count` clients, as one worker chooses them.
    static func tiers(_ failover: FailoverTiers, _ count: Int, byClientKey: Bool = false) -> [Int?] {
        var chooser = TierChooser(failover, byClientKey: byClientKey)
        return (0..<count).map { chooser.next(clientKey: StableHash.hash(Array("client \($0)".utf8))) }
    }

    @Test func tiersFollowPriorityWithBackupsLastWhateverTheOrderOfBackends() {
        let backends = [Self.backend(0, backup: true), Self.backend(1, priority: 2), Self.backend(2), Self.backend(3, priority: 2)]
        let failover = FailoverTiers(backends: backends, thresholdPercent: nil)
        #expect(failover.tiers.map(\.name) == ["0", "2", "backup"])
        #expect(failover.tiers.map(\.members) == [[2], [1, 3], [0]])
        #expect(failover.tierOfBackend == [2, 1, 0, 1])
        #expect(failover.shares == [1, 0, 0])
        #expect(failover.summary == "0:100%,2:0%,backup:0%")
    }

    @Test func withoutAThresholdTheFirstTierWithAHealthyBackendTakesEveryClient() {
        #expect(FailoverTiers(backends: Self.threeTiers(down: [0, 1, 2]), thresholdPercent: nil).shares == [1, 0, 0])
        #expect(FailoverTiers(backends: Self.threeTiers(down: [0, 1, 2, 3]), thresholdPercent: nil).shares == [0, 1, 0])
        #expect(FailoverTiers(backends: Self.threeTiers(down: [0, 1, 2, 3, 4, 5]), thresholdPercent: nil).shares == [0, 0, 1])
        let none = FailoverTiers(backends: Self.threeTiers(down: Set(0...6)), thresholdPercent: nil)
        #expect(none.shares == [0, 0, 0] && none.summary == "0:0%,1:0%,backup:0%")
        #expect(Self.tiers(none, 3) == [nil, nil, nil])
    }

    @Test func drainedAndMaintainedBackendsAreCapacityTheTierLacksButRemovedOnesAreNot() {
        var backends = Self.threeTiers()
        backends[0].admin = .drain
        backends[1].admin = .maint
        backends[2].removing = true
        let failover = FailoverTiers(backends: backends, thresholdPercent: 100)
        #expect(failover.tiers[0].weights == PriorityLoad.Tier(healthyWeight: 1, totalWeight: 3))
        #expect(failover.shares[0] == 1.0 / 3.0)
    }

    @Test func anAgentsWeightAndDownCountAsTheyDoForTheBalancers() {
        let before = [Self.backend(0, weight: 4), Self.backend(1, weight: 4), Self.backend(2, priority: 1)]
        var after = before
        after[0].agent = AgentVerdict(weightPercent: 50)
        after[1].agent = AgentVerdict(health: .down)
        let failover = FailoverTiers(backends: after, thresholdPercent: 100)
        #expect(failover.tiers[0].weights == PriorityLoad.Tier(healthyWeight: 2, totalWeight: 8))
        #expect(failover.shares == [0.25, 0.75])
        #expect(SessionShutdownTests.marked(before, after, SessionShutdownTests.onDown) == [1: .backendDown])
    }

    @Test func belowTheThresholdARoundRobinOfClientsSpillsExactlyInProportion() {
        // One of four down against 100 %: tier 0 takes 3/4, tier 1 the rest; any run of clients
        // gets its share to within one client.
        let failover = FailoverTiers(backends: Self.threeTiers(down: [0]), thresholdPercent: 100)
        #expect(failover.shares == [0.75, 0.25, 0])
        #expect(failover.summary == "0:75%,1:25%,backup:0%")
        let picks = Self.tiers(failover, 16)
        #expect(picks == [0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0])
        for length in 1...16 {
            let first = picks.prefix(length).filter { $0 == 0 }.count
            #expect(abs(Double(first) - 0.75 * Double(length)) < 1, "after \(length) clients: \(first) in tier 0")
        }
        // Two of four down against 80 %: 0.5 / 0.8 = 62.5 % stays; at 50 % nothing spills.
        #expect(FailoverTiers(backends: Self.threeTiers(down: [0, 1]), thresholdPercent: 80).shares == [0.625, 0.375, 0])
        #expect(FailoverTiers(backends: Self.threeTiers(down: [0, 1]), thresholdPercent: 50).shares == [1, 0, 0])
    }

    @Test func ipHashKeepsAClientInItsTierWhileTheSharesHold() {
        let failover = FailoverTiers(backends: Self.threeTiers(down: [0, 1]), thresholdPercent: 100)
        let first = Self.tiers(failover, 400, byClientKey: true)
        #expect(first == Self.tiers(failover, 400, byClientKey: true))
        let inFirst = first.filter { $0 == 0 }.count
        #expect((150...250).contains(inFirst), "about half of the clients stay in tier 0: \(inFirst)")
        #expect(!first.contains(2) && !first.contains(nil))
    }

    @Test func theSnapshotBuildsOneBalancerPerTierThatOffersOnlyItsMembers() {
        for algorithm in BalanceAlgorithm.allCases {
            let snapshot = BackendSnapshot(version: 1, backends: Self.threeTiers(down: [1]), algorithm: algorithm)
            #expect(snapshot.tierBalancers.count == 3)
            for (tier, members) in [[0, 2, 3], [4, 5], [6]].enumerated() {
                var balancer = snapshot.tierBalancers[tier]
                var tried = TriedBackends()
                var offered: Set<Int> = []
                while let index = balancer.pick(clientKey: 42, excluding: tried) {
                    offered.insert(index)
                    tried.insert(index)
                }
                #expect(offered == Set(members), "\(algorithm), tier \(tier)")
            }
        }
    }

    @Test func priorityIsABackendOptionAndAKeyAndCannotBeGivenWithBackup() throws {
        let spec = try BackendSpec(parsing: "10.0.0.1:80,weight=2,priority=3")
        #expect(spec.priority == 3)
        #expect(spec.description == "10.0.0.1:80,weight=2,priority=3")
        #expect(try BackendSpec(parsing: spec.description) == spec)
        #expect(throws: ConfigError.self) { try BackendSpec(parsing: "10.0.0.1:80,priority=256") }
        #expect(throws: ConfigError.self) { try BackendSpec(parsing: "10.0.0.1:80,priority=-1") }
        #expect(throws: ConfigError.self) { try BackendSpec(parsing: "10.0.0.1:80,priority=1,backup") }

        let configuration = try ConfigFile.parse("""
            services:
              db:
                listen: 127.0.0.1:7000
                failover-threshold: 70%
                on-down: shutdown-sessions
                on-up: shutdown-backup-sessions
                removal-grace: 2s
                backends:
                  - 10.0.0.1:80
                  - {address: "10.0.0.2:80", priority: 1}
                  - "10.0.0.3:80,priority=2"
                  - {address: "10.0.0.4:80", backup: true}
            """, file: "tiers.yaml")
        let service = try #require(configuration.services.first)
        #expect(service.backends.map(\.priority) == [0, 1, 2, 0])
        #expect(service.settings.failoverThreshold == 70)
        #expect(service.settings.onDown == .shutdownSessions)
        #expect(service.settings.onUp == .shutdownBackupSessions)
        #expect(service.settings.removalGrace == .seconds(2))
        expectConfigFileError("""
            services:
              db:
                listen: 127.0.0.1:7000
                backends:
                  - {address: "10.0.0.4:80", backup: true, priority: 1}
            """, line: 5, column: 58, message: "give it priority=N or backup, not both")
        expectConfigFileError("""
            services:
              db:
                listen: 127.0.0.1:7000
                failover-threshold: 0%
                backends: [10.0.0.1:80]
            """, line: 4, column: 25, message: "from 1% to 100%")
        expectConfigFileError("""
            services:
              db:
                listen: 127.0.0.1:7000
                on-down: close
                backends: [10.0.0.1:80]
            """, line: 4, column: 14, message: "shutdown-sessions")
    }
}

/// README's failover-tier example must stay a valid file.
@Test func theReadmeFailoverTierExampleIsValid() throws {
    let configuration = try readmeExample(after: "### Failover tiers")
    let pg = try #require(configuration.service(named: "pg"))
    #expect(pg.failoverThreshold == 70 && pg.onUp == .shutdownBackupSessions)
    #expect(pg.backends.map(\.priority) == [0, 0, 1, 0])
    #expect(pg.backends.map(\.backup) == [false, false, false, true])
}

@Suite struct SessionShutdownTests {
    static var onDown: ServiceSettings {
        var settings = ServiceSettings()
        settings.onDown = .shutdownSessions
        return settings
    }

    static var onUp: ServiceSettings {
        var settings = ServiceSettings()
        settings.onUp = .shutdownBackupSessions
        return settings
    }

    static func marked(_ previous: [BackendState], _ next: [BackendState], _ settings: ServiceSettings) -> [Int: TerminationCause] {
        var next = next
        SessionShutdown.mark(&next, previous: previous, settings: settings)
        var marked: [Int: TerminationCause] = [:]
        for (old, new) in zip(previous, next) where old.shutdownEpoch != new.shutdownEpoch { marked[new.id] = new.shutdownCause }
        return marked
    }

    @Test func onDownClosesTheSessionsOfABackendMarkedDownAndNothingElse() {
        let before = FailoverTierTests.threeTiers()
        let after = FailoverTierTests.threeTiers(down: [2])
        #expect(Self.marked(before, after, Self.onDown) == [2: .backendDown])
        #expect(Self.marked(before, after, ServiceSettings()).isEmpty, "without on-down the sessions stay")
        #expect(Self.marked(after, after, Self.onDown).isEmpty, "a backend already down is not marked again")
        var drained = before
        drained[1].admin = .maint
        #expect(Self.marked(before, drained, Self.onDown).isEmpty, "maintenance is the operator's, not a health verdict")
    }

    @Test func onUpClosesTheSessionsOfTiersThatNoLongerTakeClients() {
        let tier0Down = FailoverTierTests.threeTiers(down: [0, 1, 2, 3])
        let back = FailoverTierTests.threeTiers(down: [1, 2, 3])
        #expect(Self.marked(tier0Down, back, Self.onUp) == [4: .backupPreempted, 5: .backupPreempted])
        #expect(Self.marked(tier0Down, back, ServiceSettings()).isEmpty)
        // With a threshold, tier 1 still takes a share while tier 0 is short: nothing is closed.
        var partly = Self.onUp
        partly.failoverThreshold = 100
        #expect(Self.marked(tier0Down, back, partly).isEmpty)
        // A tier that merely goes down itself is not "preempted".
        let onlyBackup = FailoverTierTests.threeTiers(down: [0, 1, 2, 3, 4, 5])
        #expect(Self.marked(tier0Down, onlyBackup, Self.onUp).isEmpty)
        #expect(Self.marked(onlyBackup, tier0Down, Self.onUp) == [6: .backupPreempted])
    }

    @Test func theRegistryMarksOnItsOnePublishPathAndShutdownKeepsItsOwnCause() throws {
        let registry = BackendRegistry(backends: ["10.0.0.1:80", "10.0.0.2:80,backup"].map { try! BackendSpec(parsing: $0) },
                                       algorithm: .roundRobin, settings: Self.onDown)
        try registry.apply(.healthVerdict(backendID: 0, HealthVerdict(isUp: false, lastCheck: "refused")))
        #expect(registry.snapshot().backends[0].shutdownEpoch == 1)
        #expect(registry.snapshot().backends[0].shutdownCause == .backendDown)
        #expect(registry.snapshot().failover.summary == "0:0%,backup:100%")
        try registry.apply(.shutDownSessions(try Endpoint(parsing: "10.0.0.2:80")))
        #expect(registry.snapshot().backends[1].shutdownCause == .adminShutdown)
        #expect(throws: ConfigError.self) { try ServiceSettings.parseRemovalGrace("0s") }
        #expect(try ServiceSettings.parseRemovalGrace("1500ms") == .milliseconds(1500))
    }
}
