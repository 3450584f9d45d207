/// The counters and histograms of one listener (or one service, or one backend) as seen by one
/// worker, and, after `merge`, by the whole process.
///
/// How it is meant to be used (issue 10, "no cost on the hot path"): each worker keeps such values
/// in its own memory and updates them with plain stores, no lock and no atomic; once per tick it
/// publishes a copy into a slot of its own (`PublishedFigures` in SwitchyardIO, a `Mutex` per
/// worker), and a scrape sums the published copies with `merge`. The value holds no reference
/// and no heap storage (every collection is an `InlineArray`), so updating it never allocates
/// and publishing it is a memcpy of about 1.7 KiB.
///
/// Accounting: every accepted connection is refused at once or ends with one served cause, so
/// `accepted == refused + rejected + closed(served causes) + open` holds within one worker's copy.
///
/// Thread safety: a plain value; one thread mutates its own copy.
public struct ConnectionFigures: Sendable, Equatable {
    /// Connections accept(2) returned, refused ones included.
    public var accepted: UInt64 = 0
    /// Closed connections by cause, indexed by `TerminationCause.rawValue`.
    private var closedByCause = InlineArray<19, UInt64>(repeating: 0)
    /// Backend connects started (the first and every retry).
    public var connectAttempts: UInt64 = 0
    /// Backend connects that failed (refused, unreachable, timed out).
    public var connectFailures: UInt64 = 0
    /// Connects started after a failed one for the same client.
    public var connectRetries: UInt64 = 0
    /// Bytes received from clients (and sent on to backends).
    public var bytesFromClients: UInt64 = 0
    /// Bytes sent to clients (received from backends).
    public var bytesToClients: UInt64 = 0
    /// Times accepting paused because descriptors ran out (EMFILE/ENFILE).
    public var acceptBackoffs: UInt64 = 0
    /// Receives that found the provided-buffer pool empty (ENOBUFS) and had to wait.
    public var starvedReceives: UInt64 = 0
    /// Times a stalled direction's bytes left the shared provided buffers for memory of its own
    /// (a destination that stopped reading while buffers were short).
    public var parkedDirections: UInt64 = 0
    /// Clients that waited in the service's queue (every backend at its `max-connections`).
    public var queued: UInt64 = 0
    /// Backend connects that found no free local port (`EADDRNOTAVAIL`: the ephemeral ports
    /// towards that backend, from that source address, are all in use); issue 13.
    public var sourcePortExhausted: UInt64 = 0
    /// Times a listener paused accepting for `max-connection-rate`.
    public var acceptRatePauses: UInt64 = 0
    /// How long sessions lasted, accept to close.
    public var sessionDuration = LatencyHistogram()
    /// How long successful backend connects took.
    public var connectTime = LatencyHistogram()
    // PROXY protocol.
    /// Connections of an `accept-proxy` listener closed for their header, by `ProxyHeaderFailure.rawValue`.
    private var proxyHeaderErrorsByCause = InlineArray<5, UInt64>(repeating: 0)

    public init() {
        assert(closedByCause.count == TerminationCause.allCases.count)
    }

    /// Counts one connection ending with `cause` (`.refused` for one closed at accept).
    public mutating func recordClose(_ cause: TerminationCause) {
        closedByCause[cause.rawValue] &+= 1
    }

    /// Counts one finished session: its cause and how long it lasted (a rejected connection
    /// was no session: its duration is not recorded).
    public mutating func recordClose(_ cause: TerminationCause, sessionNanoseconds: Int64) {
        recordClose(cause)
        if cause.rejectionReason == nil { sessionDuration.record(nanoseconds: sessionNanoseconds) }
    }

    // PROXY protocol.
    public mutating func recordProxyHeaderError(_ failure: ProxyHeaderFailure) {
        proxyHeaderErrorsByCause[failure.rawValue] &+= 1
    }

    /// Connections closed because their PROXY header was `failure`.
    public func proxyHeaderErrors(_ failure: ProxyHeaderFailure) -> UInt64 {
        proxyHeaderErrorsByCause[failure.rawValue]
    }

    /// Connections that ended with `cause`.
    public func closed(_ cause: TerminationCause) -> UInt64 {
        closedByCause[cause.rawValue]
    }

    /// Connections closed at accept because `--max-connections` were open.
    public var refused: UInt64 { closed(.refused) }

    /// Connections refused by a per-client control for `reason`.
    public func rejected(_ reason: RejectionReason) -> UInt64 {
        closed(reason.cause)
    }

    /// Connections refused by any per-client control.
    public var rejectedTotal: UInt64 {
        RejectionReason.allCases.reduce(0) { $0 &+ rejected($1) }
    }

    /// Served connections that have ended, whatever the cause.
    public var closedTotal: UInt64 {
        TerminationCause.servedCases.reduce(0) { $0 &+ closed($1) }
    }

    /// Connections accepted, not refused and not yet closed. Zero if a caller's counts are
    /// inconsistent (never negative).
    public var open: UInt64 {
        let ended = refused &+ rejectedTotal &+ closedTotal
        return accepted >= ended ? accepted - ended : 0
    }

    /// Adds every counter and histogram of `other` (figures of another worker).
    public mutating func merge(_ other: ConnectionFigures) {
        accepted &+= other.accepted
        for index in 0..<TerminationCause.allCases.count {
            closedByCause[index] &+= other.closedByCause[index]
        }
        connectAttempts &+= other.connectAttempts
        connectFailures &+= other.connectFailures
        connectRetries &+= other.connectRetries
        bytesFromClients &+= other.bytesFromClients
        bytesToClients &+= other.bytesToClients
        acceptBackoffs &+= other.acceptBackoffs
        starvedReceives &+= other.starvedReceives
        parkedDirections &+= other.parkedDirections
        queued &+= other.queued
        for index in 0..<ProxyHeaderFailure.allCases.count {
            proxyHeaderErrorsByCause[index] &+= other.proxyHeaderErrorsByCause[index]
        }
        sourcePortExhausted &+= other.sourcePortExhausted
        acceptRatePauses &+= other.acceptRatePauses
        sessionDuration.merge(other.sessionDuration)
        connectTime.merge(other.connectTime)
    }

    /// The sum of `figures`.
    public static func merged(_ figures: some Sequence<ConnectionFigures>) -> ConnectionFigures {
        var total = ConnectionFigures()
        for part in figures { total.merge(part) }
        return total
    }

    public static func == (lhs: ConnectionFigures, rhs: ConnectionFigures) -> Bool {
        for cause in TerminationCause.allCases where lhs.closed(cause) != rhs.closed(cause) { return false }
        for failure in ProxyHeaderFailure.allCases where lhs.proxyHeaderErrors(failure) != rhs.proxyHeaderErrors(failure) { return false }
        return lhs.accepted == rhs.accepted && lhs.connectAttempts == rhs.connectAttempts
            && lhs.connectFailures == rhs.connectFailures && lhs.connectRetries == rhs.connectRetries
            && lhs.bytesFromClients == rhs.bytesFromClients && lhs.bytesToClients == rhs.bytesToClients
            && lhs.acceptBackoffs == rhs.acceptBackoffs && lhs.starvedReceives == rhs.starvedReceives
            && lhs.parkedDirections == rhs.parkedDirections
            && lhs.queued == rhs.queued
            && lhs.sourcePortExhausted == rhs.sourcePortExhausted && lhs.acceptRatePauses == rhs.acceptRatePauses
            && lhs.sessionDuration == rhs.sessionDuration && lhs.connectTime == rhs.connectTime
    }
}
