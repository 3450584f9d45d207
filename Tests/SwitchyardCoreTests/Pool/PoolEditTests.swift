import Testing
@testable import SwitchyardCore

func poolEndpoint(_ text: String) -> Endpoint { try! Endpoint(parsing: text) }

/// A registry over `backends` (`HOST:PORT[,key=value...]`), round robin unless said.
func poolRegistry(_ backends: [String], algorithm: BalanceAlgorithm = .roundRobin,
                  settings: ServiceSettings = ServiceSettings()) -> BackendRegistry {
    BackendRegistry(backends: backends.map { try! BackendSpec(parsing: $0) }, algorithm: algorithm, settings: settings)
}

/// The edit's refusal, or nil when it was applied.
func refusal(_ edit: PoolEdit, on registry: BackendRegistry) -> PoolEditRefusal? {
    do {
        try registry.apply(edit)
        return nil
    } catch {
        return error
    }
}

extension BackendRegistry {
    func backend(_ name: String) -> BackendState? {
        snapshot().backends.first { $0.spec.endpoint.description == name }
    }
    var version: UInt64 { snapshot().version }
}

/// The operator's edits (admin socket, state file): each rule and each refusal. A refused
/// edit, or one that changes nothing, never publishes.
@Suite struct OperatorPoolEditTests {
    @Test func setAdminStateChangesTheStateAndPublishesOnlyOnChange() throws {
        let registry = poolRegistry(["10.0.0.1:80", "10.0.0.2:80"])
        let result = try registry.apply(.setAdminState(poolEndpoint("10.0.0.1:80"), .drain))
        #expect(result.before?.admin == .ready && result.after?.admin == .drain)
        #expect(registry.backend("10.0.0.1:80")?.selectable == false)
        #expect(registry.version == 2)
        try registry.apply(.setAdminState(poolEndpoint("10.0.0.1:80"), .drain))
        #expect(registry.version == 2, "the same state again publishes nothing")
        try registry.apply(.setAdminState(poolEndpoint("10.0.0.1:80"), .maint))
        try registry.apply(.setAdminState(poolEndpoint("10.0.0.1:80"), .ready))
        #expect(registry.backend("10.0.0.1:80")?.selectable == true)
        #expect(registry.version == 4)
    }

    @Test func everyEditNamingAnUnknownBackendIsRefusedAndChangesNothing() {
        let registry = poolRegistry(["10.0.0.1:80"])
        let unknown = poolEndpoint("10.9.9.9:80")
        for edit: PoolEdit in [.setAdminState(unknown, .drain), .setWeight(unknown, 3), .removeWhenIdle(unknown), .shutDownSessions(unknown)] {
            #expect(refusal(edit, on: registry) == .unknownBackend(unknown), "\(edit)")
        }
        #expect(registry.version == 1)
    }

