import SwitchyardCore
import Synchronization

/// One slot per worker where the worker publishes a copy of its figures, once per tick, for the
/// scrape (and `show stats`) to read and sum.
///
/// The worker updates its own figures with plain stores all along and takes its slot's lock
/// only to publish; the reader takes each slot's lock only to copy the value out. No lock or
/// shared cache line is touched per I/O operation, and a slow scrape delays a worker by at most
/// one copy.
///
/// Thread safety: `publish(worker:_:)` from worker `worker` only (any thread works, but two
/// publishers of one slot would overwrite each other); `collect()` from any thread.
public final class PublishedFigures<Value: Sendable>: Sendable {
    private final class Slot: Sendable {
        let value: Mutex<Value>
        init(_ value: Value) { self.value = Mutex(value) }
    }

    private let slots: [Slot]

    /// `workers` slots, each starting as `initial` (the figures of a worker that has done nothing).
    public init(workers: Int, initial: Value) {
        slots = (0..<max(workers, 1)).map { _ in Slot(initial) }
    }

    public var workerCount: Int { slots.count }

    /// Replaces worker `worker`'s published copy with `value`.
    public func publish(worker: Int, _ value: Value) {
        slots[worker].value.withLock { $0 = value }
    }

    /// Updates worker `worker`'s published copy in place, for values whose storage should be
    /// reused rather than replaced (an array of per-listener figures copied element-wise).
    public func publish(worker: Int, update: (inout Value) -> Void) {
        slots[worker].value.withLock { update(&$0) }
    }

    /// A copy of every worker's latest published value, in worker order.
    public func collect() -> [Value] {
        slots.map { slot in slot.value.withLock { $0 } }
    }
}

extension PublishedFigures where Value == ConnectionFigures {
    /// The sum over all workers.
    public func merged() -> ConnectionFigures {
        var total = ConnectionFigures()
        for slot in slots {
            slot.value.withLock { total.merge($0) }
        }
        return total
    }
}
