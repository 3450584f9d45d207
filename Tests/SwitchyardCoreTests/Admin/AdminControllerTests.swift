import Testing
@testable import SwitchyardCore

private let stats = ProcessStats(
    uptime: .seconds(42), workers: 2, relayMode: "splice", balance: "round-robin",
    openConnections: 3, totalConnections: 10, bytesFromClients: 100, bytesToClients: 200)

private func makeController(_ names: [String] = ["10.0.0.1:80", "10.0.0.2:80"]) -> AdminController {
    let registry = BackendRegistry(backends: names.map { try! BackendSpec(parsing: $0) }, algorithm: .roundRobin)
    return AdminController(registry: registry, processStats: { stats }, lastCheckText: { $0 == 0 ? "connected in 0.2ms" : nil })
}

private func reply(_ controller: AdminController, _ line: String) -> AdminReply {
    guard case let .reply(reply) = controller.handle(line: line, now: .now) else {
        Issue.record("'\(line)' started a wait")
        return .failure("wait")
    }
    return reply
}

private func backend(_ controller: AdminController, _ name: String) -> BackendState? {
    controller.services()[0].registry.snapshot().backends.first { $0.spec.endpoint.description == name }
}

@Test func drainReadyAndMaintChangeTheAdminStateInTheSnapshot() {
    let controller = makeController()
    #expect(reply(controller, "drain 10.0.0.1:80") == .success(["10.0.0.1:80 ready -> drain; 0 open connections will finish"]))
    #expect(backend(controller, "10.0.0.1:80")?.admin == .drain)
    #expect(backend(controller, "10.0.0.1:80")?.selectable == false)
    #expect(reply(controller, "maint 10.0.0.1:80").ok)
    #expect(backend(controller, "10.0.0.1:80")?.admin == .maint)
    #expect(reply(controller, "ready 10.0.0.1:80") == .success(["10.0.0.1:80 maint -> ready"]))
    #expect(backend(controller, "10.0.0.1:80")?.selectable == true)
}

@Test func commandsOnUnknownBackendsFailAndChangeNothing() {
    let controller = makeController()
    let version = controller.services()[0].registry.snapshot().version
    for line in ["drain 10.9.9.9:80", "ready 10.9.9.9:80", "maint 10.9.9.9:80", "weight 10.9.9.9:80 3",
                 "remove 10.9.9.9:80", "shutdown 10.9.9.9:80", "wait 10.9.9.9:80 1s"] {
        #expect(reply(controller, line) == .failure("unknown backend '10.9.9.9:80'; 'show backends' lists them"), "\(line)")
    }
    #expect(controller.services()[0].registry.snapshot().version == version)
}

@Test func weightChangesTheSpec() {
    let controller = makeController()
    #expect(reply(controller, "weight 10.0.0.2:80 7") == .success(["10.0.0.2:80 weight 1 -> 7"]))
    #expect(backend(controller, "10.0.0.2:80")?.spec.weight == 7)
}

@Test func addGivesANewIDAndRefusesDuplicates() {
    let controller = makeController()
    #expect(reply(controller, "add 10.0.0.3:80,weight=4") == .success(["added 10.0.0.3:80 with weight 4 as backend 2"]))
    #expect(backend(controller, "10.0.0.3:80")?.health == .assumedUp)
    #expect(reply(controller, "add 10.0.0.3:80") == .failure("backend '10.0.0.3:80' already exists; use 'weight' or 'ready' to change it"))
}

@Test func removeRefusesWhileConnectionsAreOpenAndSaysToDrainAndWait() {
    let controller = makeController()
    backend(controller, "10.0.0.1:80")!.stats.active.store(2, ordering: .relaxed)
    #expect(reply(controller, "remove 10.0.0.1:80") == .failure(
        "10.0.0.1:80 has 2 open connections; send 'drain 10.0.0.1:80', then 'wait 10.0.0.1:80 60s', then remove it"))
    #expect(backend(controller, "10.0.0.1:80") != nil)
    backend(controller, "10.0.0.1:80")!.stats.active.store(0, ordering: .relaxed)
    #expect(reply(controller, "remove 10.0.0.1:80") == .success(["removed 10.0.0.1:80"]))
    #expect(backend(controller, "10.0.0.1:80") == nil)
    #expect(reply(controller, "add 10.0.0.1:80").body == ["added 10.0.0.1:80 with weight 1 as backend 2"], "ids are never reused")
}