    @Test func setWeightWritesTheWeightExplicitlyAndRefusesOneOutOfRange() throws {
        let registry = poolRegistry(["10.0.0.1:80"])
        let result = try registry.apply(.setWeight(poolEndpoint("10.0.0.1:80"), 7))
        #expect(result.before?.spec.weight == 1 && result.after?.spec.weight == 7)
        #expect(registry.backend("10.0.0.1:80")?.spec.weightGiven == true)
        #expect(refusal(.setWeight(poolEndpoint("10.0.0.1:80"), -1), on: registry) == .badWeight(-1))
        #expect(refusal(.setWeight(poolEndpoint("10.0.0.1:80"), BackendSpec.maximumWeight + 1), on: registry)
                == .badWeight(BackendSpec.maximumWeight + 1))
        #expect(refusal(.setWeight(poolEndpoint("10.0.0.1:80"), 0), on: registry) == nil, "0 is a weight: no new clients")
        #expect(registry.backend("10.0.0.1:80")?.spec.weight == 0)
    }

    @Test func addGivesAFreshIDNeverReusedAndRefusesDuplicatesAndUnresolvedHosts() throws {
        let registry = poolRegistry(["10.0.0.1:80"])
        let added = try registry.apply(.add(BackendSpec(parsing: "10.0.0.2:80,weight=3")))
        #expect(added.before == nil && added.after?.id == 1 && added.after?.spec.weight == 3)
        #expect(registry.backend("10.0.0.2:80")?.health == .assumedUp && registry.backend("10.0.0.2:80")?.admin == .ready)
        #expect(refusal(.add(try BackendSpec(parsing: "10.0.0.2:80")), on: registry) == .alreadyPresent(poolEndpoint("10.0.0.2:80")))
        let hostname = try BackendSpec(parsing: "db.example:5432")
        #expect(refusal(.add(hostname), on: registry) == .unresolved(hostname.endpoint))
        #expect(PoolEditRefusal.unresolved(hostname.endpoint).description == "cannot resolve db.example")
        try registry.apply(.removeWhenIdle(poolEndpoint("10.0.0.2:80")))
        #expect(try registry.apply(.add(BackendSpec(parsing: "10.0.0.2:80"))).after?.id == 2, "ids are never reused")
    }

    @Test func removeWhenIdleRefusesABackendWithOpenConnections() throws {
        let registry = poolRegistry(["10.0.0.1:80", "10.0.0.2:80"])
        registry.backend("10.0.0.1:80")!.stats.active.store(2, ordering: .relaxed)
        #expect(refusal(.removeWhenIdle(poolEndpoint("10.0.0.1:80")), on: registry) == .busy(poolEndpoint("10.0.0.1:80"), openConnections: 2))
        #expect(registry.backend("10.0.0.1:80") != nil && registry.version == 1)
        registry.backend("10.0.0.1:80")!.stats.active.store(0, ordering: .relaxed)
        let removed = try registry.apply(.removeWhenIdle(poolEndpoint("10.0.0.1:80")))
        #expect(removed.before?.id == 0 && removed.after == nil)
        #expect(registry.snapshot().backends.map(\.id) == [1])
    }

    @Test func shutDownSessionsBumpsTheEpochUnderTheAdminCause() throws {
        let registry = poolRegistry(["10.0.0.1:80"])
        try registry.apply(.shutDownSessions(poolEndpoint("10.0.0.1:80")))
        try registry.apply(.shutDownSessions(poolEndpoint("10.0.0.1:80")))
        #expect(registry.backend("10.0.0.1:80")?.shutdownEpoch == 2)
        #expect(registry.backend("10.0.0.1:80")?.shutdownCause == .adminShutdown)
        #expect(registry.version == 3, "each shutdown publishes")
    }

    @Test func editsAppliedTogetherPublishOnceOrNotAtAllWhenOneIsRefused() throws {
        let registry = poolRegistry(["10.0.0.1:80", "10.0.0.2:80"])
        try registry.apply([.setAdminState(poolEndpoint("10.0.0.1:80"), .drain), .setWeight(poolEndpoint("10.0.0.2:80"), 4)])
        #expect(registry.version == 2)
        #expect(registry.backend("10.0.0.1:80")?.admin == .drain && registry.backend("10.0.0.2:80")?.spec.weight == 4)
        #expect(throws: PoolEditRefusal.unknownBackend(poolEndpoint("10.9.9.9:80"))) {
            try registry.apply([.setAdminState(poolEndpoint("10.0.0.2:80"), .maint), .setWeight(poolEndpoint("10.9.9.9:80"), 4)])
        }
        #expect(registry.backend("10.0.0.2:80")?.admin == .ready, "the edit before the refused one was not kept")
        #expect(registry.version == 2)
    }
}

/// Edits made by the system: checkers, reload's drains, the instance's timers.
@Suite struct SystemPoolEditTests {
    @Test func aHealthVerdictPublishesOnlyWhenItChangesAndOneOnAGoneBackendDoesNothing() throws {
        let registry = poolRegistry(["10.0.0.1:80"])
        let down = HealthVerdict(isUp: false, lastCheck: "connection refused")
        try registry.apply(.healthVerdict(backendID: 0, down))
        #expect(registry.backend("10.0.0.1:80")?.health == down && registry.version == 2)
        try registry.apply(.healthVerdict(backendID: 0, down))
        try registry.apply(.healthVerdict(backendID: 7, .assumedUp))
        #expect(registry.version == 2)
    }

    @Test func anAgentVerdictOnAGoneBackendDoesNothingAndNilClearsIt() throws {
        let registry = poolRegistry(["10.0.0.1:80,agent-port=9999"], algorithm: .weighted)
        try registry.apply(.agentVerdict(backendID: 3, AgentVerdict(adminState: .drain)))
        #expect(registry.version == 1)
        try registry.apply(.agentVerdict(backendID: 0, AgentVerdict(adminState: .drain)))
        #expect(registry.backend("10.0.0.1:80")?.selectable == false)
        try registry.apply(.agentVerdict(backendID: 0, nil))
        #expect(registry.backend("10.0.0.1:80")?.agent == nil && registry.backend("10.0.0.1:80")?.selectable == true)
    }

    @Test func markRemovingAndCancelRemovalFlipTheFlagAndIgnoreAbsentBackends() throws {
        let registry = poolRegistry(["10.0.0.1:80"])
        let result = try registry.apply(.markRemoving(poolEndpoint("10.0.0.1:80")))
        #expect(result.before?.removing == false && result.after?.removing == true)
        #expect(registry.backend("10.0.0.1:80")?.selectable == false, "a backend being removed takes no new clients")
        #expect(registry.backend("10.0.0.1:80")?.displayedState == .drain)
        try registry.apply(.markRemoving(poolEndpoint("10.0.0.1:80")))
        try registry.apply(.markRemoving(poolEndpoint("10.9.9.9:80")))
        try registry.apply(.cancelRemoval(poolEndpoint("10.9.9.9:80")))
        #expect(registry.version == 2)
        let cancelled = try registry.apply(.cancelRemoval(poolEndpoint("10.0.0.1:80")))
        #expect(cancelled.before?.removing == true && registry.backend("10.0.0.1:80")?.selectable == true)
    }

