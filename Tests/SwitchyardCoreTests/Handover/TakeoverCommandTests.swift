import Testing
@testable import SwitchyardCore

@Suite struct TakeoverCommandTests {
    @Test(arguments: [
        ("takeover", TakeoverStep.begin),
        ("TAKEOVER", .begin),
        ("takeover commit", .commit),
        ("takeover  Commit\r", .commit),
    ])
    func takeoverStepsParse(line: String, step: TakeoverStep) throws {
        #expect(try AdminCommand(parsing: line) == .takeover(step))
    }

    @Test(arguments: ["takeover now", "takeover commit now", "takeover abort"])
    func otherTakeoverWordsAreRefusedWithTheUsage(line: String) {
        #expect(throws: AdminCommandError("usage: takeover, then takeover commit (internal: sent by 'switchyard serve --takeover')")) {
            try AdminCommand(parsing: line)
        }
    }

    /// The controller leaves both steps to the admin socket server, which holds the connection.
    @Test func theControllerHandsTakeoverStepsToTheServer() throws {
        let registry = BackendRegistry(backends: [], algorithm: .roundRobin)
        let controller = AdminController(registry: registry, processStats: { fatalError("unused") })
        #expect(controller.handle(line: "takeover", now: .now) == .takeover(.begin))
        #expect(controller.handle(line: "takeover commit", now: .now) == .takeover(.commit))
    }

    /// What a pending takeover holds off on other connections: whatever would make the handed
    /// state stale. Reading, waiting and closing connections go on.
    @Test(arguments: [
        ("drain a:1", true), ("ready a:1", true), ("maint a:1", true), ("weight a:1 2", true),
        ("add a:1", true), ("remove a:1", true), ("reload", true),
        ("help", false), ("show stats", false), ("show backends", false), ("show services json", false),
        ("wait a:1 1s", false), ("shutdown a:1", false), ("takeover", false), ("takeover commit", false),
    ])
    func changesThatAPendingTakeoverHoldsOff(line: String, held: Bool) throws {
        #expect(try AdminCommand(parsing: line).changesHandedOverState == held)
    }
}
