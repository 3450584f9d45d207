import Synchronization
import Testing
@testable import SwitchyardCore

private let stats = ProcessStats(
    uptime: .seconds(1), workers: 1, relayMode: "auto", balance: "per service",
    openConnections: 0, totalConnections: 0, bytesFromClients: 0, bytesToClients: 0)

/// Two services that share one backend address, as a primary and a replica pool might.
/// Collects what the controller reports to `recordChange`.
private final class Recorder: Sendable {
    private let lines = Mutex<[String]>([])
    func append(_ line: String) { lines.withLock { $0.append(line) } }
    var all: [String] { lines.withLock { $0 } }
}

private func makeController(recorded: Recorder? = nil) -> AdminController {
    let primary = AdminService(
        name: "pg-primary",
        registry: BackendRegistry(backends: [try! BackendSpec(parsing: "10.0.0.1:5432"), try! BackendSpec(parsing: "10.0.0.9:5432")],
                                  algorithm: .leastConnections, service: "pg-primary"),
        listeners: ["127.0.0.1:5000"])
    let replicas = AdminService(
        name: "pg-replicas",
        registry: BackendRegistry(backends: [try! BackendSpec(parsing: "10.0.0.2:5432"), try! BackendSpec(parsing: "10.0.0.9:5432")],
                                  algorithm: .roundRobin, service: "pg-replicas"),
        listeners: ["127.0.0.1:5001", "127.0.0.1:5002"])
    return AdminController(
        services: { [primary, replicas] }, processStats: { stats },
        recordChange: { service, command in recorded?.append("\(service): \(command)") })
}

private func reply(_ controller: AdminController, _ line: String) -> AdminReply {
    guard case let .reply(reply) = controller.handle(line: line, now: .now) else { return .failure("wait") }
    return reply
}

private func state(_ controller: AdminController, _ service: String, _ address: String) -> BackendState? {
    controller.services().first { $0.name == service }?.registry.snapshot().backends.first { $0.spec.endpoint.description == address }
}

@Test func aBareAddressIsAcceptedWhereOnlyOneServiceHasIt() {
    let controller = makeController()
    #expect(reply(controller, "drain 10.0.0.2:5432").ok)
    #expect(state(controller, "pg-replicas", "10.0.0.2:5432")?.admin == .drain)
}

@Test func anAmbiguousBareAddressNamesTheCandidatesAndChangesNothing() {
    let controller = makeController()
    #expect(reply(controller, "drain 10.0.0.9:5432") == .failure(
        "'10.0.0.9:5432' is a backend of several services; name one: pg-primary/10.0.0.9:5432, pg-replicas/10.0.0.9:5432"))
    #expect(state(controller, "pg-primary", "10.0.0.9:5432")?.admin == .ready)
    #expect(state(controller, "pg-replicas", "10.0.0.9:5432")?.admin == .ready)
    #expect(reply(controller, "drain pg-replicas/10.0.0.9:5432") == .success(
        ["pg-replicas/10.0.0.9:5432 ready -> drain; 0 open connections will finish"]))
    #expect(state(controller, "pg-replicas", "10.0.0.9:5432")?.admin == .drain)
    #expect(state(controller, "pg-primary", "10.0.0.9:5432")?.admin == .ready)
}

@Test func unknownServicesAndBackendsAreNamed() {
    let controller = makeController()
    #expect(reply(controller, "drain nope/10.0.0.1:5432") == .failure("unknown service 'nope'; 'show services' lists them"))
    #expect(reply(controller, "drain pg-replicas/10.0.0.1:5432") == .failure(
        "unknown backend 'pg-replicas/10.0.0.1:5432'; 'show backends pg-replicas' lists them"))
    #expect(reply(controller, "show backends nope") == .failure("unknown service 'nope'; 'show services' lists them"))
}

@Test func addNeedsAServiceWhenThereAreSeveral() {
    let recorded = Recorder()
    let controller = makeController(recorded: recorded)
    #expect(reply(controller, "add 10.0.0.3:5432") == .failure(
        "name the service: add SERVICE/10.0.0.3:5432 (services: pg-primary, pg-replicas)"))
    #expect(reply(controller, "add pg-replicas/10.0.0.3:5432,weight=4") == .success(
        ["added pg-replicas/10.0.0.3:5432 with weight 4 as backend 2"]))
    #expect(state(controller, "pg-replicas", "10.0.0.3:5432")?.spec.weight == 4)
    #expect(state(controller, "pg-primary", "10.0.0.3:5432") == nil)
    #expect(recorded.all.count == 1)
}

@Test func changesThatTheStateFileKeepsAreRecordedWithTheirService() {
    let recorded = Recorder()
    let controller = makeController(recorded: recorded)
    _ = reply(controller, "drain 10.0.0.1:5432")
    _ = reply(controller, "weight pg-replicas/10.0.0.9:5432 7")
    _ = reply(controller, "shutdown 10.0.0.1:5432")
    _ = reply(controller, "show backends")
    _ = reply(controller, "drain nope/10.0.0.1:5432")
    let lines = recorded.all
    #expect(lines.count == 2, "\(lines)")
    #expect(lines.first?.hasPrefix("pg-primary: drain") == true)
    #expect(lines.last?.hasPrefix("pg-replicas: weight") == true)
}

@Test func showServicesListsListenersAlgorithmsAndCounts() {
    let controller = makeController()
    _ = reply(controller, "drain 10.0.0.2:5432")
    #expect(reply(controller, "show services").body == [
        "SERVICE      LISTEN                         BALANCE      BACKENDS  UP  SELECTABLE  ACTIVE  TOTAL  TIERS",
        "pg-primary   127.0.0.1:5000                 least-conn   2         2   2           0       0      0:100%",
        "pg-replicas  127.0.0.1:5001,127.0.0.1:5002  round-robin  2         2   1           0       0      0:100%",
    ])
    #expect(reply(controller, "show services json").body == [
        "{\"services\":[{\"name\":\"pg-primary\",\"listen\":[\"127.0.0.1:5000\"],\"balance\":\"least-conn\",\"backends\":2,"
            + "\"backends_up\":2,\"backends_selectable\":2,\"active\":0,\"total\":0,\"queued\":0,"
            + "\"tiers\":[{\"tier\":\"0\",\"priority\":0,\"backends\":2,\"selectable\":2,\"healthy_weight\":2,\"weight\":2,\"share\":1.000,\"taking_clients\":true}]},"
            + "{\"name\":\"pg-replicas\",\"listen\":[\"127.0.0.1:5001\",\"127.0.0.1:5002\"],\"balance\":\"round-robin\","
            + "\"backends\":2,\"backends_up\":2,\"backends_selectable\":1,\"active\":0,\"total\":0,\"queued\":0,"
            + "\"tiers\":[{\"tier\":\"0\",\"priority\":0,\"backends\":2,\"selectable\":1,\"healthy_weight\":1,\"weight\":2,\"share\":1.000,\"taking_clients\":true}]}]}",
    ])
}

@Test func showBackendsOfOneServiceListsOnlyItsBackends() {
    let controller = makeController()
    let text = reply(controller, "show backends pg-replicas json").body.joined()
    #expect(text.contains("\"address\":\"10.0.0.2:5432\""))
    #expect(!text.contains("10.0.0.1:5432"))
    #expect(text.contains("\"service\":\"pg-replicas\""))
}

@Test func reloadWithoutAFileSaysSo() {
    let controller = makeController()
    #expect(reply(controller, "reload") == .failure("this instance was started without --config: there is no file to reload"))
}
