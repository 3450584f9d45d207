/// A token bucket in integer arithmetic: `burst` tokens at most, refilled at `rate` tokens a
/// second, one token per connection. Time is in milliseconds of a monotonic clock and tokens in
/// thousandths, so a rate of N/s refills exactly N thousandths a millisecond and nothing is lost
/// to rounding. The all-zero value is an empty bucket last filled at time 0.
///
/// Thread safety: a plain value; the source table keeps one per source under its set's lock.
public struct TokenBucket: Equatable, Sendable {
    /// Thousandths of a token.
    public private(set) var milliTokens: Int64 = 0
    /// When `milliTokens` was last brought up to date.
    public private(set) var updatedAt: Int64 = 0

    public init() {}

    /// A full bucket at `now`.
    public static func full(burst: Int, now: Int64) -> TokenBucket {
        var bucket = TokenBucket()
        bucket.milliTokens = Int64(burst) * 1000
        bucket.updatedAt = now
        return bucket
    }

    /// Takes one token if there is one at `now`; returns whether it did. A clock that went
    /// backwards refills nothing. `rate` and `burst` are at least 1 (smaller values count as 1).
    public mutating func take(now: Int64, rate: Int, burst: Int) -> Bool {
        let capacity = Int64(max(burst, 1)) * 1000
        if now > updatedAt {
            // Capped before multiplying, at the time an empty bucket takes to fill: a bucket idle
            // for years refills to full, and the product stays far from overflowing.
            let perMillisecond = Int64(max(rate, 1))
            let elapsed = min(now - updatedAt, capacity / perMillisecond + 1)
            milliTokens = min(capacity, milliTokens + elapsed * perMillisecond)
            updatedAt = now
        }
        milliTokens = min(milliTokens, capacity)
        guard milliTokens >= 1000 else { return false }
        milliTokens -= 1000
        return true
    }
}

/// `max-connection-rate` as a listener applies it: the generic cell rate algorithm (GCRA, ATM
/// Forum TM 4.1), a token bucket kept as one number, the theoretical arrival time, so that the
/// workers sharing a listener can update it with one compare-and-swap.
///
/// Each accepted connection moves the theoretical arrival time (`due`, in microseconds of a
/// monotonic clock) on by one interval (1/rate); a listener may run ahead of it by `rate`
/// intervals (a burst of one second's worth). Once the next connection would run further ahead,
/// the listener pauses accepting until it would not: the clients wait in the kernel's backlog
/// (HAProxy's `rate-limit sessions`) and nobody is refused. Connections accepted while the pause
/// takes effect (already queued) are served and lengthen the next pause, so over any long
/// window the listener accepts at most the rate plus one burst.
public enum AcceptPacing {
    /// The next `due` after one connection accepted at `now`, and how long (microseconds) the
    /// listener should now pause before accepting again (0: no pause).
    public static func accepted(due: Int64, now: Int64, rate: ConnectionRate) -> (due: Int64, pause: Int64) {
        let perSecond = Int64(max(rate.perSecond, 1))
        let interval = max(1_000_000 / perSecond, 1)
        let tolerance = interval * perSecond
        let next = max(due, now) + interval
        // The next connection conforms once `next + interval - tolerance` has come.
        let wait = next + interval - tolerance - now
        return (next, max(wait, 0))
    }
}
