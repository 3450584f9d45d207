import CSwitchyard
import Glibc
import SwitchyardCore

/// A provided-buffer ring: `count` buffers of `size` bytes the kernel picks from when a receive
/// with `IOSQE_BUFFER_SELECT` completes.
///
/// Only `policy.target` buffers are posted in the kernel's ring at a time; the others wait in a
/// last-in-first-out stack of spares (see `BufferPostingPolicy`). A recycled buffer goes straight
/// back into the ring while fewer than the target are posted, else onto the top of the stack,
/// so the buffers in use are the recently used, cache-warm ones. When a receive finds the ring
/// empty the worker calls `ringRanDry()` and more are posted; on each tick the target shrinks
/// toward what the last period needed, posted buffers beyond it are taken back (`retractExcess`),
/// and spares unused for `releaseAfter` have their pages released with `MADV_DONTNEED`. Once the
/// kernel has taken no buffer for `releaseAfter`, the few still posted have their pages released
/// too (`releasePostedPages`: out of the ring, released, posted again).
///
/// Memory: the ring and the buffers are anonymous `MAP_NORESERVE` mappings, so a buffer costs
/// resident memory only once data has been received into it; idle connections hold none, and
/// a few seconds after a burst none stays resident. No buffer is released while it is in the
/// ring (the kernel may write into it) or lent to a direction.
///
/// Thread ownership: the worker thread that owns `ring`. Taking posted buffers back relies on
/// `IORING_SETUP_DEFER_TASKRUN`: the kernel then fills buffers only inside that thread's
/// `io_uring_enter`, so between two calls nothing else moves the ring's head.
final class ProvidedBuffers {
    let group: UInt16
    let count: UInt32
    let size: Int
    private let mask: Int32
    private let bufferRing: UnsafeMutablePointer<io_uring_buf_ring>
    private let ringBytes: Int
    private let storage: UnsafeMutableRawPointer
    private let ringFD: Int32
    /// Whether posted buffers beyond the target may be taken back (DEFER_TASKRUN and
    /// IORING_REGISTER_PBUF_STATUS, probed at start).
    let canRetract: Bool
    private var policy: BufferPostingPolicy
    /// Buffers currently lent to a direction (received into, not yet recycled).
    private(set) var lent = 0
    /// Buffers posted in the kernel's ring, as far as the completions seen so far tell.
    private(set) var posted = 0
    /// The ring's tail as this side published it, and the buffer posted in each ring slot.
    private var tail: UInt16 = 0
    private let slotBuffer: UnsafeMutablePointer<UInt16>
    /// The spare stack (ids, bottom first) and when each was pushed (monotonic milliseconds);
    /// push times never decrease from bottom to top, so the oldest spares are at the bottom.
    private let spares: UnsafeMutablePointer<UInt16>
    private let sparePushedAt: UnsafeMutablePointer<Int64>
    private var spareCount = 0
    /// Spares below this index have had their pages released (or were never touched).
    private var releasedBelow = 0
    /// The worker's clock at its last tick (milliseconds), the push time of new spares.
    private var now: Int64 = 0
    /// Whether multishot receives may carry a byte limit (probed at start; kernel 6.16+).
    private(set) var receiveLimitSupported = false
    /// Buffers whose pages were released, in total (for tests and figures).
    private(set) var releasedTotal = 0
    /// Whether a buffer that may hold resident pages (a recycled one) has been posted since the
    /// posted buffers' pages were last released.
    private var postedMayBeResident = false
    /// Buffers the kernel handed out since the last tick, and the last tick that saw any.
    private var takenSinceTick = 0
    private var lastBusyTick: Int64 = 0

    /// Spares whose pages may be resident (everything not yet released).
    var residentSpares: Int { spareCount - releasedBelow }
    /// The number of buffers that should be posted now.
    var target: Int { policy.target }

    init(ring: Ring, group: UInt16, count: UInt32, size: Int,
         policy: BufferPostingPolicy? = nil) throws(SystemCallError) {
        precondition(count.nonzeroBitCount == 1 && count <= 32768, "buffer count must be a power of two")
        self.group = group
        self.count = count
        self.size = size
        self.mask = io_uring_buf_ring_mask(count)
        self.policy = policy ?? BufferPostingPolicy(capacity: Int(count))
        ringFD = ring.fd
        ringBytes = Int(count) * MemoryLayout<io_uring_buf>.stride
        let ringMemory = try Memory.map(ringBytes, for: "buffer ring")
        let buffers: UnsafeMutableRawPointer
        do {
            buffers = try Memory.map(Int(count) * size, for: "buffers")
        } catch {
            Memory.unmap(ringMemory, ringBytes)
            throw error
        }
        bufferRing = ringMemory.bindMemory(to: io_uring_buf_ring.self, capacity: 1)
        storage = buffers
        io_uring_buf_ring_init(bufferRing)
        do {
            try ring.registerBufferRing(bufferRing, entries: count, group: group)
        } catch {
            Memory.unmap(ringMemory, ringBytes)
            Memory.unmap(buffers, Int(count) * size)
            throw error
        }
        slotBuffer = .allocate(capacity: Int(count))
        slotBuffer.initialize(repeating: 0, count: Int(count))
        spares = .allocate(capacity: Int(count))
        sparePushedAt = .allocate(capacity: Int(count))
        sparePushedAt.initialize(repeating: 0, count: Int(count))
        // Bottom to top: the highest id first, so buffer 0 is posted first.
        for index in 0..<Int(count) { spares[index] = UInt16(Int(count) - 1 - index) }
        spareCount = Int(count)
        releasedBelow = Int(count)
        var clock = timespec()
        clock_gettime(CLOCK_MONOTONIC_COARSE, &clock)
        now = Int64(clock.tv_sec) * 1000 + Int64(clock.tv_nsec) / 1_000_000
        lastBusyTick = now
        var head: UInt16 = 0
        canRetract = ring.flags & IORING_SETUP_DEFER_TASKRUN != 0
            && swy_buf_ring_head(ring.fd, UInt32(group), &head) == 0 && head == 0
        topUp()
        postedMayBeResident = false  // never touched yet
        receiveLimitSupported = ring.supportsReceiveLimit(buffers: self)
    }

