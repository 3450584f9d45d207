/// A service's per-client controls (README, "Per-client controls"): who may connect (`allow`,
/// `deny`), how many connections one source may hold and open per second, how a source is
/// counted (`source-mask`), how fast a listener accepts, and what a refused client gets.
///
/// Evaluated once per connection: on accept, or with `accept-proxy` once the PROXY header has
/// given the client's address. The access list is matched here; the per-source counts live in
/// the instance's `SourceSet` table, which `limits` parametrises.
///
/// Thread safety: an immutable value (part of `ServiceSettings`).
public struct ClientControls: Equatable, Sendable {
    /// `allow`: if not empty, only these blocks may connect.
    public var allow: [CIDR] = []
    /// `deny`: these blocks may not connect, even if `allow` lists them.
    public var deny: [CIDR] = []
    /// `max-connections-per-source`: open connections one source may hold; nil: no limit.
    public var maxConnectionsPerSource: Int?
    /// `connection-rate-per-source`: new connections per second one source may open on average.
    public var connectionRatePerSource: ConnectionRate?
    /// `connection-burst-per-source`: how many it may open at once; nil: one second's worth.
    public var connectionBurstPerSource: Int?
    /// `source-mask`: how much of an address names a source.
    public var sourceMask = SourceMask.host
    /// `max-connection-rate`: each listener of the service accepts at most this many a second.
    public var maxConnectionRate: ConnectionRate?
    /// `reject-with`: what a refused client gets.
    public var rejectWith = RejectWith.reset

    public init() {}

    /// The controls the given keys set; a nil key keeps its default (the file's keys and the
    /// command line's flags both come through here).
    public init(allow: [CIDR]?, deny: [CIDR]?, maxConnectionsPerSource: Int?, connectionRatePerSource: ConnectionRate?,
                connectionBurstPerSource: Int?, sourceMask: SourceMask?, maxConnectionRate: ConnectionRate?, rejectWith: RejectWith?) {
        self.allow = allow ?? []
        self.deny = deny ?? []
        self.maxConnectionsPerSource = maxConnectionsPerSource
        self.connectionRatePerSource = connectionRatePerSource
        self.connectionBurstPerSource = connectionBurstPerSource
        if let sourceMask { self.sourceMask = sourceMask }
        self.maxConnectionRate = maxConnectionRate
        if let rejectWith { self.rejectWith = rejectWith }
    }

    /// The largest limit accepted for a count or a rate (keeps the table's 32-bit counters and
    /// the token arithmetic far from overflow).
    public static let maximumLimit = 100_000_000

    /// Whether nothing is set: the service's connections skip every check.
    public var isEmpty: Bool { self == ClientControls() }

    /// Whether connections are counted in the source table (every control but the listener rate
    /// and `reject-with`): refusals of `allow`/`deny` are counted there too, for `show sources`.
    public var tracksSources: Bool {
        !allow.isEmpty || !deny.isEmpty || maxConnectionsPerSource != nil || connectionRatePerSource != nil
    }

    /// What the source table applies.
    public var limits: SourceLimits {
        SourceLimits(maxOpen: maxConnectionsPerSource, ratePerSecond: connectionRatePerSource?.perSecond,
                     burst: connectionBurstPerSource ?? connectionRatePerSource?.perSecond)
    }

    /// The verdict of `allow` and `deny` on the address whose 128 bits (`PeerAddress.mapped128`,
    /// an IPv4 address in its IPv4-mapped form) are `high`, `low`: nil when it may connect,
    /// `.deny` when `deny` lists it (deny wins), `.notAllowed` when `allow` is not empty and does
    /// not list it. Allocates nothing.
    public func access(high: UInt64, low: UInt64) -> RejectionReason? {
        for block in deny where block.contains(high: high, low: low) { return .deny }
        guard !allow.isEmpty else { return nil }
        for block in allow where block.contains(high: high, low: low) { return nil }
        return .notAllowed
    }

    /// Checks the combinations; the path names the key concerned.
    public func validate() throws(ConfigIssue) {
        if connectionBurstPerSource != nil && connectionRatePerSource == nil {
            throw ConfigIssue(path: [.key("connection-burst-per-source")], "connection-burst-per-source needs connection-rate-per-source")
        }
    }

    // MARK: Values as the file and the command line write them

    /// `max-connections-per-source` and `connection-burst-per-source`: a whole number from 1.
    public static func parseCount(_ text: String, key: String) throws(ConfigError) -> Int {
        guard !text.isEmpty, text.count <= 10, text.allSatisfy({ $0.isASCII && $0.isNumber }),
              let value = Int(text), (1...maximumLimit).contains(value) else {
            throw ConfigError("\(key) '\(text)' must be a whole number from 1 to \(maximumLimit)")
        }
        return value
    }

    /// `allow` and `deny` on the command line: `CIDR[,CIDR...]`.
    public static func parseBlocks(_ text: String) throws(ConfigError) -> [CIDR] {
        var blocks: [CIDR] = []
        for part in text.split(separator: ",", omittingEmptySubsequences: false) {
            blocks.append(try CIDR(parsing: String(part)))
        }
        return blocks
    }
}

/// A rate of new connections: `N/s`.
public struct ConnectionRate: Hashable, Sendable, CustomStringConvertible {
    public var perSecond: Int

    public init(perSecond: Int) { self.perSecond = perSecond }

    /// Parses `N/s` with N a whole number from 1 to `ClientControls.maximumLimit`.
    public init(parsing text: String, key: String) throws(ConfigError) {
        let number = text.hasSuffix("/s") ? String(text.dropLast(2)) : ""
        guard !number.isEmpty, number.count <= 10, number.allSatisfy({ $0.isASCII && $0.isNumber }),
              let value = Int(number), (1...ClientControls.maximumLimit).contains(value) else {
            throw ConfigError("\(key) '\(text)' must be a rate such as 100/s (a whole number from 1 to \(ClientControls.maximumLimit), then /s)")
        }
        perSecond = value
    }

    public var description: String { "\(perSecond)/s" }
}

/// `reject-with`: how a refused client's connection ends.
public enum RejectWith: String, CaseIterable, Sendable, CustomStringConvertible {
    /// An orderly close (FIN): the client reads end of file.
    case close
    /// A reset (RST, `SO_LINGER` 0), as HAProxy's `tcp-request connection reject` does; the default.
    case reset

    public var description: String { rawValue }
}

/// Why a client was refused by a per-client control: the `reason` label of
/// `switchyard_connections_rejected_total`. The raw values index counters and never change.
public enum RejectionReason: Int, CaseIterable, Hashable, Sendable, CustomStringConvertible {
    /// `deny` lists its address.
    case deny = 0
    /// `allow` is set and does not list it.
    case notAllowed
    /// Its source already holds `max-connections-per-source` connections.
    case sourceLimit
    /// Its source opened connections faster than `connection-rate-per-source` allows.
    case sourceRate

    public var label: String {
        switch self {
        case .deny: "deny"
        case .notAllowed: "not_allowed"
        case .sourceLimit: "source_limit"
        case .sourceRate: "source_rate"
        }
    }

    public var description: String { label }

    /// The access log's cause for a connection refused for this reason (`rejected_<reason>`).
    public var cause: TerminationCause {
        switch self {
        case .deny: .rejectedDeny
        case .notAllowed: .rejectedNotAllowed
        case .sourceLimit: .rejectedSourceLimit
        case .sourceRate: .rejectedSourceRate
        }
    }
}
