import Synchronization

/// One backend's `PeakEWMA` of connect times, shared by every worker (`BackendStats.connectLatency`).
///
/// The state is two words (the estimate's bits and its stamp) in one double-word atomic, so a
/// reader never sees an estimate with another sample's stamp. `record` is a CAS loop: it
/// retries only when another worker recorded between its load and its store.
///
/// Thread safety: any thread; `least-latency` workers read it on every pick, and the worker that
/// completes a connect records it.
public final class ConnectLatency: Sendable {
    private let state = Atomic<WordPair>(WordPair(first: 0, second: 0))

    public init() {}

    /// Adds one connect time, `nanoseconds`, measured at `now` on `LatencyClock` (the clock
    /// `LeastLatencyBalancer` reads by default). A worker records the time from starting the
    /// connect to its completion; for a connect that failed or timed out, the time until then
    /// (at least the connect timeout for a timeout), so that a failing backend looks slow rather
    /// than fast.
    public func record(nanoseconds: UInt64, now: UInt64, decayTime: UInt64 = PeakEWMA.defaultDecayTime) {
        var current = state.load(ordering: .relaxed)
        while true {
            var ewma = Self.decode(current)
            ewma.record(nanoseconds, at: now, decayTime: decayTime)
            let (exchanged, original) = state.compareExchange(
                expected: current, desired: Self.encode(ewma), ordering: .relaxed)
            if exchanged { return }
            current = original
        }
    }

    /// The state as of the last sample.
    public var ewma: PeakEWMA {
        Self.decode(state.load(ordering: .relaxed))
    }

    private static func encode(_ ewma: PeakEWMA) -> WordPair {
        WordPair(first: UInt(truncatingIfNeeded: ewma.estimate.bitPattern), second: UInt(truncatingIfNeeded: ewma.stamp))
    }

    private static func decode(_ pair: WordPair) -> PeakEWMA {
        PeakEWMA(estimate: Double(bitPattern: UInt64(pair.first)), stamp: UInt64(pair.second))
    }
}
