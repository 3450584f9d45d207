import Synchronization
import Testing
@testable import SwitchyardCore

@Suite struct InstanceReadinessTests {
    static let stats = ProcessStats(uptime: .seconds(1), workers: 1, relayMode: "auto", balance: "round-robin",
                                    openConnections: 0, totalConnections: 0, bytesFromClients: 0, bytesToClients: 0)

    @Test func instanceDrainAndReadyParseAndOtherWordsAreRefused() throws {
        #expect(try AdminCommand(parsing: "instance drain") == .instance(.drain))
        #expect(try AdminCommand(parsing: "INSTANCE Ready") == .instance(.ready))
        #expect(throws: AdminCommandError("missing arguments; usage: instance drain|ready")) { try AdminCommand(parsing: "instance") }
        #expect(throws: AdminCommandError("unknown instance change 'maint'; usage: instance drain|ready")) {
            try AdminCommand(parsing: "instance maint")
        }
        #expect(throws: AdminCommandError("too many arguments; usage: instance drain|ready")) { try AdminCommand(parsing: "instance drain now") }
    }

    @Test func readinessChangesAreNotReadOnlyAndWaitForAPendingTakeover() throws {
        let command = try AdminCommand(parsing: "instance drain")
        #expect(!command.isReadOnly)
        #expect(command.changesHandedOverState)
        #expect(AdminCommand.usage.contains { $0.hasPrefix("instance drain ") })
        #expect(AdminCommand.usage.contains { $0.hasPrefix("instance ready ") })
    }

    @Test func healthzIsReadyOnlyWhileTheInstanceIsReadyAndSomeBackendIsSelectable() {
        #expect(InstanceReadiness.ready.healthz(anyBackendSelectable: true) == (true, "ok\n"))
        #expect(InstanceReadiness.ready.healthz(anyBackendSelectable: false) == (false, "no backend is selectable\n"))
        for readiness in [InstanceReadiness.drained, .stopping] {
            for selectable in [true, false] {
                let answer = readiness.healthz(anyBackendSelectable: selectable)
                #expect(!answer.ok)
                #expect(answer.body.hasPrefix("instance \(readiness.rawValue)"))
            }
        }
    }

    @Test func theControllerHandsTheChangeToTheInstanceAndShowStatsCarriesTheState() throws {
        let registry = BackendRegistry(backends: [], algorithm: .roundRobin)
        let asked = Mutex<[InstanceReadinessChange]>([])
        let controller = AdminController(
            services: { [AdminService(name: registry.service, registry: registry)] },
            processStats: {
                var stats = Self.stats
                stats.instance = .drained
                return stats
            },
            changeReadiness: { change in
                asked.withLock { $0.append(change) }
                return .success(["done"])
            })
        guard case let .reply(reply) = controller.handle(line: "instance drain", now: .now) else { Issue.record("no reply"); return }
        #expect(reply == .success(["done"]))
        #expect(asked.withLock { $0 } == [.drain])
        guard case let .reply(stats) = controller.handle(line: "show stats json", now: .now) else { Issue.record("no reply"); return }
        #expect(stats.body.first?.contains(#""instance":"drained""#) == true)
        // Without an instance behind it (a test, a tool), the controller says so.
        let bare = AdminController(services: { [] }, processStats: { Self.stats })
        guard case let .reply(refused) = bare.handle(line: "instance ready", now: .now) else { Issue.record("no reply"); return }
        #expect(refused.error == "this process has no instance readiness to change")
    }

    @Test func aDrainedInstanceHandsItsDrainOverAndAReadyOneWritesNoLine() throws {
        var message = HandoverMessage(processID: 7, descriptorCount: 0, listeners: [])
        #expect(!message.text.contains("instance"))
        #expect(try HandoverMessage(parsing: message.text, descriptorCount: 0).instanceDrained == false)
        message.instanceDrained = true
        #expect(message.text.contains("\ninstance drained\n"))
        #expect(try HandoverMessage(parsing: message.text, descriptorCount: 0) == message)
        let twice = message.text.replacing("instance drained\n", with: "instance drained\ninstance drained\n")
        #expect(throws: HandoverError.self) { try HandoverMessage(parsing: twice, descriptorCount: 0) }
    }
}
