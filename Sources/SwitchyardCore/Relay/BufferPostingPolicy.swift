/// How many of a worker's receive buffers are posted in the kernel's provided-buffer ring, and
/// when a spare buffer's memory goes back to the kernel.
///
/// The kernel hands posted buffers out in ring order, so posting every buffer means that a busy
/// minute touches each of them once and all stay resident. The pool therefore posts only
/// `target` buffers and keeps the rest in a last-in-first-out stack of spares: a recycled buffer,
/// still warm in the cache, is the next one posted, and the spares at the bottom of the stack go
/// cold, then have their pages released. This type is the decision; `ProvidedBuffers` in
/// SwitchyardIO applies it.
///
/// - `ringRanDry()` when a receive found the ring empty (`-ENOBUFS`): the target grows by
///   `growthStep`, up to `capacity`. Every starved direction reports once, so the target grows
///   with the number of directions receiving at once, not exponentially: doubling per report
///   took a 1,024-buffer pool to every buffer within one batch of completions, and the kernel
///   then filled (touched) most of them.
/// - `noteLowWater(_:)` with the posted count each time the kernel takes a buffer; `tick()` once
///   per worker tick: buffers that stayed posted through a whole period without starving anyone
///   were not needed, and half of them leave the target (never below `floor`).
/// - `shouldRelease(pushedAt:now:)`: a spare unused for `releaseAfter` milliseconds gives its
///   pages back (`MADV_DONTNEED`).
public struct BufferPostingPolicy: Sendable, Equatable {
    /// Every buffer the pool has.
    public let capacity: Int
    /// The fewest buffers kept posted: enough for the receives of a quiet worker.
    public let floor: Int
    /// Buffers added to the target each time a receive finds the ring empty.
    public let growthStep: Int
    /// Milliseconds a spare buffer waits unused before its pages are released.
    public let releaseAfter: Int64
    /// How many buffers should be posted now.
    public private(set) var target: Int
    private var starvedThisPeriod = false
    private var lowWater: Int

    /// The default floor: 32 buffers, or every buffer of a smaller pool.
    public static let defaultFloor = 32
    /// The default wait before a spare's pages are released: 5 s.
    public static let defaultReleaseAfter: Int64 = 5_000

    /// `capacity` must be positive; `floor` is clamped to `1...capacity`; `growthStep`
    /// defaults to a quarter of the floor (at least one).
    public init(capacity: Int, floor: Int = BufferPostingPolicy.defaultFloor, growthStep: Int? = nil,
                releaseAfter: Int64 = BufferPostingPolicy.defaultReleaseAfter) {
        precondition(capacity > 0, "a buffer pool needs at least one buffer")
        self.capacity = capacity
        self.floor = min(max(floor, 1), capacity)
        self.growthStep = max(1, growthStep ?? self.floor / 4)
        self.releaseAfter = releaseAfter
        target = self.floor
        lowWater = self.floor
    }

    /// A receive found no posted buffer: post `growthStep` more (up to every buffer).
    public mutating func ringRanDry() {
        starvedThisPeriod = true
        lowWater = 0
        target = min(capacity, target + growthStep)
    }

    /// Records the posted count after the kernel took a buffer (the lowest of a period counts).
    @inline(__always)
    public mutating func noteLowWater(_ posted: Int) {
        if posted < lowWater { lowWater = posted }
    }

    /// Ends a period: returns the new target. Without starvation, half of the buffers that were
    /// never taken during the period leave the target; `posted` (what is posted now) starts the
    /// next period's low-water mark.
    public mutating func tick(posted: Int) -> Int {
        if !starvedThisPeriod {
            let unused = min(lowWater, target)
            target = max(floor, target - (unused + 1) / 2)
        }
        starvedThisPeriod = false
        lowWater = posted
        return target
    }

    /// Whether a spare pushed onto the stack at `pushedAt` (milliseconds) has waited long enough
    /// at `now` for its pages to be released.
    public func shouldRelease(pushedAt: Int64, now: Int64) -> Bool {
        now - pushedAt >= releaseAfter
    }
}
