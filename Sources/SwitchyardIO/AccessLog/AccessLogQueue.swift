import SwitchyardCore
import Synchronization

/// A bounded single-producer, single-consumer queue of access-log records: one per worker,
/// drained by the access-log thread.
///
/// The ring of records is allocated once, at start. `enqueue` copies a record into the next
/// slot (retaining the record's name strings, never allocating) and publishes it with one
/// release store; it never blocks and never waits for the consumer. When the ring is full the
/// record is dropped and counted.
///
/// Thread safety: `enqueue` from the owning worker only; `drain` from the access-log thread
/// only; `droppedCount` from any thread.
public final class AccessLogQueue: @unchecked Sendable {
    /// Slots; a power of two so that a position maps to a slot with a mask.
    public let capacity: Int
    private let mask: Int
    private let slots: UnsafeMutablePointer<AccessLogRecord>
    /// Next position the consumer reads. Written by the consumer only.
    private let head = Atomic<Int>(0)
    /// Next position the producer writes. Written by the producer only.
    private let tail = Atomic<Int>(0)
    /// Records dropped because the ring was full.
    private let dropped = Atomic<UInt64>(0)
    /// The producer's last look at `head`; re-read only when the ring seems full, so the
    /// producer does not touch the consumer's cache line per record.
    private var cachedHead = 0

    /// A ring of at least `capacity` records (rounded up to a power of two, at least 2).
    public init(capacity: Int) {
        var size = 2
        while size < capacity { size <<= 1 }
        self.capacity = size
        mask = size - 1
        slots = UnsafeMutablePointer<AccessLogRecord>.allocate(capacity: size)
        slots.initialize(repeating: .empty, count: size)
    }

    deinit {
        slots.deinitialize(count: capacity)
        slots.deallocate()
    }

    /// Producer only. Queues `record`; false (and the record counted as dropped) when full.
    @discardableResult
    public func enqueue(_ record: AccessLogRecord) -> Bool {
        let position = tail.load(ordering: .relaxed)
        if position - cachedHead >= capacity {
            cachedHead = head.load(ordering: .acquiring)
            if position - cachedHead >= capacity {
                dropped.wrappingAdd(1, ordering: .relaxed)
                return false
            }
        }
        slots[position & mask] = record
        tail.store(position + 1, ordering: .releasing)
        return true
    }

    /// Consumer only. Hands every queued record to `body`, oldest first, then frees their slots
    /// (releasing the strings they hold). Returns how many there were.
    @discardableResult
    func drain(_ body: (AccessLogRecord) -> Void) -> Int {
        let start = head.load(ordering: .relaxed)
        let end = tail.load(ordering: .acquiring)
        guard end > start else { return 0 }
        for position in start..<end {
            body(slots[position & mask])
            slots[position & mask] = .empty
        }
        head.store(end, ordering: .releasing)
        return end - start
    }

    /// Records dropped so far because the ring was full.
    public var droppedCount: UInt64 { dropped.load(ordering: .relaxed) }
}
