import Dispatch
import Foundation
import Synchronization
import Testing
@testable import SwitchyardCore

/// What every `--balance` choice must do, whatever its scheme.
@Suite struct BalancerConformanceTests {
    /// Six backends, weights 1, 0, 2, 1, 3, 1: 1 has weight 0, 2 is draining, 3 is in
    /// maintenance and 5 is down, so only 0 and 4 may be picked.
    private static func mixedRegistry(_ algorithm: BalanceAlgorithm) throws -> BackendRegistry {
        let specs = try [1, 0, 2, 1, 3, 1].enumerated().map { index, weight in
            try BackendSpec(parsing: "127.0.0.1:\(8000 + index),weight=\(weight)")
        }
        let registry = BackendRegistry(backends: specs, algorithm: algorithm)
        try registry.apply([
            .setAdminState(specs[2].endpoint, .drain),
            .setAdminState(specs[3].endpoint, .maint),
            .healthVerdict(backendID: 5, HealthVerdict(isUp: false, lastCheck: "connection refused")),
        ])
        return registry
    }

    /// Client keys as workers make them: StableHash of an IPv4 address.
    private static func clientKey(_ n: Int) -> UInt64 {
        StableHash.hash(low: UInt64(0x0100_000A &+ (n << 24)), byteCount: 4)
    }

    @Test(arguments: BalanceAlgorithm.allCases)
    func neverPicksABackendThatIsNotSelectableOrHasWeightZero(algorithm: BalanceAlgorithm) throws {
        let snapshot = try Self.mixedRegistry(algorithm).snapshot()
        var balancer = snapshot.balancer
        var seen: Set<Int> = []
        for n in 0..<2_000 {
            let pick = balancer.pick(clientKey: Self.clientKey(n), excluding: TriedBackends())
            seen.insert(try #require(pick))
        }
        #expect(seen == [0, 4])
    }

    @Test(arguments: BalanceAlgorithm.allCases)
    func returnsNilWhenNoBackendIsSelectable(algorithm: BalanceAlgorithm) throws {
        let registry = try Self.mixedRegistry(algorithm)
        let endpoints = registry.snapshot().backends.map(\.spec.endpoint)
        try registry.apply([
            .setAdminState(endpoints[0], .drain),
            .healthVerdict(backendID: 4, HealthVerdict(isUp: false, lastCheck: "timeout")),
        ])
        #expect(!registry.snapshot().anySelectable)
        var balancer = registry.snapshot().balancer
        for n in 0..<50 {
            #expect(balancer.pick(clientKey: Self.clientKey(n), excluding: TriedBackends()) == nil)
        }
        var empty = algorithm.makeBalancer([])
        #expect(empty.pick(clientKey: 1, excluding: TriedBackends()) == nil)
    }

    @Test(arguments: BalanceAlgorithm.allCases)
    func retryAfterAFailedConnectGetsAnotherBackendUntilNoneIsLeft(algorithm: BalanceAlgorithm) {
        var balancer = algorithm.makeBalancer(makeBackends(weights: [1, 2, 1, 1]))
        for n in 0..<200 {
            let key = Self.clientKey(n)
            var failed = TriedBackends()
            while let pick = balancer.pick(clientKey: key, excluding: failed) {
                #expect(!failed.contains(pick))
                failed.insert(pick)
            }
            #expect(Set(failed.indices) == [0, 1, 2, 3])
        }
    }

    /// A worker adopts each new snapshot between picks while another thread flips backends between
    /// ready, drain, maint and down; every pick must be selectable in the snapshot it came from.
    @Test(arguments: BalanceAlgorithm.allCases)
    func picksStayValidWhileSnapshotsAreSwappedMidStream(algorithm: BalanceAlgorithm) throws {
        let registry = try Self.mixedRegistry(algorithm)
        let endpoints = registry.snapshot().backends.map(\.spec.endpoint)
        let stop = Atomic(false)
        let finished = DispatchSemaphore(value: 0)
        // Its own thread: the global queues do not add a thread while the picking loop keeps the
        // cores busy, and the flipper would never run.
        let flipper = Thread {
            defer { finished.signal() }
            var round = 0
            while !stop.load(ordering: .relaxed) {
                round += 1
                let target = round % 6
                _ = try? registry.apply([
                    .setAdminState(endpoints[target], AdminState.allCases[(round / 6) % 3]),
                    .healthVerdict(backendID: target, HealthVerdict(isUp: round % 5 != 0, lastCheck: "flip \(round)")),
                ])
            }
        }
        flipper.start()
        defer {
            stop.store(true, ordering: .relaxed)
            finished.wait()
        }

        var snapshot = registry.snapshot()
        var balancer = snapshot.balancer
        var adopted = 0
        var picked = 0
        var n = 0
        // At least 20 000 picks and 20 adopted snapshots: the flipper may start late on a busy machine.
        while n < 20_000 || (adopted < 20 && n < 20_000_000) {
            n += 1
            if let newer = registry.snapshotIfNewer(than: snapshot.version) {
                snapshot = newer
                balancer = newer.balancer
                adopted += 1
            }
            if let pick = balancer.pick(clientKey: Self.clientKey(n), excluding: TriedBackends()) {
                #expect(snapshot.backends[pick].selectable, "picked \(pick) in snapshot \(snapshot.version)")
                picked += 1
            } else {
                #expect(!snapshot.anySelectable, "nil with a selectable backend in snapshot \(snapshot.version)")
            }
        }
        #expect(adopted >= 20, "the flipper thread published only \(adopted) snapshots during the picks")
        #expect(picked > 0)
    }
}
