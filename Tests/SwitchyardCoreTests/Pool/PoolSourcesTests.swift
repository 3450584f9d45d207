import Testing
@testable import SwitchyardCore

/// Edits made from whole sets: a reload's changes, DNS discovery's answers, the state file.
@Suite struct ReloadPoolEditTests {
    private static func service(_ backends: [String]) -> ServiceConfiguration {
        ServiceConfiguration(name: "pg", listen: [poolEndpoint("127.0.0.1:1")], backends: backends.map { try! BackendSpec(parsing: $0) })
    }

    private static func change(from old: [String], to new: [String]) throws -> (ConfigDifference.ServiceChange, ServiceConfiguration) {
        let newService = service(new)
        let difference = ConfigDifference(from: Configuration(services: [service(old)]), to: Configuration(services: [newService]))
        return (try #require(difference.changedServices.first), newService)
    }

    @Test func aReloadIsAListOfEditsAddingDrainingAndReweighing() throws {
        let (change, service) = try Self.change(from: ["10.0.0.1:5432", "10.0.0.2:5432", "10.0.0.3:5432"],
                                                to: ["10.0.0.1:5432", "10.0.0.2:5432,weight=5", "10.0.0.4:5432"])
        let edits = PoolEdit.reload(change, resolved: service.backends)
        #expect(edits == [
            .put(try BackendSpec(parsing: "10.0.0.4:5432")),
            .markRemoving(poolEndpoint("10.0.0.3:5432")),
            .replaceSpec(try BackendSpec(parsing: "10.0.0.2:5432,weight=5")),
        ])
    }

    @Test func aReloadIsPublishedOnceAndUnchangedBackendsKeepTheirState() throws {
        let registry = poolRegistry(["10.0.0.1:5432", "10.0.0.2:5432", "10.0.0.3:5432"])
        try registry.apply(.healthVerdict(backendID: 1, HealthVerdict(isUp: false, lastCheck: "refused")))
        registry.backend("10.0.0.1:5432")!.stats.total.store(9, ordering: .relaxed)
        let (change, service) = try Self.change(from: ["10.0.0.1:5432", "10.0.0.2:5432", "10.0.0.3:5432"],
                                                to: ["10.0.0.1:5432", "10.0.0.2:5432,weight=5", "10.0.0.4:5432"])
        let version = registry.version
        try registry.apply(PoolEdit.reload(change, resolved: service.backends))
        #expect(registry.version == version + 1)
        let backends = registry.snapshot().backends
        #expect(backends.map(\.name) == ["10.0.0.1:5432", "10.0.0.2:5432", "10.0.0.3:5432", "10.0.0.4:5432"])
        #expect(backends.map(\.id) == [0, 1, 2, 3])
        #expect(backends.map(\.removing) == [false, false, true, false], "a removed backend drains first")
        #expect(backends[0].stats.total.load(ordering: .relaxed) == 9)
        #expect(backends[1].spec.weight == 5 && backends[1].health.isUp == false, "a reweighed backend keeps its health")
    }

    @Test func aBackendListedAgainBeforeItWentStaysWithTheNewSpec() throws {
        let registry = poolRegistry(["10.0.0.1:5432"])
        try registry.apply(.markRemoving(poolEndpoint("10.0.0.1:5432")))
        try registry.apply(.put(BackendSpec(parsing: "10.0.0.1:5432,weight=3")))
        #expect(registry.snapshot().backends.count == 1)
        #expect(registry.backend("10.0.0.1:5432")?.removing == false && registry.backend("10.0.0.1:5432")?.spec.weight == 3)
        #expect(registry.backend("10.0.0.1:5432")?.id == 0)
    }

    @Test func aChangedSpecKeepsTheResolvedAddressAndAnAbsentBackendIsLeftAlone() throws {
        var resolved = try BackendSpec(parsing: "db.example:5432")
        resolved.endpoint.address = IPAddress("10.0.0.7")
        let registry = BackendRegistry(backends: [resolved], algorithm: .roundRobin)
        try registry.apply(.replaceSpec(BackendSpec(parsing: "db.example:5432,weight=4")))
        #expect(registry.backend("db.example:5432")?.spec.weight == 4)
        #expect(registry.backend("db.example:5432")?.spec.endpoint.address == IPAddress("10.0.0.7"))
        let version = registry.version
        try registry.apply(.replaceSpec(BackendSpec(parsing: "10.0.0.9:1,weight=2")))
        #expect(registry.version == version && registry.snapshot().backends.count == 1)
    }
}

@Suite struct DiscoveredSetPoolEditTests {
    private static func found(_ hosts: [String], weight: Int? = nil) -> [DNSBackend] {
        hosts.map { DNSBackend(address: IPAddress($0)!, port: 80, weight: weight) }
    }

    @Test func newAddressesJoinVanishedOnesDrainAndConfiguredBackendsAreNeverTouched() throws {
        let registry = poolRegistry(["10.0.0.1:80"])
        let first = try registry.apply(.setDiscovered(Self.found(["10.0.1.1", "10.0.1.2"]), defaultWeight: 2))
        #expect(first.notes == ["10.0.1.1:80 added (weight 2)", "10.0.1.2:80 added (weight 2)"])
        #expect(registry.snapshot().backends.map(\.discovered) == [false, true, true])
        try registry.apply(.healthVerdict(backendID: 1, HealthVerdict(isUp: false, lastCheck: "refused")))

        let second = try registry.apply(.setDiscovered(Self.found(["10.0.1.1", "10.0.1.3"]), defaultWeight: 2))
        #expect(second.notes == ["10.0.1.2:80 gone (drains)", "10.0.1.3:80 added (weight 2)"])
        #expect(registry.backend("10.0.1.1:80")?.id == 1 && registry.backend("10.0.1.1:80")?.health.isUp == false,
                "a kept address keeps its id and health")
        #expect(registry.backend("10.0.1.2:80")?.removing == true)
        #expect(registry.backend("10.0.0.1:80")?.removing == false, "a configured backend is not discovery's to drain")

