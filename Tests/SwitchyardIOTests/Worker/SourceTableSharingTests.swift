import Foundation
import Synchronization
import SwitchyardCore
import Testing
@testable import SwitchyardIO

/// The instance's shared source table under threads racing as workers do: a per-source limit
/// holds exactly, and every admission released brings the count back to zero.
@Suite struct SourceTableSharingTests {
    private static func key(_ last: UInt64, service: UInt32 = 1) -> SourceKey {
        SourceKey(high: 0, low: 0xFFFF_7F00_0000 | last, service: service)
    }

    /// Runs `body(thread)` on `threads` threads at once and waits for all of them.
    private static func race(threads: Int, _ body: @escaping @Sendable (Int) -> Void) {
        let group = DispatchGroup()
        for thread in 0..<threads {
            group.enter()
            Thread.detachNewThread {
                body(thread)
                group.leave()
            }
        }
        group.wait()
    }

    @Test func aLimitIsExactWhenFourThreadsAdmitAtOnce() {
        let table = SourceTable(entries: 1024)
        let key = Self.key(2)
        let admitted = Atomic<Int>(0)
        let refused = Atomic<Int>(0)
        Self.race(threads: 4) { _ in
            for _ in 0..<500 {
                let (_, admission) = table.withSet(of: key) { set in set.admit(key, now: 1, limits: SourceLimits(maxOpen: 700)) }
                switch admission {
                case .admitted: admitted.add(1, ordering: .relaxed)
                case .refused(.sourceLimit): refused.add(1, ordering: .relaxed)
                default: Issue.record("unexpected \(admission)")
                }
            }
        }
        #expect(admitted.load(ordering: .relaxed) == 700)
        #expect(refused.load(ordering: .relaxed) == 1300)
        let row = table.busiest(service: nil, now: 1).first
        #expect(row?.entry.open == 700 && row?.entry.refusals == 1300)
    }

    @Test func admissionsReleasedFromOtherThreadsLeaveNothingOpen() {
        let table = SourceTable(entries: 64)
        Self.race(threads: 4) { thread in
            for round in 0..<2000 {
                let key = Self.key(UInt64(round % 40), service: UInt32(thread % 2) + 1)
                let (set, admission) = table.withSet(of: key) { set in set.admit(key, now: Int64(round), limits: SourceLimits()) }
                guard case let .admitted(way) = admission else { continue }
                table.withSet(set) { set in set.release(way: way, key: key, now: Int64(round)) }
            }
        }
        #expect(table.busiest(service: nil, now: 2000, window: .max).allSatisfy { $0.entry.open == 0 })
        #expect(table.entryCount == 64 && table.byteCount == 64 * 64)
    }

    @Test func theDefaultTableIsFourMebibytes() {
        let table = SourceTable(entries: GlobalSettings.defaultSourceTableSize)
        #expect(table.entryCount == 65_536)
        #expect(table.byteCount == 4 << 20)
    }
}
