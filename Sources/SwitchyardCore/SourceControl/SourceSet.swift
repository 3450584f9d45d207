/// The per-source state of the instance's source table (`source-table-size` entries), and the
/// rules that admit, refuse and forget sources. Pure: the table in SwitchyardIO keeps an array
/// of `SourceSet`s in fixed memory and calls these under the lock of the set concerned.
///
/// Layout: a set-associative cache. A source hashes to one set of `SourceSet.ways` entries and
/// lives in one of them; a new source takes a free way, else the least recently seen way with no
/// open connection. A set whose every way holds open connections admits the newcomer untracked
/// (its limits are not applied): a full set cannot refuse a client that no rule refuses, and
/// forgetting a source with open connections would make its count wrong. Memory never grows.
///
/// Thread safety: plain values; the caller serialises access to each set.

/// Which source of which service: the source's address (masked by `source-mask`) as 128 bits,
/// and the service's number in the table (from 1; 0 marks a free way).
public struct SourceKey: Hashable, Sendable {
    public var high: UInt64
    public var low: UInt64
    public var service: UInt32

    public init(high: UInt64, low: UInt64, service: UInt32) {
        self.high = high
        self.low = low
        self.service = service
    }

    /// The key's set among `setCount` (a power of two), from a 64-bit mix of the key with the
    /// table's `seed`. The instance draws the seed at random so that nobody can aim many
    /// sources at one set.
    public func setIndex(seed: UInt64, setCount: Int) -> Int {
        var mixed = seed ^ high
        mixed = Self.mix(mixed) ^ low
        mixed = Self.mix(mixed) ^ UInt64(service)
        return Int(truncatingIfNeeded: Self.mix(mixed) & UInt64(max(setCount, 1) - 1))
    }