        let version = registry.version
        #expect(try registry.apply(.setDiscovered(Self.found(["10.0.1.1", "10.0.1.3"]), defaultWeight: 2)).notes.isEmpty)
        #expect(registry.version == version, "the same answer publishes nothing")
    }

    @Test func anAddressBackBeforeItWentIsKeptAndWeightsFollowTheAnswer() throws {
        let registry = poolRegistry([])
        try registry.apply(.setDiscovered(Self.found(["10.0.1.1", "10.0.1.2"]), defaultWeight: 1))
        try registry.apply(.setDiscovered(Self.found(["10.0.1.1"]), defaultWeight: 1))
        let back = try registry.apply(.setDiscovered(Self.found(["10.0.1.1", "10.0.1.2"], weight: 7), defaultWeight: 1))
        #expect(back.notes == ["10.0.1.1:80 weight 1 -> 7", "10.0.1.2:80 is back", "10.0.1.2:80 weight 1 -> 7"])
        #expect(registry.snapshot().backends.map(\.id) == [0, 1])
        #expect(registry.snapshot().backends.allSatisfy { !$0.removing && $0.spec.weight == 7 })
    }

    @Test func anEmptyAnswerDrainsEveryDiscoveredBackend() throws {
        let registry = poolRegistry(["10.0.0.1:80"])
        try registry.apply(.setDiscovered(Self.found(["10.0.1.1"]), defaultWeight: 1))
        #expect(try registry.apply(.setDiscovered([], defaultWeight: 1)).notes == ["10.0.1.1:80 gone (drains)"])
        #expect(registry.snapshot().backends.map(\.removing) == [false, true])
    }
}

/// Replaying the state file: its lines become the admin socket's edits.
@Suite struct StateFileReplayTests {
    private static func commands(_ text: String) throws -> [AdminCommand] {
        try RuntimeOverrides(parsing: RuntimeOverrides.header + "\n" + text, file: "state").commands.map(\.command)
    }

    private static func replay(_ lines: String, on registry: BackendRegistry,
                               resolve: (Endpoint) throws(ConfigError) -> Endpoint = AdminController.literalOnly) throws -> [RuntimeOverrides.Replay] {
        try commands(lines).map { RuntimeOverrides.replay($0, on: registry, resolve: resolve) }
    }

    @Test func eachLineIsAppliedOnceAndAgainChangesNothing() throws {
        let registry = poolRegistry(["10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"])
        let lines = """
            add pg/10.0.0.9:80,weight=2
            remove pg/10.0.0.3:80
            weight pg/10.0.0.2:80 5
            drain pg/10.0.0.1:80
            maint pg/10.0.0.2:80
            """
        #expect(try Self.replay(lines, on: registry) == Array(repeating: .applied, count: 5))
        let backends = registry.snapshot().backends
        #expect(backends.map(\.name) == ["10.0.0.1:80", "10.0.0.2:80", "10.0.0.9:80"], "at start nothing is connected: it goes at once")
        #expect(backends.map(\.admin) == [.drain, .maint, .ready])
        #expect(backends.map(\.spec.weight) == [1, 5, 2])
        #expect(try Self.replay(lines, on: registry) == Array(repeating: .changedNothing(note: ""), count: 5))
    }

    @Test func aRemovedBackendWithConnectionsDrainsAndAnAddCallsOffItsRemoval() throws {
        let registry = poolRegistry(["10.0.0.1:80"])
        registry.backend("10.0.0.1:80")!.stats.active.store(1, ordering: .relaxed)
        #expect(try Self.replay("remove pg/10.0.0.1:80", on: registry) == [.applied])
        #expect(registry.backend("10.0.0.1:80")?.removing == true)
        #expect(try Self.replay("add pg/10.0.0.1:80", on: registry) == [.applied])
        #expect(registry.backend("10.0.0.1:80")?.removing == false && registry.backend("10.0.0.1:80")?.id == 0)
    }

    @Test func linesOnBackendsThatAreGoneChangeNothing() throws {
        let registry = poolRegistry(["10.0.0.1:80"])
        let lines = "remove pg/10.0.0.8:80\nweight pg/10.0.0.8:80 3\ndrain pg/10.0.0.9:80"
        #expect(try Self.replay(lines, on: registry) == Array(repeating: .changedNothing(note: ""), count: 3))
        #expect(registry.version == 1)
    }

    @Test func aHostnameIsResolvedOnlyWhenItsBackendIsMissingAndAFailureIsNoted() throws {
        let registry = poolRegistry(["10.0.0.1:80"])
        #expect(try Self.replay("add pg/db.example:5432", on: registry) == [.changedNothing(note: " (cannot resolve db.example)")])
        let toTen: (Endpoint) throws(ConfigError) -> Endpoint = { endpoint in
            var resolved = endpoint
            resolved.address = IPAddress("10.0.0.5")
            return resolved
        }
        #expect(try Self.replay("add pg/db.example:5432", on: registry, resolve: toTen) == [.applied])
        #expect(registry.backend("db.example:5432")?.spec.endpoint.address == IPAddress("10.0.0.5"))
        let refuse: (Endpoint) throws(ConfigError) -> Endpoint = { _ throws(ConfigError) in throw ConfigError("not again") }
        #expect(try Self.replay("add pg/db.example:5432", on: registry, resolve: refuse) == [.changedNothing(note: "")],
                "present: nothing to resolve")
    }
}