@Test func shutdownBumpsTheEpoch() {
    let controller = makeController()
    #expect(reply(controller, "shutdown 10.0.0.2:80") == .success(["closing 0 open connections to 10.0.0.2:80"]))
    #expect(reply(controller, "shutdown 10.0.0.2:80").ok)
    #expect(backend(controller, "10.0.0.2:80")?.shutdownEpoch == 2)
}

@Test func waitAnswersAtOnceWhenIdleAndOtherwiseWhenConnectionsEndOrTimeRunsOut() {
    let controller = makeController()
    #expect(reply(controller, "wait 10.0.0.1:80 5s") == .success(["10.0.0.1:80 has no open connections"]))

    let stats = backend(controller, "10.0.0.1:80")!.stats
    stats.active.store(1, ordering: .relaxed)
    let start = ContinuousClock.now
    guard case let .wait(pending) = controller.handle(line: "wait 10.0.0.1:80 5s", now: start) else {
        Issue.record("expected a pending wait")
        return
    }
    #expect(controller.poll(pending, now: start + .seconds(1)) == nil)
    #expect(controller.poll(pending, now: start + .seconds(5)) == .failure(
        "10.0.0.1:80 still has 1 open connection after 5s",
        ["10.0.0.1:80 is still ready and takes new connections; send 'drain 10.0.0.1:80' first"]))
    stats.active.store(0, ordering: .relaxed)
    #expect(controller.poll(pending, now: start + .seconds(2)) == .success(["10.0.0.1:80 has no open connections"]))
}

@Test func showBackendsAsTextAndJSONUseTheAdminIssuesFieldNames() {
    let controller = makeController()
    _ = reply(controller, "drain 10.0.0.2:80")
    let text = reply(controller, "show backends")
    #expect(text.ok)
    #expect(text.body == [
        "SERVICE  ID  ADDRESS      WEIGHT  STATE  HEALTH  ACTIVE  TOTAL  FAILURES  TO_BACKEND  FROM_BACKEND  CONN/S  CONNECT_P50_MS  CONNECT_P99_MS  LAST_CHECK",
        "default  0   10.0.0.1:80  1       ready  up      0       0      0         0           0             0.000   -               -               connected in 0.2ms",
        "default  1   10.0.0.2:80  1       drain  up      0       0      0         0           0             0.000   -               -               not checked yet",
    ])
    let json = reply(controller, "show backends json")
    #expect(json.body == [
        "{\"backends\":[{\"id\":0,\"service\":\"default\",\"address\":\"10.0.0.1:80\",\"weight\":1,\"state\":\"ready\","
            + "\"health\":\"up\",\"selectable\":true,\"removing\":false,"
            + "\"last_check\":\"connected in 0.2ms\",\"active\":0,\"total\":0,\"failures\":0,\"bytes_to_backend\":0,"
            + "\"bytes_from_backend\":0,\"shutdown_epoch\":0,\"connect_p50_ms\":null,\"connect_p99_ms\":null,\"conn_per_sec\":0.000,\"backup\":false,\"priority\":0,\"max_connections\":null,\"ramping\":false},"
            + "{\"id\":1,\"service\":\"default\",\"address\":\"10.0.0.2:80\",\"weight\":1,\"state\":\"drain\","
            + "\"health\":\"up\",\"selectable\":false,\"removing\":false,"
            + "\"last_check\":\"not checked yet\",\"active\":0,\"total\":0,\"failures\":0,\"bytes_to_backend\":0,"
            + "\"bytes_from_backend\":0,\"shutdown_epoch\":0,\"connect_p50_ms\":null,\"connect_p99_ms\":null,\"conn_per_sec\":0.000,\"backup\":false,\"priority\":0,\"max_connections\":null,\"ramping\":false}]}",
    ])
}

@Test func showStatsAsTextAndJSON() {
    let controller = makeController()
    #expect(reply(controller, "show stats").body.contains("uptime 42s"))
    #expect(reply(controller, "show stats json").body == [
        "{\"pid\":0,\"uptime_seconds\":42,\"workers\":2,\"relay\":\"splice\",\"balance\":\"round-robin\",\"services\":1,"
            + "\"accepting\":true,\"instance\":\"ready\",\"open_connections\":3,"
            + "\"total_connections\":10,\"bytes_from_clients\":100,\"bytes_to_clients\":200,\"backends\":2,"
            + "\"backends_up\":2,\"backends_selectable\":2,\"version\":\"\",\"commit\":\"\",\"source_port_exhausted\":0}",
    ])
}

@Test func parseErrorsBecomeErrorReplies() {
    let controller = makeController()
    #expect(reply(controller, "nope") == .failure("unknown command 'nope'; send 'help' for the list"))
    #expect(reply(controller, "help").body == AdminCommand.usage)
}