    @Test func removeFinishedTakesOutOnlyIdleBackendsBeingRemoved() throws {
        let registry = poolRegistry(["10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"])
        try registry.apply([.markRemoving(poolEndpoint("10.0.0.1:80")), .markRemoving(poolEndpoint("10.0.0.2:80"))])
        registry.backend("10.0.0.2:80")!.stats.active.store(1, ordering: .relaxed)
        let version = registry.version
        #expect(try registry.apply(.removeFinished).notes == ["10.0.0.1:80"])
        #expect(registry.snapshot().backends.map(\.name) == ["10.0.0.2:80", "10.0.0.3:80"])
        #expect(try registry.apply(.removeFinished).notes.isEmpty)
        #expect(registry.version == version + 1, "a sweep with nothing to take out publishes nothing")
        registry.backend("10.0.0.2:80")!.stats.active.store(0, ordering: .relaxed)
        #expect(try registry.apply(.removeFinished).notes == ["10.0.0.2:80"])
    }

    @Test func endRemovalGraceClosesTheSessionsOfBackendsStillBeingRemoved() throws {
        let registry = poolRegistry(["10.0.0.1:80", "10.0.0.2:80"])
        try registry.apply(.markRemoving(poolEndpoint("10.0.0.1:80")))
        let result = try registry.apply(.endRemovalGrace(backendIDs: [0, 1, 9]))
        #expect(result.notes == ["10.0.0.1:80"], "10.0.0.2:80 is not being removed")
        #expect(registry.backend("10.0.0.1:80")?.shutdownEpoch == 1 && registry.backend("10.0.0.1:80")?.shutdownCause == .removalGrace)
        #expect(registry.backend("10.0.0.2:80")?.shutdownEpoch == 0)
    }

    @Test func slowStartRampsFromAddOrComingUpAndAdvancingPublishesOnlyWhileRamping() throws {
        let registry = poolRegistry(["10.0.0.1:80"], algorithm: .weighted, settings: ServiceSettings([try ServiceKey.named("slow-start").parse("50ms")]))
        try registry.apply(.advanceSlowStart)
        #expect(registry.version == 1, "nothing ramps: nothing to publish")
        try registry.apply(.add(BackendSpec(parsing: "10.0.0.2:80")))
        #expect(registry.backend("10.0.0.2:80")?.rampStartedAt != nil && registry.snapshot().ramping)
        let added = registry.version
        try registry.apply(.advanceSlowStart)
        #expect(registry.version == added + 1, "while a backend ramps, each advance publishes (its share grows)")
        let deadline = ContinuousClock.now + .seconds(5)
        while registry.backend("10.0.0.2:80")?.rampStartedAt != nil && ContinuousClock.now < deadline {
            try registry.apply(.advanceSlowStart)
        }
        #expect(registry.backend("10.0.0.2:80")?.rampStartedAt == nil && !registry.snapshot().ramping)
        let settled = registry.version
        try registry.apply(.advanceSlowStart)
        #expect(registry.version == settled)
        try registry.apply(.healthVerdict(backendID: 0, HealthVerdict(isUp: false, lastCheck: "down")))
        #expect(registry.backend("10.0.0.1:80")?.rampStartedAt == nil, "going down starts no ramp")
        try registry.apply(.healthVerdict(backendID: 0, HealthVerdict(isUp: true, lastCheck: "up")))
        #expect(registry.backend("10.0.0.1:80")?.rampStartedAt != nil, "coming up does")
    }

    @Test func moveAddressPointsAHostnameBackendAtItsNewAddressAndSaysFromWhere() throws {
        var spec = try BackendSpec(parsing: "db.example:5432")
        spec.endpoint.address = IPAddress("10.0.0.1")
        let registry = BackendRegistry(backends: [spec], algorithm: .roundRobin)
        let moved = try registry.apply(.moveAddress(spec.endpoint, to: IPAddress("10.0.0.2")!))
        #expect(moved.notes == ["10.0.0.1 -> 10.0.0.2"])
        #expect(registry.backend("db.example:5432")?.spec.endpoint.address == IPAddress("10.0.0.2"))
        #expect(try registry.apply(.moveAddress(spec.endpoint, to: IPAddress("10.0.0.2")!)).notes.isEmpty)
        #expect(try registry.apply(.moveAddress(poolEndpoint("other.example:1"), to: IPAddress("10.0.0.3")!)).notes.isEmpty)
        #expect(registry.version == 2)
    }
}
