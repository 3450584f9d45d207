/// A histogram of durations with fixed log-linear buckets, for connect times, health-check round
/// trips and session lengths.
///
/// Buckets: every octave (power of two) of nanoseconds from 2^13 ns (8.192 µs) to 2^36 ns
/// (68.7 s) is split into four equal parts, so a bucket is at most 25 % wider than its lower
/// bound (HdrHistogram's log-linear layout with two sub-bucket bits). One bucket holds everything
/// up to 8.192 µs and one everything above 68.7 s: 94 counters in all. A bucket holds the values
/// `lower < v <= upper`, as a Prometheus `le` bound reads.
///
/// `record(nanoseconds:)` is a few integer instructions and never allocates: the counts live
/// inline (`InlineArray`), so the whole value (about 770 bytes) is copied by a plain memcpy and
/// can be published to another thread as a copy.
///
/// Thread safety: a plain value; one thread mutates its own copy.
public struct LatencyHistogram: Sendable, Equatable {
    /// log2 of the first bucket's upper bound in nanoseconds (2^13 ns = 8.192 µs).
    static let firstOctave = 13
    /// log2 of the last finite upper bound (2^36 ns = 68.719476736 s).
    static let lastOctave = 36
    static let subBucketBits = 2
    static let subBuckets = 1 << subBucketBits

    /// Buckets with a finite upper bound: the one up to 2^13 ns, then four per octave.
    public static let finiteBucketCount = 1 + (lastOctave - firstOctave) * subBuckets
    /// Every bucket, the overflow one (above 2^36 ns) included.
    public static let bucketCount = finiteBucketCount + 1

    private var counts = InlineArray<94, UInt64>(repeating: 0)
    /// Observations recorded.
    public private(set) var count: UInt64 = 0
    /// Sum of the recorded values in nanoseconds (wrapping, as a Prometheus counter would reset).
    public private(set) var sumNanoseconds: UInt64 = 0

    public init() {
        assert(counts.count == Self.bucketCount)
    }

    /// Adds one observation. Negative values count as zero. O(1), no allocation.
    public mutating func record(nanoseconds: Int64) {
        let value = UInt64(max(nanoseconds, 0))
        addToBucket(Self.bucketIndex(nanoseconds: value))
        count &+= 1
        sumNanoseconds &+= value
    }

    /// Adds one observation of `duration` (negative counts as zero).
    public mutating func record(_ duration: Duration) {
        record(nanoseconds: duration.nanosecondsClamped)
    }

    mutating func addToBucket(_ index: Int) {
        counts[index] &+= 1
    }

    /// For `subtract` (StatusRecorder.swift): the caller checked the counts are there.
    mutating func removeFromBucket(_ index: Int, _ amount: UInt64) {
        counts[index] -= amount
    }

    mutating func removeTotals(count removed: UInt64, sumNanoseconds removedSum: UInt64) {
        count &-= removed
        sumNanoseconds &-= removedSum
    }

    /// The bucket holding `value` nanoseconds: the one whose `(lower, upper]` range contains it.
    static func bucketIndex(nanoseconds value: UInt64) -> Int {
        guard value > 1 << firstOctave else { return 0 }
        // Work on value - 1 so that a value equal to an upper bound lands in that bucket.
        let below = value - 1
        let octave = 63 - below.leadingZeroBitCount
        guard octave < lastOctave else { return bucketCount - 1 }
        let sub = Int(truncatingIfNeeded: below >> UInt64(octave - subBucketBits)) & (subBuckets - 1)
        return 1 + (octave - firstOctave) * subBuckets + sub
    }

    /// The inclusive upper bound of bucket `index` in nanoseconds; nil for the overflow bucket.
    public static func upperBoundNanoseconds(ofBucket index: Int) -> UInt64? {
        precondition(index >= 0 && index < bucketCount, "bucket \(index) out of range")
        if index == 0 { return 1 << UInt64(firstOctave) }
        if index == bucketCount - 1 { return nil }
        let octave = firstOctave + (index - 1) / subBuckets
        let sub = UInt64((index - 1) % subBuckets)
        return (1 << UInt64(octave)) + (sub + 1) << UInt64(octave - subBucketBits)
    }