    deinit {
        Memory.unmap(UnsafeMutableRawPointer(bufferRing), ringBytes)
        Memory.unmap(storage, Int(count) * size)
        slotBuffer.deallocate()
        spares.deallocate()
        sparePushedAt.deallocate()
    }

    /// The buffer the kernel filled, given the id from a completion's flags.
    @inline(__always)
    func address(of id: UInt16) -> UnsafeMutableRawPointer {
        storage + Int(id) * size
    }

    /// Notes that the kernel handed out buffer `id` (call once per completion that carries one).
    @inline(__always)
    func took(_ id: UInt16) {
        lent += 1
        posted -= 1
        takenSinceTick &+= 1
        policy.noteLowWater(posted)
    }

    /// Gives buffer `id` back. Call exactly once per buffer the kernel handed out.
    @inline(__always)
    func recycle(_ id: UInt16) {
        lent -= 1
        if posted < policy.target {
            post(id)
        } else {
            pushSpare(id)
        }
    }

    /// A receive found the ring empty: raise the target and post spares up to it.
    func ringRanDry() {
        policy.ringRanDry()
        topUp()
    }

    /// Once per worker tick, on the worker's thread between two waits on the ring: adapts the
    /// target, takes back posted buffers beyond it, and releases the pages of old spares.
    func tick(now: Int64) {
        self.now = now
        _ = policy.tick(posted: posted)
        if posted > policy.target { retractExcess() } else { topUp() }
        while releasedBelow < spareCount && policy.shouldRelease(pushedAt: sparePushedAt[releasedBelow], now: now) {
            // Neither posted nor lent: nothing but this thread can touch these pages.
            Memory.release(address(of: spares[releasedBelow]), size)
            releasedBelow += 1
            releasedTotal += 1
        }
        if takenSinceTick > 0 {
            takenSinceTick = 0
            lastBusyTick = now
        } else if postedMayBeResident && policy.shouldRelease(pushedAt: lastBusyTick, now: now) {
            releasePostedPages()
        }
    }

    // MARK: Internals

    /// After a quiet `releaseAfter`, the buffers still posted are the last ones recycled, and
    /// resident. Takes every one of them out of the ring for a moment (tail back to the
    /// kernel's head), releases their pages, and posts them again unchanged: between two waits
    /// on the ring the kernel cannot observe it (see the type's comment), and no buffer is
    /// released while posted.
    private func releasePostedPages() {
        guard canRetract else { return }
        var head: UInt16 = 0
        guard swy_buf_ring_head(ringFD, UInt32(group), &head) == 0, Int(tail &- head) == posted else { return }
        swy_buf_ring_set_tail(bufferRing, head)
        var slot = head
        while slot != tail {
            Memory.release(address(of: slotBuffer[Int(slot) & Int(mask)]), size)
            releasedTotal += 1
            slot &+= 1
        }
        swy_buf_ring_set_tail(bufferRing, tail)
        postedMayBeResident = false
    }

    @inline(__always)
    private func post(_ id: UInt16) {
        io_uring_buf_ring_add(bufferRing, address(of: id), UInt32(size), id, mask, 0)
        io_uring_buf_ring_advance(bufferRing, 1)
        slotBuffer[Int(tail) & Int(mask)] = id
        tail &+= 1
        posted += 1
        postedMayBeResident = true
    }

    @inline(__always)
    private func pushSpare(_ id: UInt16) {
        spares[spareCount] = id
        sparePushedAt[spareCount] = now
        spareCount += 1
    }

    /// Posts spares, most recently used first, until the target is posted or none are left.
    private func topUp() {
        while posted < policy.target && spareCount > 0 {
            spareCount -= 1
            if releasedBelow > spareCount { releasedBelow = spareCount }
            post(spares[spareCount])
        }
    }

    /// Takes the most recently posted buffers the kernel has not handed out back onto the spare
    /// stack, leaving `target` posted. The kernel's head comes from IORING_REGISTER_PBUF_STATUS;
    /// lowering the tail is safe because, with DEFER_TASKRUN, the kernel reads the ring only
    /// inside this thread's `io_uring_enter` (see the type's comment).
    private func retractExcess() {
        guard canRetract else { return }
        var head: UInt16 = 0
        guard swy_buf_ring_head(ringFD, UInt32(group), &head) == 0 else { return }
        let postedInKernel = Int(tail &- head)
        let excess = postedInKernel - policy.target
        guard excess > 0, excess <= posted else { return }
        for _ in 0..<excess {
            tail &-= 1
            pushSpare(slotBuffer[Int(tail) & Int(mask)])
        }
        swy_buf_ring_set_tail(bufferRing, tail)
        posted -= excess
    }
}
