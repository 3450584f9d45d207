import Glibc
import Synchronization
import SwitchyardCore

/// The per-source table of the instance (`source-table-size`), shared by every worker so that
/// `max-connections-per-source` and `connection-rate-per-source` are exact across workers.
///
/// Memory: `setCount` sets of `SourceSet.ways` 64-byte `SourceEntry`s (512 bytes a set), one
/// `calloc` made at start and never grown: 4 MiB for the default 65,536 entries. Zeroed pages
/// cost no resident memory until a source lands in them, so an instance whose services set no
/// per-client control stays as small as before. The rules (which way a source takes, which is
/// forgotten, the token bucket) are the pure `SourceSet`.
///
/// Why it is cheap: a worker touches the table once when it admits a connection and once when
/// it closes, never per I/O operation. Each time it takes one of `lockCount` (up to 1,024)
/// futex-based mutexes, the one guarding the source's set, for a scan of 8 entries in one 512
/// byte block: a few tens of nanoseconds, and two workers contend only when their sources hash
/// to the same stripe (1 in 1,024).
///
/// Thread safety: any thread; each set is read and written only under its stripe's mutex, and
/// the memory lives as long as the table (the instance).
public final class SourceTable: @unchecked Sendable {
    public let setCount: Int
    private let sets: UnsafeMutablePointer<SourceSet>
    private let locks: [StripeLock]
    /// Random per instance, so that nobody can aim many sources at one set.
    private let seed: UInt64
    /// The table's number for each service name (1, 2, ...), never reused.
    private let serviceNumbers = Mutex<[String: UInt32]>([:])

    private final class StripeLock: Sendable {
        let mutex = Mutex<Void>(())
    }

    /// A table of at least `entries` entries (rounded up to a power of two number of sets).
    public init(entries: Int) {
        let wanted = max(1, (entries + SourceSet.ways - 1) / SourceSet.ways)
        var count = 1
        while count < wanted { count <<= 1 }
        setCount = count
        precondition(MemoryLayout<SourceSet>.stride == SourceSet.ways * MemoryLayout<SourceEntry>.stride)
        guard let memory = calloc(count, MemoryLayout<SourceSet>.stride) else {
            fatalError("source table: cannot allocate \(count * MemoryLayout<SourceSet>.stride) bytes")
        }
        // All zero is an empty `SourceSet`, so calloc's memory is a table of empty sets.
        sets = memory.bindMemory(to: SourceSet.self, capacity: count)
        locks = (0..<min(count, 1024)).map { _ in StripeLock() }
        seed = UInt64.random(in: .min ... .max)
    }

    deinit {
        free(sets)
    }

    /// Entries the table holds, and the bytes they take.
    public var entryCount: Int { setCount * SourceSet.ways }
    public var byteCount: Int { setCount * MemoryLayout<SourceSet>.stride }

    /// The table's number for `service` (assigned on first use; takes a lock, so callers cache it).
    public func number(forService service: String) -> UInt32 {
        serviceNumbers.withLock { numbers in
            if let number = numbers[service] { return number }
            let number = UInt32(numbers.count + 1)
            numbers[service] = number
            return number
        }
    }

    /// Runs `body` on the set of `key` under its stripe's lock; returns the set's index too.
    @inline(__always)
    public func withSet<R>(of key: SourceKey, _ body: (inout SourceSet) -> R) -> (set: Int, result: R) {
        let index = key.setIndex(seed: seed, setCount: setCount)
        return (index, withSet(index, body))
    }

    @inline(__always)
    public func withSet<R>(_ index: Int, _ body: (inout SourceSet) -> R) -> R {
        locks[index & (locks.count - 1)].mutex.withLock { _ in body(&sets[index]) }
    }

    /// One row of `show sources`.
    public struct Row: Sendable {
        public var service: String
        public var entry: SourceEntry
    }

    /// The sources of `service` (every service when nil) that hold open connections or were
    /// seen in the last `window` milliseconds, busiest first (open connections, then attempts a
    /// second, then refusals), at most `limit` of them. Locks one stripe at a time.
    public func busiest(service: String?, now: Int64, window: Int64 = 60_000, limit: Int = 100) -> [Row] {
        let names = serviceNumbers.withLock { $0 }
        let wanted = service.map { names[$0] ?? UInt32.max }
        var found: [SourceEntry] = []
        for index in 0..<setCount {
            withSet(index) { set in
                for way in 0..<SourceSet.ways {
                    let entry = set.entries[way]
                    guard !entry.isFree, wanted == nil || entry.key.service == wanted,
                          entry.open > 0 || now - entry.lastSeen <= window else { continue }
                    found.append(entry)
                }
            }
        }
        found.sort { a, b in
            if a.open != b.open { return a.open > b.open }
            let rateA = a.attemptsPerSecond(now: now), rateB = b.attemptsPerSecond(now: now)
            if rateA != rateB { return rateA > rateB }
            return a.refusals > b.refusals
        }
        let byNumber = Dictionary(names.map { ($0.value, $0.key) }, uniquingKeysWith: { a, _ in a })
        return found.prefix(limit).map { Row(service: byNumber[$0.key.service] ?? "?", entry: $0) }
    }
}

/// `max-connection-rate` of one listener, shared by the workers accepting on it: the
/// theoretical arrival time of `AcceptPacing`, updated with compare-and-swap (no lock).
final class AcceptPacer: Sendable {
    /// Microseconds of the monotonic clock.
    let due = Atomic<Int64>(0)

    /// Counts one accepted connection at `now` (microseconds); returns how long the listener
    /// should pause (microseconds, 0: none).
    func accepted(now: Int64, rate: ConnectionRate) -> Int64 {
        var current = due.load(ordering: .relaxed)
        while true {
            let (next, pause) = AcceptPacing.accepted(due: current, now: now, rate: rate)
            let (exchanged, original) = due.compareExchange(expected: current, desired: next, ordering: .relaxed)
            if exchanged { return pause }
            current = original
        }
    }
}

/// Every listener's pacer, by listener id (created when a worker first needs it).
final class AcceptPacers: Sendable {
    private let pacers = Mutex<[Int: AcceptPacer]>([:])

    func pacer(forListener id: Int) -> AcceptPacer {
        pacers.withLock { pacers in
            if let pacer = pacers[id] { return pacer }
            let pacer = AcceptPacer()
            pacers[id] = pacer
            return pacer
        }
    }
}
