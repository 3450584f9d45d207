import Testing
@testable import SwitchyardCore

/// One scenario: results fed in order (`s` success, `f` failure) and the transitions expected,
/// written per step as `.` (none), `D3` (down after 3 checks) or `U2` (up after 2 checks).
struct HealthScenario: CustomTestStringConvertible, Sendable {
    var name: String
    var rise: Int
    var fall: Int
    var results: String
    var expected: String
    var testDescription: String { name }
}

private func run(_ scenario: HealthScenario) -> String {
    var state = HealthState(rise: scenario.rise, fall: scenario.fall)
    var trace: [String] = []
    for (step, symbol) in scenario.results.enumerated() {
        let result: HealthCheckResult = symbol == "s" ? .success(detail: "ok") : .failure(reason: "refused \(step)")
        switch state.record(result) {
        case nil: trace.append(".")
        case let .wentDown(reason, checks):
            #expect(reason == "refused \(step)", "the transition carries the failure that caused it")
            trace.append("D\(checks)")
        case let .wentUp(checks): trace.append("U\(checks)")
        }
    }
    return trace.joined(separator: " ")
}

@Test(arguments: [
    HealthScenario(name: "first check fails: down at once", rise: 2, fall: 3, results: "f", expected: "D1"),
    HealthScenario(name: "first check fails with fall 1", rise: 2, fall: 1, results: "f", expected: "D1"),
    HealthScenario(name: "first check passes: no transition, it was already up", rise: 2, fall: 3, results: "s", expected: "."),
    HealthScenario(name: "confirmed up needs fall consecutive failures", rise: 2, fall: 3, results: "sfff", expected: ". . . D3"),
    HealthScenario(name: "a success in between resets the failure run", rise: 2, fall: 3, results: "sffsfff", expected: ". . . . . . D3"),
    HealthScenario(name: "down needs rise consecutive successes", rise: 2, fall: 3, results: "fss", expected: "D1 . U2"),
    HealthScenario(name: "a failure in between resets the success run", rise: 3, fall: 2, results: "fssfsss", expected: "D1 . . . . . U3"),
    HealthScenario(name: "more failures while down change nothing", rise: 2, fall: 3, results: "ffff", expected: "D1 . . ."),
    HealthScenario(name: "more successes while up change nothing", rise: 2, fall: 3, results: "sssss", expected: ". . . . ."),
    HealthScenario(name: "rise 1 and fall 1 flip on every change", rise: 1, fall: 1, results: "sfsfs", expected: ". D1 U1 D1 U1"),
    HealthScenario(name: "after coming back up a single failure does not take it down", rise: 2, fall: 3, results: "fssf", expected: "D1 . U2 ."),
    HealthScenario(name: "after coming back up fall failures take it down again", rise: 2, fall: 2, results: "fssff", expected: "D1 . U2 . D2"),
])
func healthStateFollowsRiseAndFall(_ scenario: HealthScenario) {
    #expect(run(scenario) == scenario.expected)
}

@Test func passiveSuccessEndsAFailureRunButNeverRaisesADownBackend() {
    var state = HealthState(rise: 2, fall: 3)
    _ = state.record(.success(detail: "ok"))
    _ = state.record(.failure(reason: "x"))
    _ = state.record(.failure(reason: "x"))
    state.recordPassiveSuccess()
    #expect(state.failureRun == 0)
    #expect(state.record(.failure(reason: "x")) == nil, "the run started again at 1")

    var down = HealthState(rise: 2, fall: 3)
    _ = down.record(.failure(reason: "x"))
    down.recordPassiveSuccess()
    down.recordPassiveSuccess()
    #expect(!down.isUp)
    #expect(down.phase == .down)
}

@Test func passiveSuccessDoesNotConfirmAnUncheckedBackend() {
    var state = HealthState(rise: 2, fall: 3)
    state.recordPassiveSuccess()
    #expect(state.phase == .upUnconfirmed)
    #expect(state.record(.failure(reason: "x")) == .wentDown(reason: "x", checks: 1))
}
