/// What the status page charts: one subject is a service or one backend of a service.
public struct StatusSubject: Hashable, Sendable, Comparable, CustomStringConvertible {
    public let service: String
    /// The backend's address as `show backends` writes it; nil for the service itself.
    public let backend: String?

    public init(service: String, backend: String? = nil) {
        self.service = service
        self.backend = backend
    }

    public var description: String { backend.map { "\(service)/\($0)" } ?? service }

    public static func < (lhs: StatusSubject, rhs: StatusSubject) -> Bool {
        (lhs.service, lhs.backend ?? "") < (rhs.service, rhs.backend ?? "")
    }
}

/// The cumulative counters of one subject at one moment, as the sampler reads them.
public struct StatusCounters: Sendable, Equatable {
    /// Connections: accepted ones for a service, connects started for a backend.
    public var connections: UInt64 = 0
    /// Bytes from clients (to the backend).
    public var bytesIn: UInt64 = 0
    /// Bytes to clients (from the backend).
    public var bytesOut: UInt64 = 0
    /// Refusals and failures: connections a service refused or could not serve, connects a
    /// backend failed.
    public var errors: UInt64 = 0
    /// Successful backend connects' durations.
    public var connectTime = LatencyHistogram()

    public init(connections: UInt64 = 0, bytesIn: UInt64 = 0, bytesOut: UInt64 = 0, errors: UInt64 = 0,
                connectTime: LatencyHistogram = LatencyHistogram()) {
        self.connections = connections
        self.bytesIn = bytesIn
        self.bytesOut = bytesOut
        self.errors = errors
        self.connectTime = connectTime
    }
}

/// The status page's history: one `SeriesHistory` per subject, fed once a second with the
/// subjects' cumulative counters, from which it makes rates.
///
/// - A point holds `fields`: connections, bytes in and bytes out per second, the connect p99 of
///   that second in milliseconds (0 when nothing connected), errors per second.
/// - A counter that went down (a backend removed and added again, a takeover's new process)
///   starts over: that second's rate is 0 rather than a huge wrap.
/// - Memory is fixed: at most `maximumSubjects` histories (about 40 KiB each); subjects past
///   that are counted in `subjectsWithoutHistory` and drawn without charts. A subject that is no
///   longer reported (a service or backend removed) loses its history at once.
///
/// Thread safety: a plain value; one thread (the status sampler) mutates it.
public struct StatusRecorder: Sendable {
    public static let fields = ["conn_per_sec", "bytes_in_per_sec", "bytes_out_per_sec", "connect_p99_ms", "errors_per_sec"]
    static let rollups: [SeriesHistory.Rollup] = [.mean, .mean, .mean, .maximum, .mean]
    public static let defaultMaximumSubjects = 1024

    public let maximumSubjects: Int
    public private(set) var histories: [StatusSubject: SeriesHistory] = [:]
    /// The latest point of each subject (history or not), for the page's current figures.
    public private(set) var latest: [StatusSubject: [Float]] = [:]
    public private(set) var subjectsWithoutHistory = 0
    private var previous: [StatusSubject: StatusCounters] = [:]
    private var previousTime: Int64?
    private let secondPoints: Int
    private let minutePoints: Int

    public init(maximumSubjects: Int = StatusRecorder.defaultMaximumSubjects,
                secondPoints: Int = SeriesHistory.secondPoints, minutePoints: Int = SeriesHistory.minutePoints) {
        self.maximumSubjects = maximumSubjects
        self.secondPoints = secondPoints
        self.minutePoints = minutePoints
    }

    /// Records second `time` (seconds since the epoch) of every subject. The first call only
    /// keeps the counters (a rate needs two readings); a time not after the previous one is
    /// ignored.
    public mutating func record(time: Int64, _ counters: [StatusSubject: StatusCounters]) {
        if let previousTime, time <= previousTime { return }
        let elapsed = previousTime.map { Float(time - $0) }
        previousTime = time
        for subject in histories.keys where counters[subject] == nil { histories[subject] = nil }
        for subject in latest.keys where counters[subject] == nil { latest[subject] = nil }
        defer { previous = counters }
        guard let elapsed else { return }
        var withoutHistory = 0
        for subject in counters.keys.sorted() {
            let now = counters[subject]!
            guard let before = previous[subject] else { continue }
            let point = Self.point(from: before, to: now, seconds: elapsed)
            latest[subject] = point
            if histories[subject] == nil {
                guard histories.count < maximumSubjects else {
                    withoutHistory += 1
                    continue
                }
                histories[subject] = SeriesHistory(fields: Self.fields, rollups: Self.rollups,
                                                   secondPoints: secondPoints, minutePoints: minutePoints)
            }
            histories[subject]!.record(time: time, point)
        }
        subjectsWithoutHistory = withoutHistory
    }

    /// The rates between two readings `seconds` apart.
    static func point(from before: StatusCounters, to now: StatusCounters, seconds: Float) -> [Float] {
        func rate(_ a: UInt64, _ b: UInt64) -> Float { b >= a ? Float(b - a) / seconds : 0 }
        var interval = now.connectTime
        let p99: Float
        if interval.count >= before.connectTime.count, interval.subtract(before.connectTime),
           let value = interval.quantileSeconds(0.99) {
            p99 = Float(value * 1000)
        } else {
            p99 = 0
        }
        return [rate(before.connections, now.connections), rate(before.bytesIn, now.bytesIn),
                rate(before.bytesOut, now.bytesOut), p99, rate(before.errors, now.errors)]
    }

    /// Every subject's series at `resolution` (1 or 60) as JSON, points after `since` only when
    /// given: `{"fields":[...],"resolution_seconds":R,"subjects":[{"service":S,"backend":B|null,"points":[[t,...],...]}]}`.
    public func json(resolution: Int, since: Int64? = nil) -> String {
        let subjects = histories.keys.sorted().map { subject in
            JSONText.object([
                ("service", JSONText.string(subject.service)),
                ("backend", subject.backend.map(JSONText.string) ?? "null"),
                ("points", histories[subject]!.pointsJSON(resolution: resolution, since: since)),
            ])
        }
        return JSONText.object([
            ("resolution_seconds", resolution == 60 ? "60" : "1"),
            ("fields", JSONText.array(Self.fields.map(JSONText.string))),
            ("subjects", JSONText.array(subjects)),
        ])
    }
}

extension LatencyHistogram {
    /// Takes away the observations of `earlier`, an earlier reading of the same cumulative
    /// histogram, leaving those recorded since. False (and unchanged) when `earlier` is not
    /// contained in this one (the counters started over).
    public mutating func subtract(_ earlier: LatencyHistogram) -> Bool {
        for index in 0..<Self.bucketCount where count(inBucket: index) < earlier.count(inBucket: index) {
            return false
        }
        for index in 0..<Self.bucketCount {
            removeFromBucket(index, earlier.count(inBucket: index))
        }
        removeTotals(count: earlier.count, sumNanoseconds: earlier.sumNanoseconds)
        return true
    }
}
