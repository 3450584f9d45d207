/// A peak-sensitive, time-decayed moving average of one backend's connect times, after the
/// "peak EWMA" load metric of Twitter's Finagle (`PeakEwma` in finagle-core's load balancers),
/// which Linkerd also uses. This is Switchyard's own formulation, on connect times:
///
/// - **Peak-sensitive.** A sample above the current estimate replaces it at once, so a backend
///   that turns slow is seen as slow from its first slow connect.
/// - **Moving average.** A sample below the estimate is blended in with weight `1 - w`, where
///   `w = e^(-Δt/τ)` and `Δt` is the time since the previous sample: the estimate averages over
///   the last τ or so of time, not over a fixed number of samples.
/// - **Decay.** Between samples the estimate decays toward zero as `e^(-Δt/τ)`. A backend that is
///   avoided because it was slow therefore looks cheaper as time passes, until it is tried
///   again; if it is fast by then, its estimate drops to the new samples and it gets its share
///   back. Without this, an avoided backend would keep its old estimate forever.
///
/// τ (`decayTime`) defaults to 1 s, shorter than Finagle's 10 s for request latencies: connects
/// are rarer than requests, and the issue asks that a backend recover within seconds. With it, a
/// backend whose estimate jumped from 100 µs to a 1 s SYN retransmit is back in range of its
/// peers after about τ·ln(10⁴) ≈ 9 s without samples.
///
/// Times are nanoseconds on one monotonic clock (`LatencyClock.now()` in production; tests
/// inject their own). A `stamp` of 0 means "no sample yet"; a sample recorded at `now` 0 is
/// stamped 1, so the clock must simply never go backwards from there.
///
/// Thread safety: a value. `ConnectLatency` shares one between workers with a CAS loop.
public struct PeakEWMA: Hashable, Sendable {
    /// τ: after this long without samples the estimate has decayed to 1/e of its value.
    public static let defaultDecayTime: UInt64 = 1_000_000_000

    /// The estimate in nanoseconds as of `stamp`.
    public private(set) var estimate: Double
    /// When the last sample was recorded; 0 when none has been.
    public private(set) var stamp: UInt64

    /// No sample yet.
    public init() {
        estimate = 0
        stamp = 0
    }

    /// The state `estimate` as of `stamp` (for storing the value in atomics and in tests).
    public init(estimate: Double, stamp: UInt64) {
        self.estimate = estimate.isFinite && estimate > 0 ? estimate : 0
        self.stamp = stamp
    }

    public var hasSamples: Bool { stamp != 0 }

    /// The estimate at `now`, decayed since the last sample; 0 when there is no sample. A `now`
    /// before `stamp` (another worker's later sample) is taken as `stamp`.
    public func value(at now: UInt64, decayTime: UInt64 = PeakEWMA.defaultDecayTime) -> Double {
        guard hasSamples else { return 0 }
        return estimate * Self.decay(elapsed: now > stamp ? now - stamp : 0, decayTime: decayTime)
    }

    /// Adds one connect time, `nanoseconds`, measured at `now`.
    public mutating func record(_ nanoseconds: UInt64, at now: UInt64, decayTime: UInt64 = PeakEWMA.defaultDecayTime) {
        let sample = Double(nanoseconds)
        let now = max(now, 1)
        guard hasSamples else {
            estimate = sample
            stamp = now
            return
        }
        let w = Self.decay(elapsed: now > stamp ? now - stamp : 0, decayTime: decayTime)
        let decayed = estimate * w
        estimate = sample >= decayed ? sample : decayed * w + sample * (1 - w)
        stamp = max(stamp, now)
    }

    /// `e^(-elapsed/decayTime)`: 1 for no time, toward 0 for long times (0 when `decayTime` is 0).
    public static func decay(elapsed: UInt64, decayTime: UInt64) -> Double {
        guard decayTime > 0 else { return elapsed == 0 ? 1 : 0 }
        return exponentialOfNegative(Double(elapsed) / Double(decayTime))
    }

    /// `e^(-x)` for `x >= 0` (1 for smaller or NaN), without the C library (the core imports no
    /// Glibc): `x = k·ln 2 + r` with `0 <= r < ln 2`, so `e^(-x) = 2^(-k) · e^(-r)`, and `e^(-r)`
    /// from its Taylor series, whose 18 terms leave an error below 10⁻¹⁶ on that range.
    static func exponentialOfNegative(_ x: Double) -> Double {
        guard x > 0 else { return 1 }
        guard x < 700 else { return 0 }
        let ln2 = 0.693_147_180_559_945_3
        let k = (x / ln2).rounded(.down)
        let r = x - k * ln2
        var term = 1.0
        var sum = 1.0
        for n in 1...17 {
            term *= -r / Double(n)
            sum += term
        }
        return sum * Double(sign: .plus, exponent: -Int(k), significand: 1)
    }
}

/// The clock connect times are stamped with: nanoseconds since an arbitrary origin (the first
/// reading in the process), from Swift's `ContinuousClock` (`CLOCK_BOOTTIME` on Linux), fine
/// enough to time a loopback connect. Never 0. Callable from any thread.
public enum LatencyClock {
    private static let origin = ContinuousClock.now

    public static func now() -> UInt64 {
        let elapsed = ContinuousClock.now - origin
        let (seconds, attoseconds) = elapsed.components
        let nanoseconds = UInt64(max(seconds, 0)) &* 1_000_000_000 &+ UInt64(max(attoseconds, 0) / 1_000_000_000)
        return nanoseconds &+ 1
    }
}
