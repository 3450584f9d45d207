import CSwitchyard
import Glibc

/// A provided-buffer ring: `count` buffers of `size` bytes the kernel picks from when a receive
/// with `IOSQE_BUFFER_SELECT` completes.
///
/// Memory: both the ring and the buffers are anonymous `MAP_NORESERVE` mappings, so a buffer
/// costs resident memory only once data has been received into it; idle connections hold none.
/// Thread ownership: the worker thread that owns `ring`.
final class ProvidedBuffers {
    let group: UInt16
    let count: UInt32
    let size: Int
    private let mask: Int32
    private let bufferRing: UnsafeMutablePointer<io_uring_buf_ring>
    private let ringBytes: Int
    private let storage: UnsafeMutableRawPointer
    /// Buffers currently lent to a direction (received into, not yet recycled).
    private(set) var lent = 0

    init(ring: Ring, group: UInt16, count: UInt32, size: Int) throws(SystemCallError) {
        precondition(count.nonzeroBitCount == 1 && count <= 32768, "buffer count must be a power of two")
        self.group = group
        self.count = count
        self.size = size
        self.mask = io_uring_buf_ring_mask(count)
        ringBytes = Int(count) * MemoryLayout<io_uring_buf>.stride
        let protection = PROT_READ | PROT_WRITE
        let mapFlags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE
        guard let ringMemory = mmap(nil, ringBytes, protection, mapFlags, -1, 0), ringMemory != MAP_FAILED else {
            throw SystemCallError(call: "mmap(buffer ring)", errno: swy_errno())
        }
        guard let buffers = mmap(nil, Int(count) * size, protection, mapFlags, -1, 0), buffers != MAP_FAILED else {
            munmap(ringMemory, ringBytes)
            throw SystemCallError(call: "mmap(buffers)", errno: swy_errno())
        }
        bufferRing = ringMemory.bindMemory(to: io_uring_buf_ring.self, capacity: 1)
        storage = buffers
        io_uring_buf_ring_init(bufferRing)
        do {
            try ring.registerBufferRing(bufferRing, entries: count, group: group)
        } catch {
            munmap(ringMemory, ringBytes)
            munmap(buffers, Int(count) * size)
            throw error
        }
        for id in 0..<Int(count) {
            io_uring_buf_ring_add(bufferRing, storage + id * size, UInt32(size), UInt16(id), mask, Int32(id))
        }
        io_uring_buf_ring_advance(bufferRing, Int32(count))
    }

    deinit {
        munmap(UnsafeMutableRawPointer(bufferRing), ringBytes)
        munmap(storage, Int(count) * size)
    }

    /// The buffer the kernel filled, given the id from a completion's flags.
    @inline(__always)
    func address(of id: UInt16) -> UnsafeMutableRawPointer {
        storage + Int(id) * size
    }

    /// Notes that the kernel handed out buffer `id` (call once per completion that carries one).
    @inline(__always)
    func took(_ id: UInt16) { lent += 1 }

    /// Gives buffer `id` back to the kernel. Call exactly once per buffer the kernel handed out.
    @inline(__always)
    func recycle(_ id: UInt16) {
        io_uring_buf_ring_add(bufferRing, address(of: id), UInt32(size), id, mask, 0)
        io_uring_buf_ring_advance(bufferRing, 1)
        lent -= 1
    }
}

/// A pool of non-blocking pipes for splicing, sized with `F_SETPIPE_SZ`.
///
/// Only empty pipes are returned to the pool (a pipe holding bytes would leak them into another
/// connection); the pool keeps at most `idleLimit` spare pipes and refuses to lend more than
/// `limit`, so pipes never eat the file descriptors connections need.
/// Thread ownership: one worker thread.
final class PipePool {
    struct Pipe {
        var readEnd: Int32
        var writeEnd: Int32
        var capacity: Int
    }

    private var idle: [Pipe] = []
    private let requestedSize: Int
    let limit: Int
    private let idleLimit: Int
    private(set) var lent = 0
    /// The fewest idle pipes seen since the last `trim()`: that many went unused all along.
    private var idleLowWater = 0
    /// Set after the first failure to grow a pipe (unprivileged users run out of pipe pages).
    private var sizingFailed = false

    init(pipeSize: Int, limit: Int, idleLimit: Int = 64) {
        requestedSize = pipeSize
        self.limit = limit
        self.idleLimit = idleLimit
    }

    deinit {
        for pipe in idle {
            close(pipe.readEnd)
            close(pipe.writeEnd)
        }
    }

    /// An empty pipe, or nil when the limit is reached or the system refuses one (EMFILE).
    func take() -> Pipe? {
        guard lent < limit else { return nil }
        if let pipe = idle.popLast() {
            lent += 1
            idleLowWater = min(idleLowWater, idle.count)
            return pipe
        }
        var fds: [Int32] = [-1, -1]
        guard swy_pipe2_nonblocking(&fds) == 0 else { return nil }
        var capacity = Int(swy_get_pipe_size(fds[0]))
        if !sizingFailed && requestedSize > capacity {
            let result = swy_set_pipe_size(fds[0], Int32(requestedSize))
            if result > 0 { capacity = Int(result) } else { sizingFailed = true }
        }
        lent += 1
        return Pipe(readEnd: fds[0], writeEnd: fds[1], capacity: max(capacity, 4096))
    }

    /// Closes the idle pipes that were not needed since the previous call, so that a burst of
    /// splicing does not hold descriptors and pipe pages for ever. Called on the worker's tick.
    func trim() {
        for _ in 0..<min(idleLowWater, idle.count) {
            let pipe = idle.removeFirst()
            close(pipe.readEnd)
            close(pipe.writeEnd)
        }
        idleLowWater = idle.count
    }

    /// Takes back a pipe; `empty` says whether every byte spliced into it was spliced out.
    func give(_ pipe: Pipe, empty: Bool) {
        lent -= 1
        if empty && idle.count < idleLimit {
            idle.append(pipe)
        } else {
            close(pipe.readEnd)
            close(pipe.writeEnd)
        }
    }
}