    /// The exclusive lower bound of bucket `index` in nanoseconds (0 for the first).
    static func lowerBoundNanoseconds(ofBucket index: Int) -> UInt64 {
        index == 0 ? 0 : upperBoundNanoseconds(ofBucket: index - 1)!
    }

    /// Observations in bucket `index` alone (not cumulative).
    public func count(inBucket index: Int) -> UInt64 {
        counts[index]
    }

    /// Adds every observation of `other` to this histogram (exact: both have the same buckets).
    public mutating func merge(_ other: LatencyHistogram) {
        for index in 0..<Self.bucketCount {
            counts[index] &+= other.counts[index]
        }
        count &+= other.count
        sumNanoseconds &+= other.sumNanoseconds
    }

    /// Sum of the recorded values in seconds.
    public var sumSeconds: Double { Double(sumNanoseconds) / 1e9 }

    /// An estimate of the `quantile` (0 ... 1; 0.99 for p99) in nanoseconds, interpolated linearly
    /// inside the bucket where the cumulative count reaches it; nil when nothing was recorded.
    /// The error is at most the width of that bucket (a quarter of an octave). A quantile that
    /// falls in the overflow bucket is reported as its lower bound, 2^36 ns.
    public func quantileNanoseconds(_ quantile: Double) -> Double? {
        guard count > 0 else { return nil }
        let q = min(max(quantile, 0), 1)
        // The rank of the wanted observation, 1-based, as Prometheus's histogram_quantile does.
        let rank = max(q * Double(count), 1)
        var cumulative: UInt64 = 0
        for index in 0..<Self.bucketCount {
            let inBucket = counts[index]
            guard inBucket > 0 else { continue }
            if Double(cumulative + inBucket) >= rank {
                let lower = Double(Self.lowerBoundNanoseconds(ofBucket: index))
                guard let upper = Self.upperBoundNanoseconds(ofBucket: index) else { return lower }
                let fraction = (rank - Double(cumulative)) / Double(inBucket)
                return lower + (Double(upper) - lower) * fraction
            }
            cumulative += inBucket
        }
        return Double(Self.lowerBoundNanoseconds(ofBucket: Self.bucketCount - 1))
    }

    /// `quantileNanoseconds(_:)` in seconds.
    public func quantileSeconds(_ quantile: Double) -> Double? {
        quantileNanoseconds(quantile).map { $0 / 1e9 }
    }

    /// The bucket bounds a scrape exposes: one per octave, 2^13 ns ... 2^36 ns (24 bounds), so a
    /// series costs 24 buckets rather than 94. Each is an exact bound of the internal buckets,
    /// so the cumulative counts at these bounds are exact.
    public static let exposedBucketIndexes: [Int] = [0] + (1...(lastOctave - firstOctave)).map { $0 * subBuckets }

    /// One exposed bucket: its inclusive upper bound and the observations at or below it.
    public struct CumulativeBucket: Sendable, Equatable {
        public var upperBoundNanoseconds: UInt64
        public var cumulativeCount: UInt64
        /// The bound as a Prometheus `le` reads it, in seconds.
        public var upperBoundSeconds: Double { Double(upperBoundNanoseconds) / 1e9 }
    }

    /// The cumulative count at each exposed bound, ascending; the `+Inf` bucket is `count`.
    public var exposedBuckets: [CumulativeBucket] {
        var result: [CumulativeBucket] = []
        result.reserveCapacity(Self.exposedBucketIndexes.count)
        var cumulative: UInt64 = 0
        var next = 0
        for index in Self.exposedBucketIndexes {
            while next <= index {
                cumulative &+= counts[next]
                next += 1
            }
            result.append(CumulativeBucket(upperBoundNanoseconds: Self.upperBoundNanoseconds(ofBucket: index)!, cumulativeCount: cumulative))
        }
        return result
    }

    public static func == (lhs: LatencyHistogram, rhs: LatencyHistogram) -> Bool {
        guard lhs.count == rhs.count, lhs.sumNanoseconds == rhs.sumNanoseconds else { return false }
        for index in 0..<bucketCount where lhs.counts[index] != rhs.counts[index] { return false }
        return true
    }
}
