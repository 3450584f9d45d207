/// The history of one chart subject (a service or a backend) for the status page: the last 15
/// minutes at 1-second resolution and the last 24 hours at 1-minute resolution, in two fixed
/// `SeriesRing`s.
///
/// `record` takes one point a second; each minute's points are folded into one minute point
/// when the first point of the next minute arrives, field by field as `rollups` says (rates are
/// averaged, a p99 keeps the minute's maximum, so a slow spell is not averaged away).
///
/// Thread safety: a plain value; one thread mutates it (the status sampler).
public struct SeriesHistory: Sendable, Equatable {
    /// How a minute point is made from its seconds.
    public enum Rollup: Sendable, Equatable {
        /// The mean of the seconds recorded (rates per second).
        case mean
        /// The largest (quantiles, peaks).
        case maximum
    }

    /// 15 minutes of seconds.
    public static let secondPoints = 15 * 60
    /// 24 hours of minutes.
    public static let minutePoints = 24 * 60

    /// The name of each value of a point, in order (the JSON export's `fields`).
    public let fields: [String]
    public let rollups: [Rollup]
    public private(set) var seconds: SeriesRing
    public private(set) var minutes: SeriesRing
    /// The minute being folded (its first second) and what it has gathered.
    private var minuteStart: Int64?
    private var gathered: [Float]
    private var gatheredCount = 0

    /// `rollups` gives one rollup per field (missing ones are `mean`).
    public init(fields: [String], rollups: [Rollup] = [],
                secondPoints: Int = SeriesHistory.secondPoints, minutePoints: Int = SeriesHistory.minutePoints) {
        self.fields = fields
        self.rollups = fields.indices.map { $0 < rollups.count ? rollups[$0] : .mean }
        seconds = SeriesRing(resolution: 1, capacity: secondPoints, width: fields.count)
        minutes = SeriesRing(resolution: 60, capacity: minutePoints, width: fields.count)
        gathered = Array(repeating: 0, count: fields.count)
    }

    /// Records the point of second `time` (seconds since the epoch). A time not after the last
    /// one recorded is ignored: the clock may be stepped back, and the rings stay ordered.
    public mutating func record(time: Int64, _ point: [Float]) {
        if let latest = seconds.latestTime, time <= latest { return }
        seconds.append(time: time, point)
        let minute = time - time % 60
        if minuteStart != minute {
            flushMinute()
            minuteStart = minute
        }
        for index in fields.indices {
            let value = index < point.count ? point[index] : 0
            switch rollups[index] {
            case .mean: gathered[index] += value
            case .maximum: gathered[index] = gatheredCount == 0 ? value : max(gathered[index], value)
            }
        }
        gatheredCount += 1
    }

    /// Folds the gathered seconds into one minute point.
    private mutating func flushMinute() {
        guard let start = minuteStart, gatheredCount > 0 else { return }
        let point = fields.indices.map { index in
            rollups[index] == .mean ? gathered[index] / Float(gatheredCount) : gathered[index]
        }
        minutes.append(time: start, point)
        gathered = Array(repeating: 0, count: fields.count)
        gatheredCount = 0
    }

    /// The minute being gathered, as a point (its time is the minute's first second); nil
    /// before the first record. The export adds it so the last minute shows before it ends.
    public var currentMinute: (time: Int64, values: [Float])? {
        guard let start = minuteStart, gatheredCount > 0 else { return nil }
        return (start, fields.indices.map { index in
            rollups[index] == .mean ? gathered[index] / Float(gatheredCount) : gathered[index]
        })
    }

    /// Bytes the two rings hold, fixed at `init`.
    public var storageBytes: Int {
        (seconds.capacity + minutes.capacity) * (8 + 4 * fields.count)
    }

    /// The series as JSON: `{"resolution_seconds":R,"fields":[...],"points":[[time,v1,...],...]}`,
    /// oldest first; the minute series ends with the minute being gathered.
    public func json(resolution: Int) -> String {
        "{\"resolution_seconds\":\(resolution == 60 ? 60 : 1),\"fields\":"
            + JSONText.array(fields.map(JSONText.string)) + ",\"points\":" + pointsJSON(resolution: resolution) + "}"
    }

    /// The points alone as a JSON array, `[[time,v1,...],...]`, oldest first; only those after
    /// `since` when it is given (a page that has the rest asks for what is new).
    public func pointsJSON(resolution: Int, since: Int64? = nil) -> String {
        var points = (resolution == 60 ? minutes : seconds).points
        if resolution == 60, let current = currentMinute { points.append(current) }
        if let since { points.removeAll { $0.time <= since } }
        let rows = points.map { point in
            "[" + ([String(point.time)] + point.values.map(Self.number)).joined(separator: ",") + "]"
        }
        return "[" + rows.joined(separator: ",") + "]"
    }

    /// A JSON number for `value`: whole numbers without a fraction, others with at most three
    /// decimals; NaN and infinities (which JSON lacks) as 0.
    static func number(_ value: Float) -> String {
        guard value.isFinite else { return "0" }
        let rounded = (Double(value) * 1000).rounded() / 1000
        if rounded == rounded.rounded(), abs(rounded) < 1e15 { return String(Int64(rounded)) }
        return String(Float(rounded))  // Float's shortest form: 0.333, 1e+20
    }
}
