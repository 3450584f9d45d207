import Testing
@testable import SwitchyardCore

private func endpoint(_ text: String) -> Endpoint { try! Endpoint(parsing: text, allowPortZero: true) }
private func backend(_ text: String) -> BackendSpec { try! BackendSpec(parsing: text) }

private func service(_ name: String, listen: [String], backends: [String]) -> ServiceConfiguration {
    ServiceConfiguration(name: name, listen: listen.map(endpoint), backends: backends.map(backend))
}

@Test func identicalConfigurationsHaveNoDifference() {
    let a = Configuration(services: [service("a", listen: ["127.0.0.1:1"], backends: ["127.0.0.1:2"])])
    let difference = ConfigDifference(from: a, to: a)
    #expect(difference.isEmpty)
    #expect(difference.summary == ["no changes"])
}

@Test func addedAndRemovedServicesAreListedByName() {
    let old = Configuration(services: [
        service("keep", listen: ["127.0.0.1:1"], backends: ["127.0.0.1:2"]),
        service("gone", listen: ["127.0.0.1:3"], backends: ["127.0.0.1:4"]),
    ])
    let new = Configuration(services: [
        service("keep", listen: ["127.0.0.1:1"], backends: ["127.0.0.1:2"]),
        service("fresh", listen: ["127.0.0.1:5"], backends: ["127.0.0.1:6", "127.0.0.1:7"]),
    ])
    let difference = ConfigDifference(from: old, to: new)
    #expect(difference.addedServices.map(\.name) == ["fresh"])
    #expect(difference.removedServices == ["gone"])
    #expect(difference.changedServices.isEmpty)
    #expect(difference.summary == [
        "service fresh added: listening on 127.0.0.1:5, 2 backend(s)",
        "service gone removed: its listeners stop accepting, open connections finish",
    ])
}

@Test func backendsAreAddedRemovedAndReweighedWithinTheirService() {
    let old = Configuration(services: [service("pg", listen: ["127.0.0.1:1", "127.0.0.1:9"], backends: ["10.0.0.1:5432", "10.0.0.2:5432", "10.0.0.3:5432"])])
    let new = Configuration(services: [service("pg", listen: ["127.0.0.1:1", "127.0.0.1:8"], backends: ["10.0.0.1:5432", "10.0.0.2:5432,weight=5", "10.0.0.4:5432"])])
    let difference = ConfigDifference(from: old, to: new)
    let change = try! #require(difference.changedServices.first)
    #expect(difference.changedServices.count == 1)
    #expect(change.addedListeners == [endpoint("127.0.0.1:8")])
    #expect(change.removedListeners == [endpoint("127.0.0.1:9")])
    #expect(change.addedBackends == [backend("10.0.0.4:5432")])
    #expect(change.removedBackends == [endpoint("10.0.0.3:5432")])
    #expect(change.changedBackends == [.init(old: backend("10.0.0.2:5432"), new: backend("10.0.0.2:5432,weight=5"))])
    #expect(!change.settingsChanged && !change.healthChanged && change.balance == nil)
    #expect(difference.summary == [
        "pg: listening on 127.0.0.1:8",
        "pg: no longer listening on 127.0.0.1:9; open connections finish",
        "pg: backend 10.0.0.4:5432 added (weight 1)",
        "pg: backend 10.0.0.3:5432 removed (drains, then disappears once its connections end)",
        "pg: backend 10.0.0.2:5432 weight 1 -> 5",
    ])
}

@Test func algorithmTimeoutsHealthAndRestartOnlySettingsAreReported() {
    var before = service("a", listen: ["127.0.0.1:1"], backends: ["127.0.0.1:2"])
    var after = before
    after.balance = .ipHash
    after.idleTimeout = .seconds(60)
    after.health = nil
    before.health = HealthCheckConfig()
    var global = GlobalSettings()
    global.workers = 4
    let difference = ConfigDifference(from: Configuration(services: [before]), to: Configuration(global: global, services: [after]))
    let change = try! #require(difference.changedServices.first)
    #expect(change.balance?.old == .roundRobin && change.balance?.new == .ipHash)
    #expect(change.settingsChanged)
    #expect(change.healthChanged)
    #expect(difference.restartOnly == ["workers auto -> 4"])
    #expect(difference.summary.last == "not applied until restart: workers auto -> 4")
}

