/// A Maglev consistent-hashing lookup table (Eisenbud et al., "Maglev: A Fast and Reliable
/// Software Network Load Balancer", NSDI 2016, section 3.4), with weights.
///
/// Each backend walks its own permutation of the slots, `(offset + j * skip) mod size`, with
/// `offset` and `skip` derived from a fixed-seed hash of the backend's `key`; backends take turns
/// claiming the next free slot of their permutation until the table is full. Because a backend's
/// permutation depends only on its own identity, removing one backend frees only its slots for the
/// others, and the rest of the table mostly stays put (the paper's minimal disruption), and two
/// processes given the same backends build the same table.
///
/// Weights: the paper gives every backend one turn per round. Here every backend earns its weight
/// in credit each round and takes a turn per `maximumWeight` of credit, so a backend's share of the
/// slots is proportional to its weight (within one slot per backend).
///
/// Turn order is by key, not by position, so the same set of backends listed in another order
/// (DNS answers come in any order) yields the same table, owner for owner by key, and the same
/// retry walk (`MaglevOrderIndependenceTests`). Only backends without a key (0) are told apart
/// by position and so depend on order; the registry always gives one.
///
/// Thread ownership: built once (control thread, about O(size log size)), immutable afterwards and
/// shared by every worker's copy without copying the storage.
public struct MaglevTable: Sendable {
    /// The paper's suggested size for up to a few hundred backends: a prime well above 100 × backends.
    public static let defaultSize = 65537

    /// The number of slots, a prime.
    public let size: Int
    /// `entries[slot]` is the index (into the backends given to `init`) owning `slot`; empty when
    /// no backend qualified.
    public let entries: [Int32]
    /// Indices of the backends that own slots: the selectable ones with weight above 0.
    public let members: [Int]

    // Fixed seeds for the two permutation hashes; changing either reshuffles every deployed table.
    private static let offsetSeed: UInt64 = 0x5357_4954_4348_0001
    private static let skipSeed: UInt64 = 0x5357_4954_4348_0002

    /// Builds the table over the selectable backends with weight above 0 of `backends`.
    ///
    /// - Precondition: `size` is a prime (so every `skip` visits every slot) below `Int32.max`.
    public init(backends: [BalancerBackend], size: Int = MaglevTable.defaultSize) {
        precondition(size < Int(Int32.max) && Self.isPrime(size), "MaglevTable: size \(size) must be a prime")
        self.size = size
        let members = backends.indices.filter { backends[$0].selectable && backends[$0].weight > 0 }
        self.members = members
        guard !members.isEmpty else {
            entries = []
            return
        }

        struct Turn {
            var index: Int
            var identity: UInt64
            var weight: Int
            var position: Int
            var skip: Int
            var credit = 0
        }
        let sizeWord = UInt64(size)
        var turns = members.map { index in
            let backend = backends[index]
            // Backends without a key are told apart by position, so they still get distinct permutations.
            let identity = backend.key != 0 ? backend.key : UInt64(index) &+ 1
            let offset = StableHash.hash(low: identity, byteCount: 8, seed: Self.offsetSeed) % sizeWord
            let skip = StableHash.hash(low: identity, byteCount: 8, seed: Self.skipSeed) % (sizeWord - 1) + 1
            return Turn(index: index, identity: identity, weight: backend.weight,
                        position: Int(offset), skip: Int(skip))
        }
        turns.sort { ($0.identity, $0.index) < ($1.identity, $1.index) }
        let maximumWeight = turns.lazy.map(\.weight).max()!

        var entries = [Int32](repeating: -1, count: size)
        var filled = 0
        fill: while true {
            for t in turns.indices {
                turns[t].credit += turns[t].weight
                guard turns[t].credit >= maximumWeight else { continue }
                turns[t].credit -= maximumWeight
                // The next free slot in this backend's permutation. Its cursor never passes a free
                // slot, so each backend walks its permutation at most once over the whole build.
                var position = turns[t].position
                let skip = turns[t].skip
                while entries[position] >= 0 {
                    position += skip
                    if position >= size { position -= size }
                }
                entries[position] = Int32(turns[t].index)
                position += skip
                if position >= size { position -= size }
                turns[t].position = position
                filled += 1
                if filled == size { break fill }
            }
        }
        self.entries = entries
    }

    /// The backend owning `key`'s slot, or, when `isExcluded` rejects it, the owner of the nearest
    /// following slot that it accepts (wrapping around); nil when the table is empty or every
    /// member is excluded. The walk depends only on `key`, so a given client's retries are
    /// deterministic too.
    @inline(__always)
    public func backend(for key: UInt64, excluding tried: TriedBackends) -> Int? {
        guard !entries.isEmpty else { return nil }
        let slot = Int(key % UInt64(size))
        let owner = Int(entries[slot])
        if tried.count == 0 || !tried.contains(owner) { return owner }
        return nextUntried(after: slot, excluding: tried)
    }

    /// The slow path after a failed connect, kept out of line.
    @inline(never)
    private func nextUntried(after start: Int, excluding tried: TriedBackends) -> Int? {
        guard members.contains(where: { !tried.contains($0) }) else { return nil }
        var slot = start
        while true {
            slot = slot + 1 == size ? 0 : slot + 1
            let owner = Int(entries[slot])
            if !tried.contains(owner) { return owner }
        }
    }

    private static func isPrime(_ n: Int) -> Bool {
        guard n >= 2 else { return false }
        var divisor = 2
        while divisor * divisor <= n {
            if n % divisor == 0 { return false }
            divisor += 1
        }
        return true
    }
}
