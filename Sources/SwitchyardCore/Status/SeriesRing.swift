/// A fixed-size ring of time-stamped points at one resolution, for the status page's charts.
///
/// Holds at most `capacity` points of `width` values each, stored flat in storage allocated once
/// at `init`: appending overwrites the oldest point and never grows anything, so the memory of
/// a ring is fixed (`capacity × (8 + 4 × width)` bytes) whatever the traffic or uptime. Values
/// are `Float`: a chart needs about three significant digits, and half the bytes of `Double`.
///
/// Thread safety: a plain value; one thread mutates it (the status sampler).
public struct SeriesRing: Sendable, Equatable {
    /// Seconds between two points (1 or 60 for the status page).
    public let resolution: Int
    public let capacity: Int
    /// Values per point.
    public let width: Int
    private var times: [Int64]
    private var values: [Float]
    /// Where the next point goes.
    private var next = 0
    /// Points held, at most `capacity`.
    public private(set) var count = 0

    public init(resolution: Int, capacity: Int, width: Int) {
        precondition(resolution > 0 && capacity > 0 && width > 0)
        self.resolution = resolution
        self.capacity = capacity
        self.width = width
        times = Array(repeating: 0, count: capacity)
        values = Array(repeating: 0, count: capacity * width)
    }

    /// The newest point's time; nil when empty.
    public var latestTime: Int64? { count == 0 ? nil : times[(next + capacity - 1) % capacity] }

    /// Adds a point at `time` (seconds since the epoch), overwriting the oldest when full.
    /// `point` must hold `width` values; extra ones are ignored and missing ones are 0.
    public mutating func append(time: Int64, _ point: [Float]) {
        times[next] = time
        let base = next * width
        for index in 0..<width { values[base + index] = index < point.count ? point[index] : 0 }
        next = (next + 1) % capacity
        count = min(count + 1, capacity)
    }

    /// The point `age` places before the newest (0: the newest); nil past the oldest.
    public func point(age: Int) -> (time: Int64, values: ArraySlice<Float>)? {
        guard age >= 0, age < count else { return nil }
        let slot = (next + capacity - 1 - age) % capacity
        return (times[slot], values[slot * width..<(slot + 1) * width])
    }

    /// Every point, oldest first.
    public var points: [(time: Int64, values: [Float])] {
        (0..<count).reversed().map { age in
            let point = point(age: age)!
            return (point.time, Array(point.values))
        }
    }
}
