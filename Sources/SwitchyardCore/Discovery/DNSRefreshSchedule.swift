/// When a watched name is asked again: after its TTL, clamped to `dns-min-ttl`...`dns-max-ttl`,
/// and after a failure, with exponential back-off.
public struct DNSRefreshPolicy: Hashable, Sendable {
    /// `dns-min-ttl`: the soonest a name is asked again after an answer, whatever its TTL
    /// (a TTL of 0 would otherwise mean asking without pause).
    public var minimumTTL: Duration
    /// `dns-max-ttl`: the latest a name is asked again after an answer, whatever its TTL.
    public var maximumTTL: Duration
    /// Wait after the first failure in a row; it doubles with each further failure.
    public var initialBackoff: Duration
    /// The longest wait between two attempts while failures go on.
    public var maximumBackoff: Duration

    /// The bounds `validate()` enforces on `minimumTTL` (and on `initialBackoff`).
    public static let smallestInterval = Duration.milliseconds(100)

    public init(
        minimumTTL: Duration = .seconds(1), maximumTTL: Duration = .seconds(60),
        initialBackoff: Duration = .seconds(1), maximumBackoff: Duration = .seconds(30)
    ) {
        self.minimumTTL = minimumTTL
        self.maximumTTL = maximumTTL
        self.initialBackoff = initialBackoff
        self.maximumBackoff = maximumBackoff
    }

    /// Throws a `ConfigError` naming the first value out of bounds: both TTL bounds and the
    /// back-off at least 100ms (so no answer or failure makes a query loop) and each maximum at
    /// least its minimum.
    public func validate() throws(ConfigError) {
        guard minimumTTL >= Self.smallestInterval else {
            throw ConfigError("dns-min-ttl \(minimumTTL.shortDescription) must be at least 100ms")
        }
        guard maximumTTL >= minimumTTL else {
            throw ConfigError("dns-max-ttl \(maximumTTL.shortDescription) must be at least dns-min-ttl \(minimumTTL.shortDescription)")
        }
        guard initialBackoff >= Self.smallestInterval else {
            throw ConfigError("DNS retry back-off \(initialBackoff.shortDescription) must be at least 100ms")
        }
        guard maximumBackoff >= initialBackoff else {
            throw ConfigError("DNS retry back-off limit \(maximumBackoff.shortDescription) must be at least \(initialBackoff.shortDescription)")
        }
    }

    /// How long after an answer whose smallest TTL is `ttl` seconds the name is asked again.
    public func refreshDelay(ttl: UInt32) -> Duration {
        min(max(.seconds(Int64(ttl)), minimumTTL), maximumTTL)
    }

    /// How long after the `failures`-th failure in a row (1 for the first) the name is asked
    /// again: `initialBackoff` doubled `failures - 1` times, at most `maximumBackoff`.
    public func retryDelay(consecutiveFailures failures: Int) -> Duration {
        var delay = initialBackoff
        var doublings = max(failures, 1) - 1
        while doublings > 0 && delay < maximumBackoff {
            delay *= 2
            doublings -= 1
        }
        return min(delay, maximumBackoff)
    }
}

/// Why one resolution of a watched name gave no usable set.
public enum DNSResolutionFailure: Hashable, Sendable, CustomStringConvertible {
    /// No server answered within the timeout, on any attempt.
    case timeout
    /// The servers answered with an error RCODE (SERVFAIL, REFUSED...).
    case serverFailure(DNSResponseCode)
    /// The answer was not a valid DNS message or broke the protocol; the text says how.
    case malformed(String)
    /// NXDOMAIN, NODATA, or SRV records whose targets have no address.
    case empty(String)
    /// A system call failed (no route, socket limit...); the text names it.
    case system(String)

    public var description: String {
        switch self {
        case .timeout: "no answer (timeout)"
        case let .serverFailure(code): "server answered \(code)"
        case let .malformed(detail): "malformed answer: \(detail)"
        case let .empty(detail): "empty answer: \(detail)"
        case let .system(detail): detail
        }
    }
}

/// The outcome of one resolution, as the discovery loop hands it to `DNSWatchState.record`.
public enum DNSResolution: Hashable, Sendable {
    /// A non-empty set and the smallest TTL of the records it came from.
    case resolved([DNSBackend], minimumTTL: UInt32)
    case failed(DNSResolutionFailure)
}

/// What a watched name's state did with a resolution.
public enum DNSWatchEvent: Hashable, Sendable {
    /// The set changed (or is the first one): publish `backends`.
    case changed(backends: [DNSBackend], difference: DNSBackendDifference)
    /// The same set as before.
    case unchanged
    /// The resolution failed; the last known set (`keeping` backends) stays, and the name is
    /// asked again after `retryIn`.
    case failed(DNSResolutionFailure, keeping: Int, retryIn: Duration)
}

/// The schedule, counters and last known set of one watched name. A value with no locking;
/// the discovery thread owns it.
public struct DNSWatchState: Sendable {
    public let policy: DNSRefreshPolicy
    /// The last set resolved, sorted; nil before the first success. Failures never change it.
    public private(set) var backends: [DNSBackend]?
    /// When the name should be asked next.
    public private(set) var nextQuery: ContinuousClock.Instant
    public private(set) var consecutiveFailures = 0
    /// Resolutions recorded (each may have taken several DNS queries).
    public private(set) var resolutions = 0
    public private(set) var failures = 0
    public private(set) var lastSuccess: ContinuousClock.Instant?
    public private(set) var lastFailure: DNSResolutionFailure?

    /// A name not yet resolved, due at `now`.
    public init(policy: DNSRefreshPolicy, now: ContinuousClock.Instant) {
        self.policy = policy
        self.nextQuery = now
    }

    /// Feeds one resolution in, finished at `now`, and schedules the next one. An empty set
    /// counts as a failure: it keeps the last known set.
    public mutating func record(_ resolution: DNSResolution, at now: ContinuousClock.Instant) -> DNSWatchEvent {
        resolutions += 1
        switch resolution {
        case let .resolved(found, _) where found.isEmpty:
            return fail(.empty("no backends"), at: now)
        case let .resolved(found, ttl):
            consecutiveFailures = 0
            lastSuccess = now
            nextQuery = now + policy.refreshDelay(ttl: ttl)
            let sorted = found.sorted()
            // The first set is never empty, so its difference never is either.
            let difference = DNSBackendDifference(from: backends ?? [], to: sorted)
            backends = sorted
            return difference.isEmpty ? .unchanged : .changed(backends: sorted, difference: difference)
        case let .failed(failure):
            return fail(failure, at: now)
        }
    }

    private mutating func fail(_ failure: DNSResolutionFailure, at now: ContinuousClock.Instant) -> DNSWatchEvent {
        failures += 1
        consecutiveFailures += 1
        lastFailure = failure
        let delay = policy.retryDelay(consecutiveFailures: consecutiveFailures)
        nextQuery = now + delay
        return .failed(failure, keeping: backends?.count ?? 0, retryIn: delay)
    }
}
