import Synchronization

/// Clients waiting for a backend below its `max-connections`, in arrival order, shared by
/// every worker of one service (HAProxy's server queue with `timeout queue`).
///
/// A client waits only when every selectable backend is at its limit. When a connection to a
/// limited backend ends, its worker does not give the slot back: `grantFirst` hands it to the
/// longest-waiting client, whose worker finds the grant in `takeGrants` once woken. A slot is
/// thus never taken by a newcomer while someone waits, and the arrival order holds across
/// workers.
///
/// Thread safety: a lock, taken only on this saturated path (a client queued, a slot freed
/// while someone waits, a wait that timed out); `count` is one atomic load, so the common case
/// (nobody waiting) costs the data path nothing more.
public final class ConnectionQueue: Sendable {
    /// One waiting client: the worker that holds it and its connection slot.
    public struct Entry: Equatable, Sendable {
        public var worker: Int
        public var slot: UInt32
        public var generation: UInt32
        public init(worker: Int, slot: UInt32, generation: UInt32) {
            self.worker = worker
            self.slot = slot
            self.generation = generation
        }
    }

    /// A slot of backend `backendID` given to `entry` (the backend's count already includes it).
    public struct Grant: Equatable, Sendable {
        public var entry: Entry
        public var backendID: Int
        public init(entry: Entry, backendID: Int) {
            self.entry = entry
            self.backendID = backendID
        }
    }

    private struct State {
        var waiting: [Entry] = []
        var head = 0
        var grants: [Int: [Grant]] = [:]

        var count: Int { waiting.count - head }

        mutating func compact() {
            if head == waiting.count {
                waiting.removeAll(keepingCapacity: true)
                head = 0
            } else if head > 64 && head * 2 > waiting.count {
                waiting.removeFirst(head)
                head = 0
            }
        }
    }

    private let state = Mutex(State())
    private let waitingCount = Atomic<Int>(0)
    private let grantCount = Atomic<Int>(0)

    public init() {}

    /// Clients waiting now.
    public var count: Int { waitingCount.load(ordering: .relaxed) }

    /// Grants not yet taken by their workers.
    public var pendingGrants: Int { grantCount.load(ordering: .relaxed) }

    /// Appends `entry` unless `limit` clients already wait; false when the queue is full.
    public func enqueue(_ entry: Entry, limit: Int) -> Bool {
        state.withLock { state in
            guard state.count < limit else { return false }
            state.waiting.append(entry)
            waitingCount.store(state.count, ordering: .relaxed)
            return true
        }
    }

    /// Takes `entry` out (its wait timed out, or it went away); false when it is no longer
    /// waiting, i.e. a grant for it is already on its way.
    public func remove(_ entry: Entry) -> Bool {
        state.withLock { state in
            guard let index = state.waiting[state.head...].firstIndex(of: entry) else { return false }
            state.waiting.remove(at: index)
            state.compact()
            waitingCount.store(state.count, ordering: .relaxed)
            return true
        }
    }

    /// Gives a slot of `backendID` to the longest-waiting client; nil when nobody waits (the
    /// caller then gives the slot back to the backend).
    public func grantFirst(backendID: Int) -> Grant? {
        state.withLock { state in
            guard state.count > 0 else { return nil }
            let entry = state.waiting[state.head]
            state.head += 1
            state.compact()
            waitingCount.store(state.count, ordering: .relaxed)
            let grant = Grant(entry: entry, backendID: backendID)
            state.grants[entry.worker, default: []].append(grant)
            grantCount.add(1, ordering: .relaxed)
            return grant
        }
    }

    /// The grants for `worker`'s clients, oldest first, removed from the queue.
    public func takeGrants(worker: Int) -> [Grant] {
        guard grantCount.load(ordering: .relaxed) > 0 else { return [] }
        return state.withLock { state in
            guard let grants = state.grants.removeValue(forKey: worker) else { return [] }
            grantCount.subtract(grants.count, ordering: .relaxed)
            return grants
        }
    }
}