    /// The finaliser of SplitMix64 (Steele, Lea and Flood, "Fast splittable pseudorandom number
    /// generators", OOPSLA 2014): every input bit affects every output bit.
    static func mix(_ value: UInt64) -> UInt64 {
        var z = value &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// What the source table applies to one service's connections (from `ClientControls.limits`).
public struct SourceLimits: Equatable, Sendable {
    /// Open connections one source may hold; nil: no limit.
    public var maxOpen: Int?
    /// New connections a second on average, and at once; nil: no rate limit.
    public var ratePerSecond: Int?
    public var burst: Int?

    public init(maxOpen: Int? = nil, ratePerSecond: Int? = nil, burst: Int? = nil) {
        self.maxOpen = maxOpen
        self.ratePerSecond = ratePerSecond
        self.burst = burst
    }
}

/// One source's state: 64 bytes, one cache line. All zero is a free way.
public struct SourceEntry: Equatable, Sendable {
    public internal(set) var key = SourceKey(high: 0, low: 0, service: 0)
    /// Connections of this source open now.
    public internal(set) var open: UInt32 = 0
    /// When a connection of this source was last accepted, refused or closed (milliseconds).
    public internal(set) var lastSeen: Int64 = 0
    /// `connection-rate-per-source`.
    var bucket = TokenBucket()
    /// Connection attempts in the current second and in the one before (`second`), for the rate
    /// `show sources` reports (HAProxy's `freq_ctr`).
    var attemptsThisSecond: UInt32 = 0
    var attemptsLastSecond: UInt32 = 0
    var second: UInt32 = 0
    /// Connections of this source refused, whatever the reason.
    public internal(set) var refusals: UInt32 = 0

    public init() {}

    public var isFree: Bool { key.service == 0 }

    /// Connection attempts a second, over the last second: the previous second's count weighed
    /// by how much of it the sliding window still covers, plus the current second's.
    public func attemptsPerSecond(now: Int64) -> Double {
        let current = UInt32(truncatingIfNeeded: now / 1000)
        let fraction = Double(now % 1000) / 1000
        if current == second {
            return Double(attemptsLastSecond) * (1 - fraction) + Double(attemptsThisSecond)
        }
        if current == second &+ 1 { return Double(attemptsThisSecond) * (1 - fraction) }
        return 0
    }

    mutating func countAttempt(now: Int64) {
        let current = UInt32(truncatingIfNeeded: now / 1000)
        if current != second {
            attemptsLastSecond = current == second &+ 1 ? attemptsThisSecond : 0
            attemptsThisSecond = 0
            second = current
        }
        attemptsThisSecond &+= 1
        lastSeen = now
    }
}

/// The answer of `SourceSet.admit`.
public enum SourceAdmission: Equatable, Sendable {
    /// Counted in `way` of the set: release it there when the connection closes.
    case admitted(way: Int)
    /// Admitted without being counted: every way of the set holds open connections.
    case untracked
    case refused(RejectionReason)
}

/// `ways` entries of the source table. All zero is an empty set, so a table may start as
/// zeroed memory.
public struct SourceSet: Sendable {
    public static let ways = 8
    public private(set) var entries = InlineArray<8, SourceEntry>(repeating: SourceEntry())

    public init() {}

    /// The way holding `key`, else the way a new source takes: a free one, else the least
    /// recently seen one with no open connection; nil when every way holds open connections.
    /// A way is taken over only here, so an entry with open connections is never forgotten.
    public func way(for key: SourceKey) -> (way: Int, found: Bool)? {
        var candidate: Int?
        for way in 0..<Self.ways {
            let entry = entries[way]
            if entry.key == key && !entry.isFree { return (way, true) }
            guard entry.open == 0 else { continue }
            if let best = candidate {
                let bestEntry = entries[best]
                // A free way beats any used one; among used ways the least recently seen goes.
                if bestEntry.isFree { continue }
                if entry.isFree || entry.lastSeen < bestEntry.lastSeen { candidate = way }
            } else {
                candidate = way
            }
        }
        return candidate.map { ($0, false) }
    }

    /// A new connection from `key` at `now` (milliseconds): counts the attempt, then refuses it
    /// if the source holds `limits.maxOpen` connections already (`.sourceLimit`) or has no
    /// token left (`.sourceRate`), else counts it open. A refused attempt takes no token.
    public mutating func admit(_ key: SourceKey, now: Int64, limits: SourceLimits) -> SourceAdmission {
        guard let (way, found) = way(for: key) else { return .untracked }
        if !found { start(way, key: key, now: now, limits: limits) }
        entries[way].countAttempt(now: now)
        if let maxOpen = limits.maxOpen, Int(entries[way].open) >= maxOpen {
            entries[way].refusals &+= 1
            return .refused(.sourceLimit)
        }
        if let rate = limits.ratePerSecond {
            let burst = limits.burst ?? rate
            if !entries[way].bucket.take(now: now, rate: rate, burst: burst) {
                entries[way].refusals &+= 1
                return .refused(.sourceRate)
            }
        }
        entries[way].open &+= 1
        return .admitted(way: way)
    }

    /// A connection from `key` refused before the table was asked (`allow`/`deny`): counted as
    /// an attempt and a refusal, for `show sources`. Nothing is counted when every way of the
    /// set holds open connections.
    public mutating func refused(_ key: SourceKey, now: Int64) {
        guard let (way, found) = way(for: key) else { return }
        if !found { start(way, key: key, now: now, limits: SourceLimits()) }
        entries[way].countAttempt(now: now)
        entries[way].refusals &+= 1
    }

    /// A connection admitted in `way` for `key` has closed. Does nothing when the way holds
    /// another source or no open connection (never the case for a caller that releases each
    /// admission once).
    public mutating func release(way: Int, key: SourceKey, now: Int64) {
        guard (0..<Self.ways).contains(way), entries[way].key == key, !entries[way].isFree, entries[way].open > 0 else { return }
        entries[way].open -= 1
        entries[way].lastSeen = now
    }

    private mutating func start(_ way: Int, key: SourceKey, now: Int64, limits: SourceLimits) {
        var entry = SourceEntry()
        entry.key = key
        entry.lastSeen = now
        let rate = limits.ratePerSecond ?? 1
        entry.bucket = .full(burst: limits.burst ?? rate, now: now)
        entries[way] = entry
    }
}