@Test func aConfigurationValidatesAcrossServices() {
    let twice = Configuration(services: [
        service("a", listen: ["127.0.0.1:1"], backends: ["127.0.0.1:2"]),
        service("b", listen: ["127.0.0.1:1"], backends: ["127.0.0.1:3"]),
    ])
    #expect(throws: ConfigIssue(path: [.key("services"), .key("b"), .key("listen"), .index(0)],
                                "listen address 127.0.0.1:1 is used by two services: 'a' and 'b'")) { try twice.validate() }
    // Port 0 asks the kernel for a port: two of them do not collide.
    let ephemeral = Configuration(services: [
        service("a", listen: ["127.0.0.1:0"], backends: ["127.0.0.1:2"]),
        service("b", listen: ["127.0.0.1:0"], backends: ["127.0.0.1:3"]),
    ])
    #expect(throws: Never.self) { try ephemeral.validate() }
}

// MARK: - The state file

@Test func overridesRecordAdminChangesAndWriteThemAsCommands() throws {
    var overrides = RuntimeOverrides()
    let a = BackendName(service: "pg", endpoint: endpoint("10.0.0.1:5432"))
    let b = BackendName(service: "pg", endpoint: endpoint("10.0.0.2:5432"))
    overrides.record(service: "pg", .drain(a))
    overrides.record(service: "pg", .weight(b, 5))
    overrides.record(service: "pg", .add(service: "pg", backend("10.0.0.3:5432,weight=2")))
    overrides.record(service: "pg", .remove(BackendName(endpoint: endpoint("10.0.0.9:5432"))))
    overrides.record(service: "redis", .maint(BackendName(endpoint: endpoint("10.0.1.1:6379"))))
    #expect(overrides.fileText == """
        \(RuntimeOverrides.header)
        drain pg/10.0.0.1:5432
        weight pg/10.0.0.2:5432 5
        add pg/10.0.0.3:5432,weight=2
        remove pg/10.0.0.9:5432
        maint redis/10.0.1.1:6379

        """)
    let reread = try RuntimeOverrides(parsing: overrides.fileText, file: "state")
    #expect(reread == overrides)
}

@Test func readyAndRemovingAnAddedBackendLeaveNothingBehind() {
    var overrides = RuntimeOverrides()
    let a = BackendName(service: "s", endpoint: endpoint("10.0.0.1:80"))
    overrides.record(service: "s", .drain(a))
    overrides.record(service: "s", .ready(a))
    overrides.record(service: "s", .add(service: "s", backend("10.0.0.5:80")))
    overrides.record(service: "s", .remove(BackendName(endpoint: endpoint("10.0.0.5:80"))))
    #expect(overrides.isEmpty)
    #expect(overrides.fileText == RuntimeOverrides.header + "\n")
}

@Test(arguments: [
    ("drain 10.0.0.1:80\n", 1, "must name its service"),
    ("# ok\nfrobnicate x\n", 2, "not a state line: unknown command 'frobnicate'"),
    ("show backends\n", 1, "expected add, remove, weight, drain or maint"),
    ("weight s/10.0.0.1:80 999\n", 1, "weight '999'"),
])
func aCorruptStateFileNamesTheLine(_ text: String, _ line: Int, _ message: String) {
    do {
        _ = try RuntimeOverrides(parsing: text, file: "/var/lib/switchyard/state")
        Issue.record("accepted")
    } catch {
        #expect(error.line == line)
        #expect(error.file == "/var/lib/switchyard/state")
        #expect(error.message.contains(message), "\(error)")
    }
}
