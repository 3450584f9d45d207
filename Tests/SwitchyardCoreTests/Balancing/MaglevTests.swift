import Testing
@testable import SwitchyardCore

@Suite struct MaglevTableTests {
    /// Pinned so that any change to the hash, the seeds or the fill order shows up: such a change
    /// moves every client of every deployed instance. Cross-checked against an independent script
    /// (Scripts/maglev-crosscheck.py).
    @Test func smallTableIsPinned() {
        let table = MaglevTable(backends: makeBackends(weights: [1, 1, 1]), size: 13)
        #expect(table.entries == pinned13)
    }

    @Test func smallWeightedTableIsPinned() {
        let table = MaglevTable(backends: makeBackends(weights: [1, 2, 4]), size: 17)
        #expect(table.entries == pinned17)
    }

    @Test func twoBuildsOfTheSameBackendsAreEqualWhateverTheirOrder() {
        let backends = makeBackends(weights: [3, 1, 2, 5, 1])
        let first = MaglevTable(backends: backends)
        let second = MaglevTable(backends: backends)
        #expect(first.entries == second.entries)

        let reversed = MaglevTable(backends: Array(backends.reversed()))
        let last = Int32(backends.count - 1)
        #expect(reversed.entries.map { last - $0 } == first.entries)
    }

    @Test func everySlotIsOwnedByASelectableBackend() {
        let table = MaglevTable(backends: makeBackends(weights: [1, 0, 1, 1], unselectable: [2]), size: 251)
        #expect(table.entries.count == 251)
        #expect(Set(table.entries) == [0, 3])
        #expect(table.members == [0, 3])
    }

    @Test func noSelectableBackendGivesAnEmptyTable() {
        let table = MaglevTable(backends: makeBackends(weights: [1, 1], unselectable: [0, 1]))
        #expect(table.entries.isEmpty)
        #expect(table.backend(for: 12345, excluding: TriedBackends()) == nil)
    }

    @Test(arguments: [[1, 1, 1], [1, 2, 3, 4], [1, 256], [7, 3, 9, 1, 1, 20, 5, 5]])
    func eachBackendsShareIsWithinOnePercentOfItsWeightsShare(weights: [Int]) {
        let table = MaglevTable(backends: makeBackends(weights: weights))
        var slots = Array(repeating: 0, count: weights.count)
        for owner in table.entries { slots[Int(owner)] += 1 }
        let total = Double(weights.reduce(0, +))
        for (i, weight) in weights.enumerated() {
            let share = Double(slots[i]) / Double(table.size)
            #expect(abs(share - Double(weight) / total) <= 0.01, "backend \(i): \(share) of slots for weight \(weight)")
        }
    }

    /// Removing one of N backends must move its clients and, ideally, no one else's. Maglev trades
    /// a little extra movement for even shares; the paper measures it, and so do we.
    @Test(arguments: [5, 10, 50])
    func removingOneBackendMovesMostlyOnlyItsClients(count: Int) {
        let before = makeBackends(weights: Array(repeating: 1, count: count))
        let leaving = count / 2
        var after = before
        after.remove(at: leaving)
        let old = MaglevTable(backends: before)
        let new = MaglevTable(backends: after)
        // Compare by identity: positions after `leaving` shift down by one.
        func identity(_ owner: Int32, in backends: [BalancerBackend]) -> UInt64 { backends[Int(owner)].key }

        var moved = 0
        var movedFromRemaining = 0
        for slot in 0..<old.size {
            let was = identity(old.entries[slot], in: before)
            let now = identity(new.entries[slot], in: after)
            guard was != now else { continue }
            moved += 1
            if was != before[leaving].key { movedFromRemaining += 1 }
        }
        let movedShare = Double(moved) / Double(old.size)
        let collateralShare = Double(movedFromRemaining) / Double(old.size)
        #expect(movedShare <= 1.0 / Double(count) + 0.01, "moved \(movedShare) with \(count) backends")
        // Every slot of the leaving backend moves, and only a sliver of the others'.
        #expect(moved - movedFromRemaining == old.entries.filter { $0 == Int32(leaving) }.count)
        #expect(collateralShare <= 0.01, "\(movedFromRemaining) slots of remaining backends moved")
    }
}

@Suite struct MaglevBalancerTests {
    @Test func aClientKeepsItsBackendAcrossPicksAndWorkerCopies() {
        let prototype = MaglevBalancer(backends: makeBackends(weights: [1, 1, 1, 1]))
        for client in 0..<100 {
            let key = StableHash.hash(low: UInt64(0x0A00_0000 + client), byteCount: 4)
            var worker1 = prototype
            var worker2 = prototype
            let first = worker1.pick(clientKey: key, excluding: TriedBackends())
            #expect(first != nil)
            #expect(worker1.pick(clientKey: key, excluding: TriedBackends()) == first)
            #expect(worker2.pick(clientKey: key, excluding: TriedBackends()) == first)
        }
    }

    @Test func pickReadsTheClientsSlot() {
        var balancer = MaglevBalancer(backends: makeBackends(weights: [1, 1, 1]), tableSize: 13)
        for key: UInt64 in [0, 5, 12, 13, 1_000_003] {
            #expect(balancer.pick(clientKey: key, excluding: TriedBackends()) == Int(pinned13[Int(key % 13)]))
        }
    }

    @Test func failedBackendSendsTheClientToTheNextSlotsOwner() {
        var balancer = MaglevBalancer(backends: makeBackends(weights: [1, 1, 1]), tableSize: 13)
        for key: UInt64 in 0..<13 {
            let owner = Int(pinned13[Int(key)])
            var slot = Int(key)
            while Int(pinned13[slot]) == owner { slot = (slot + 1) % 13 }
            #expect(balancer.pick(clientKey: key, excluding: tried(owner)) == Int(pinned13[slot]))
            #expect(balancer.pick(clientKey: key, excluding: tried(0, 1, 2)) == nil)
        }
    }
}

/// Backends 0, 1, 2 of weight 1 over 13 slots.
private let pinned13: [Int32] = [1, 2, 0, 1, 1, 2, 1, 0, 2, 0, 1, 0, 2]
/// Backends of weights 1, 2, 4 over 17 slots.
private let pinned17: [Int32] = [1, 2, 0, 2, 1, 2, 2, 2, 2, 1, 0, 1, 2, 1, 2, 2, 2]
