/// `--balance least-latency`: the power of two choices over backends weighed by connect latency
/// and load, after Finagle's and Linkerd's "P2C + peak EWMA" balancers (Mitzenmacher, "The Power
/// of Two Choices in Randomized Load Balancing", 2001, for the two choices; Finagle's `PeakEwma`
/// for the metric). Switchyard's own code.
///
/// Each pick draws two different eligible backends at random and takes the cheaper, where
///
///     cost = latency × (open connections + 1) / weight
///
/// `latency` is the backend's `PeakEWMA` of recent connect times at this moment (never below
/// 1 µs, so that load still counts once estimates have decayed to nothing), and `open
/// connections` is `BackendStats.active`, which counts connects in progress too. So a backend
/// that turns slow, or piles up connects that do not complete, loses most comparisons at once;
/// one that is avoided looks cheaper as its estimate decays, is tried again, and gets its share
/// back if it is fast (see `PeakEWMA`). Two random choices rather than the cheapest of all keep
/// workers, which read the shared counters without locks, from all rushing to the same backend.
///
/// Backends without a sample yet: one with no connection open is cheaper than any other, so it is
/// tried at once; one with connections open but no completed connect yet is dearer than any
/// measured backend (Finagle gives it a large penalty), and such backends compare by open
/// connections per weight, so that nothing piles onto a backend before its first connect is
/// timed. Until connect times are recorded at all, this is "least connections between two random
/// backends".
///
/// Weights: cost is divided by weight, so a backend of weight 2 is chosen over one of weight 1
/// until it holds about twice the open connections at the same latency, as `least-conn` does.
/// The two candidates are drawn uniformly, not by weight, so a backend of small weight still
/// competes in as many comparisons as any other and its latency keeps being sampled.
///
/// Thread ownership: `init` on the control thread; each worker owns its copy, whose random
/// stream is seeded from the system generator on the copy's first pick (so that workers do not
/// draw the same pairs), or from `seed` in tests.
public struct LeastLatencyBalancer: Balancer {
    /// Indices (into the backends given to `init`) of the selectable backends with weight above 0.
    private let candidates: [Int]
    private let weights: [Double]
    private let stats: [BackendStats]
    private let clock: @Sendable () -> UInt64
    private let decayTime: UInt64
    /// SplitMix64 state; 0 until seeded.
    private var random: UInt64

    /// The least latency a cost is computed with: 1 µs.
    static let latencyFloor = 1_000.0

    public init(backends: [BalancerBackend]) {
        self.init(backends: backends, clock: LatencyClock.now)
    }

    /// Builds over `backends` reading `clock` (nanoseconds, the clock connect times are recorded
    /// on) and decaying estimates with `decayTime`; a non-zero `seed` fixes the random stream.
    public init(backends: [BalancerBackend], clock: @escaping @Sendable () -> UInt64,
                decayTime: UInt64 = PeakEWMA.defaultDecayTime, seed: UInt64 = 0) {
        let chosen = backends.indices.filter { backends[$0].selectable && backends[$0].weight > 0 }
        candidates = chosen
        weights = chosen.map { Double(backends[$0].weight) }
        stats = chosen.map { backends[$0].stats }
        self.clock = clock
        self.decayTime = decayTime
        random = seed
    }

    /// The cheaper of two random eligible backends (not in `tried`); the only one when one is
    /// left; nil when none is. Worker thread only.
    public mutating func pick(clientKey: UInt64, excluding tried: TriedBackends) -> Int? {
        let eligible = tried.count == 0
            ? candidates.count
            : candidates.lazy.filter { !tried.contains($0) }.count
        guard eligible > 0 else { return nil }
        let first = position(ofEligible: Int(nextRandom(below: UInt64(eligible))), excluding: tried)
        guard eligible > 1 else { return candidates[first] }
        var secondRank = Int(nextRandom(below: UInt64(eligible - 1)))
        let firstRank = rank(of: first, excluding: tried)
        if secondRank >= firstRank { secondRank += 1 }
        let second = position(ofEligible: secondRank, excluding: tried)

        let now = clock()
        // Ties go to the first draw, itself random.
        return cost(at: second, now: now) < cost(at: first, now: now) ? candidates[second] : candidates[first]
    }

    /// The cost of `candidates[position]` at `now` (see the type), compared in tiers rather than
    /// with a numeric penalty so that no load figure can make a penalised backend look cheap.
    func cost(at position: Int, now: UInt64) -> Cost {
        let backendStats = stats[position]
        let active = Double(max(backendStats.active.load(ordering: .relaxed), 0))
        let ewma = backendStats.connectLatency.ewma
        guard ewma.hasSamples else {
            return active == 0 ? Cost(tier: .untried, value: 0) : Cost(tier: .awaitingFirstSample, value: active / weights[position])
        }
        let latency = max(ewma.value(at: now, decayTime: decayTime), Self.latencyFloor)
        return Cost(tier: .measured, value: latency * (active + 1) / weights[position])
    }

    /// A backend's cost: first by tier, then by value within the tier.
    struct Cost: Comparable {
        enum Tier: Int, Comparable {
            /// No connect timed and none open: try it.
            case untried
            /// latency × (open + 1) / weight.
            case measured
            /// Connects open but none timed yet (Finagle's penalty): open / weight.
            case awaitingFirstSample

            static func < (a: Tier, b: Tier) -> Bool { a.rawValue < b.rawValue }
        }

        var tier: Tier
        var value: Double

        static func < (a: Cost, b: Cost) -> Bool {
            a.tier != b.tier ? a.tier < b.tier : a.value < b.value
        }
    }

    /// The position in `candidates` of the eligible backend of rank `rank` (0-based, in order).
    private func position(ofEligible rank: Int, excluding tried: TriedBackends) -> Int {
        guard tried.count > 0 else { return rank }
        var seen = 0
        for position in candidates.indices where !tried.contains(candidates[position]) {
            if seen == rank { return position }
            seen += 1
        }
        return candidates.count - 1 // unreachable: rank < eligible count
    }

    /// The rank among eligible backends of the eligible one at `position`.
    private func rank(of position: Int, excluding tried: TriedBackends) -> Int {
        guard tried.count > 0 else { return position }
        return candidates[..<position].lazy.filter { !tried.contains($0) }.count
    }

    /// A uniform draw from `0..<bound` (bound > 0), by SplitMix64 and a multiply-shift.
    private mutating func nextRandom(below bound: UInt64) -> UInt64 {
        if random == 0 {
            var system = SystemRandomNumberGenerator()
            random = system.next() | 1
        }
        random &+= 0x9E37_79B9_7F4A_7C15
        var z = random
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        z ^= z >> 31
        return z.multipliedFullWidth(by: bound).high
    }
}
