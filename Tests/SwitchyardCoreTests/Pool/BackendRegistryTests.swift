import Foundation
import Synchronization
import Testing
@testable import SwitchyardCore

/// What the racing threads saw, counted.
private final class RaceFindings: Sendable {
    /// An updater's own change was missing from the snapshot right after its update returned.
    let staleAfterAcknowledge = Atomic<Int>(0)
    /// The reader saw a published version below one it had seen before.
    let versionWentBack = Atomic<Int>(0)
    let updatersRunning: Atomic<Int>
    init(updaters: Int) { updatersRunning = Atomic(updaters) }
}

/// Updaters on several threads (as the health checker, the admin socket, DNS discovery and slow
/// start are) each change their own backend's weight many times. An update that has returned is
/// acknowledged: from then on the published snapshot must show it, and a reader must never see
/// the published version go back.
@Test func concurrentUpdatesArePublishedInVersionOrderAndTheLastAcknowledgedStateStays() {
    let updaters = 4
    let updatesEach = 3000
    let registry = BackendRegistry(
        backends: (0..<updaters).map { try! BackendSpec(parsing: "10.0.0.\($0 + 1):80") }, algorithm: .roundRobin)
    let endpoints = registry.snapshot().backends.map(\.spec.endpoint)
    let findings = RaceFindings(updaters: updaters)
    let finished = DispatchSemaphore(value: 0)

    // Threads of their own, not a pool that may be narrower than the number of threads.
    Thread {
        var last: UInt64 = 0
        while findings.updatersRunning.load(ordering: .acquiring) > 0 {
            let version = registry.snapshot().version
            if version < last { findings.versionWentBack.add(1, ordering: .relaxed) }
            last = max(last, version)
        }
        finished.signal()
    }.start()
    for thread in 0..<updaters {
        Thread {
            for update in 0..<updatesEach {
                let weight = update % 200 + 2  // never the initial 1: every update is a change
                _ = try? registry.apply(.setWeight(endpoints[thread], weight))
                // Only this thread changes this backend: the newest snapshot has this weight.
                if registry.snapshot().backends[thread].spec.weight != weight {
                    findings.staleAfterAcknowledge.add(1, ordering: .relaxed)
                }
            }
            findings.updatersRunning.subtract(1, ordering: .releasing)
            finished.signal()
        }.start()
    }
    for _ in 0...updaters { finished.wait() }

    #expect(findings.staleAfterAcknowledge.load(ordering: .relaxed) == 0, "an older snapshot replaced an acknowledged one")
    #expect(findings.versionWentBack.load(ordering: .relaxed) == 0, "the published version went back")
    let final = registry.snapshot()
    #expect(final.version == UInt64(1 + updaters * updatesEach))
    #expect(final.backends.map(\.spec.weight) == Array(repeating: (updatesEach - 1) % 200 + 2, count: updaters))
    #expect(registry.snapshotIfNewer(than: final.version) == nil)
}
