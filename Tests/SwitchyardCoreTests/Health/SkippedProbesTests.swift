import Testing
@testable import SwitchyardCore

@Suite struct SkippedProbesTests {
    @Test func theFirstSkipWarnsAtOnceAndLaterOnesAtMostOncePerInterval() {
        var skipped = SkippedProbes(warningInterval: .seconds(30))
        let start = ContinuousClock.now
        #expect(skipped.skipped(at: start) == 1)
        // Two backends, a round every 50 ms for 29.9 s: nothing more until the interval is over.
        var warnings: [Int] = []
        for round in 1..<598 {
            for _ in 0..<2 {
                if let count = skipped.skipped(at: start + .milliseconds(50 * round)) { warnings.append(count) }
            }
        }
        #expect(warnings.isEmpty)
        // The next warning counts every probe skipped since the first one.
        #expect(skipped.skipped(at: start + .seconds(30)) == 597 * 2 + 1)
        #expect(skipped.skipped(at: start + .seconds(31)) == nil)
        #expect(skipped.skipped(at: start + .seconds(60)) == 2)
    }
}
