/// One backend found in DNS: an address and port, and the SRV weight when it came from SRV.
///
/// Ordered by address (IPv4 before IPv6, then bytes), then port, so a set built from answers
/// in any order is the same sorted array: instances given the same answers build the same table.
public struct DNSBackend: Hashable, Sendable, Comparable, CustomStringConvertible {
    public var address: IPAddress
    public var port: UInt16
    /// nil for A and AAAA answers (the service's own weight applies); for SRV answers the
    /// record's weight scaled into 1 to 256 (see `DNSBackendSet.services`).
    public var weight: Int?

    public init(address: IPAddress, port: UInt16, weight: Int? = nil) {
        self.address = address
        self.port = port
        self.weight = weight
    }

    /// The backend as `HOST:PORT` with the address as host (`10.0.0.5:80`, `[2001:db8::5]:80`).
    public var endpoint: Endpoint { Endpoint(address: address, port: port) }

    /// `BackendSpec` for the backend: the SRV weight when there is one, else `defaultWeight`.
    public func spec(defaultWeight: Int) -> BackendSpec {
        BackendSpec(endpoint: endpoint, weight: weight ?? defaultWeight, weightGiven: weight != nil)
    }

    public var description: String {
        weight.map { "\(endpoint),weight=\($0)" } ?? endpoint.description
    }

    /// By address and port (the backend's identity), then weight (none first).
    public static func < (left: DNSBackend, right: DNSBackend) -> Bool {
        if left.identityPrecedes(right) { return true }
        if right.identityPrecedes(left) { return false }
        return (left.weight ?? -1) < (right.weight ?? -1)
    }

    /// Whether this address and port sort before the other's.
    func identityPrecedes(_ other: DNSBackend) -> Bool {
        let (a, b) = (address.bytes, other.address.bytes)
        if a.count != b.count { return a.count < b.count }
        if a != b { return a.lexicographicallyPrecedes(b) }
        return port < other.port
    }
}

/// Builds backend sets from answers: sorted, one entry per address and port.
public enum DNSBackendSet {
    /// Every address of an A/AAAA lookup as a backend on `port`; duplicates collapse.
    public static func addresses(_ addresses: [IPAddress], port: UInt16) -> [DNSBackend] {
        let unique = Set(addresses)
        return unique.map { DNSBackend(address: $0, port: port) }.sorted()
    }

    /// Backends from SRV records and the addresses each target resolved to.
    ///
    /// - Only the lowest priority present is used (RFC 2782: a client must try it first; a load
    ///   balancer has no "first", so the others wait until that priority is gone from DNS).
    /// - A record whose target is `.` says the service is not offered; it gives no backend.
    /// - One address and port reached by several records sums their weights.
    /// - Weights become backend weights: all 0 means equal shares (weight 1 each, RFC 2782's
    ///   "no server selection"); otherwise weights up to 256 are kept, larger ones are scaled
    ///   so the largest is 256, and any weight that would be 0 becomes 1 (RFC 2782 gives weight
    ///   0 a small chance, not none).
    public static func services(_ resolved: [(record: DNSServiceRecord, addresses: [IPAddress])]) -> [DNSBackend] {
        let offered = resolved.filter { $0.record.target != .root }
        guard let priority = offered.map(\.record.priority).min() else { return [] }
        var weights: [DNSBackend: Int] = [:]
        for (record, addresses) in offered where record.priority == priority {
            for address in Set(addresses) {
                weights[DNSBackend(address: address, port: record.port), default: 0] += Int(record.weight)
            }
        }
        let largest = weights.values.max() ?? 0
        let scale = largest > BackendSpec.maximumWeight ? Double(BackendSpec.maximumWeight) / Double(largest) : 1
        return weights.map { backend, weight in
            var scaled = backend
            scaled.weight = largest == 0 ? 1 : max(1, Int((Double(weight) * scale).rounded()))
            return scaled
        }.sorted()
    }
}

/// How one backend set differs from the next, by address and port.
///
/// Every list is sorted like `DNSBackend`, so the difference of two sets does not depend on
/// the order the answers came in.
public struct DNSBackendDifference: Hashable, Sendable {
    /// In the new set only: join (and are checked at once).
    public var added: [DNSBackend]
    /// In the old set only: drain.
    public var removed: [DNSBackend]
    /// In both with another weight: the new entries.
    public var reweighted: [DNSBackend]
    /// In both with the same weight: keep their health and counters.
    public var unchanged: [DNSBackend]

    public init(from old: [DNSBackend], to new: [DNSBackend]) {
        let oldSorted = old.sorted()
        let newSorted = new.sorted()
        added = []
        removed = []
        reweighted = []
        unchanged = []
        // Both sorted by address and port: one merge pass.
        var i = 0, j = 0
        while i < oldSorted.count || j < newSorted.count {
            if j == newSorted.count || (i < oldSorted.count && oldSorted[i].identityPrecedes(newSorted[j])) {
                removed.append(oldSorted[i])
                i += 1
            } else if i == oldSorted.count || newSorted[j].identityPrecedes(oldSorted[i]) {
                added.append(newSorted[j])
                j += 1
            } else {
                if oldSorted[i].weight == newSorted[j].weight {
                    unchanged.append(newSorted[j])
                } else {
                    reweighted.append(newSorted[j])
                }
                i += 1
                j += 1
            }
        }
    }

    /// Whether the two sets are the same (same backends, same weights).
    public var isEmpty: Bool { added.isEmpty && removed.isEmpty && reweighted.isEmpty }

    /// `+2 -1 ~1` for log lines.
    public var summary: String {
        "+\(added.count) -\(removed.count) ~\(reweighted.count)"
    }
}
