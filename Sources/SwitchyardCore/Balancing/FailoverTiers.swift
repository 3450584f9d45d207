/// A service's backends grouped into failover tiers (`priority: N`, `backup: true` last), with
/// the share of new clients each tier takes (`PriorityLoad`), and the per-worker choice of a tier
/// for one client.
///
/// Built on the control thread with every snapshot; workers only read it. A tier exists for
/// every priority some backend has, whatever the backends' health, so that tier indices stay put
/// while backends come and go.
public struct FailoverTiers: Sendable {
    public struct Tier: Sendable, Equatable {
        /// The configured priority; nil for the backup tier.
        public var priority: Int?
        /// Indices into the snapshot's backends, in their order.
        public var members: [Int]
        /// Weight of the members that may be picked, and of every member not being removed.
        public var weights: PriorityLoad.Tier
        /// Of new clients, 0...1 (the shares of all tiers add up to 1 unless nothing is healthy).
        public var share: Double

        /// `0`, `1`, ... or `backup`, as `show services` names it.
        public var name: String { priority.map { "\($0)" } ?? "backup" }
    }

    /// In priority order, the backup tier last.
    public let tiers: [Tier]
    /// The tier of each backend, by its index in the snapshot.
    public let tierOfBackend: [Int]
    /// The shares, by tier index.
    public let shares: [Double]
    /// The one tier that takes every client, when only one does (the common case: no pick-time
    /// arithmetic at all); nil when several share the clients or none is healthy.
    public let soleTier: Int?

    /// `thresholdPercent` is `failover-threshold` (nil: none). A member's weight in force (its
    /// agent's `N%` of it, if it has an agent) counts as healthy when it is selectable; every
    /// member not being removed counts with its configured weight in the tier's total (a
    /// drained or maintained backend, or one its agent weighs down, is capacity the tier lacks).
    public init(backends: [BackendState], thresholdPercent: Int?) {
        let ranks = Set(backends.map(Self.rank)).sorted()
        var tiers = ranks.map { rank in
            Tier(priority: rank == Self.backupRank ? nil : rank, members: [],
                 weights: PriorityLoad.Tier(healthyWeight: 0, totalWeight: 0), share: 0)
        }
        var tierOfBackend = [Int](repeating: 0, count: backends.count)
        for (index, backend) in backends.enumerated() {
            let tier = ranks.firstIndex(of: Self.rank(backend))!
            tierOfBackend[index] = tier
            tiers[tier].members.append(index)
            if !backend.removing { tiers[tier].weights.totalWeight += backend.spec.weight }
            if backend.selectable { tiers[tier].weights.healthyWeight += backend.effectiveWeight }
        }
        let shares = PriorityLoad.shares(tiers.map(\.weights), thresholdPercent: thresholdPercent)
        for index in tiers.indices { tiers[index].share = shares[index] }
        self.tiers = tiers
        self.tierOfBackend = tierOfBackend
        self.shares = shares
        let taking = shares.indices.filter { shares[$0] > 0 }
        self.soleTier = taking.count == 1 ? taking[0] : nil
    }

    /// The order tiers sort in: the priority, backups after every priority.
    static func rank(_ backend: BackendState) -> Int {
        backend.spec.backup ? backupRank : backend.spec.priority
    }

    private static let backupRank = Int.max

    /// Whether `tier` takes some of the new clients.
    public func takesClients(_ tier: Int) -> Bool { shares[tier] > 0 }

    /// `show services`' TIERS column: each tier's name and share of new clients in whole
    /// percent, `0:75%,1:25%,backup:0%`; `-` without backends.
    public var summary: String {
        guard !tiers.isEmpty else { return "-" }
        return tiers.map { "\($0.name):\(Int(($0.share * 100).rounded()))%" }.joined(separator: ",")
    }

    /// Parses `failover-threshold`: `P%` (or `P`), P a whole number from 1 to 100.
    public static func parseThreshold(_ text: String) throws(ConfigError) -> Int {
        let digits = text.hasSuffix("%") ? String(text.dropLast()) : text
        guard !digits.isEmpty, digits.allSatisfy({ $0.isASCII && $0.isNumber }), let value = Int(digits), (1...100).contains(value) else {
            throw ConfigError("failover-threshold '\(text)' must be a percentage from 1% to 100%")
        }
        return value
    }
}

/// One worker's choice of a tier for each new client: by the client's hash for algorithms that
/// keep a client on one backend (ip-hash), else by a smooth weighted rotation over the shares, so
/// that any run of N clients gives each tier its share of N to within one client.
///
/// Thread ownership: built from a snapshot on adoption; each worker owns its copy. `next` neither
/// allocates (the credit array is copied once, on the first pick after adoption) nor locks.
public struct TierChooser: Sendable {
    private let shares: [Double]
    private let soleTier: Int?
    private let byClientKey: Bool
    private var credit: [Double]

    public init(_ tiers: FailoverTiers, byClientKey: Bool) {
        shares = tiers.shares
        soleTier = tiers.soleTier
        self.byClientKey = byClientKey
        credit = [Double](repeating: 0, count: tiers.shares.count)
    }

    /// The tier for a client whose `StableHash` is `clientKey`; nil when no tier is healthy.
    public mutating func next(clientKey: UInt64) -> Int? {
        if let soleTier { return soleTier }
        if byClientKey {
            // The top 53 bits as a fraction in 0..<1: a client keeps its tier while shares hold.
            return PriorityLoad.tier(for: Double(clientKey >> 11) / Double(UInt64(1) << 53), in: shares)
        }
        // Smooth weighted round robin (nginx's): every tier earns its share, the richest pays 1.
        var best: Int?
        for index in shares.indices where shares[index] > 0 {
            credit[index] += shares[index]
            if best == nil || credit[index] > credit[best!] { best = index }
        }
        if let best { credit[best] -= 1 }
        return best
    }
}
