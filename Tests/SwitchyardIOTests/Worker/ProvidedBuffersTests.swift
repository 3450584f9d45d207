import CSwitchyard
import Glibc
import Testing
@testable import SwitchyardIO

/// The provided-buffer pool against a real ring and a socket pair: what the kernel may fill is
/// exactly what the pool says is posted, also after it took buffers back or released pages.
@Suite struct ProvidedBuffersTests {
    private static let probeData: UInt64 = 7

    private func monotonicMilliseconds() -> Int64 {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC_COARSE, &time)
        return Int64(time.tv_sec) * 1000 + Int64(time.tv_nsec) / 1_000_000
    }

    /// A ring, a pool of `count` buffers of `size` bytes, and a socket pair whose first end has
    /// a multishot receive armed into the pool.
    private struct Rig {
        let ring: Ring
        let pool: ProvidedBuffers
        let fds: [Int32]

        init(count: UInt32, size: Int) throws {
            ring = try Ring(entries: 64)
            pool = try ProvidedBuffers(ring: ring, group: 0, count: count, size: size)
            var pair: [Int32] = [-1, -1]
            #expect(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0, &pair) == 0)
            fds = pair
        }

        func close() {
            Glibc.close(fds[0])
            Glibc.close(fds[1])
        }

        func arm() {
            ring.submit(.receiveMultishot(socket: fds[0], group: 0, limit: 0), userData: ProvidedBuffersTests.probeData)
        }

        /// Writes `byte` repeated 100 times and returns the receive's completion for it:
        /// (result, buffer id or nil, more).
        func exchange(_ byte: UInt8) throws -> (result: Int32, id: UInt16?, more: Bool) {
            let bytes = [UInt8](repeating: byte, count: 100)
            #expect(write(fds[1], bytes, bytes.count) == bytes.count)
            var seen: [(Int32, UInt32)] = []
            for _ in 0..<10 where seen.isEmpty {
                try ring.submitAndWait()
                ring.drainCompletions { userData, result, flags in
                    if userData == ProvidedBuffersTests.probeData { seen.append((result, flags)) }
                }
            }
            let (result, flags) = try #require(seen.first)
            #expect(seen.count == 1, "one write, one completion")
            var id: UInt16?
            if flags & IORING_CQE_F_BUFFER != 0 {
                let taken = UInt16(flags >> IORING_CQE_BUFFER_SHIFT)
                pool.took(taken)
                id = taken
            }
            return (result, id, flags & IORING_CQE_F_MORE != 0)
        }
    }

    @Test func buffersTakenBackFromTheRingAreNeverFilledByTheKernel() throws {
        let rig = try Rig(count: 64, size: 4096)
        defer { rig.close() }
        #expect(rig.pool.canRetract, "kernel 6.8+ with DEFER_TASKRUN reports the ring's head")
        #expect(rig.pool.posted == 32 && rig.pool.target == 32)
        for _ in 0..<4 { rig.pool.ringRanDry() }
        #expect(rig.pool.posted == 64, "four starved receives add 4 x 8")

        // The period that starved keeps its target; the next, in which nothing was taken,
        // halves it, and the 32 buffers posted last (ids 32-63) come back out of the ring.
        let start = monotonicMilliseconds()
        rig.pool.tick(now: start)
        rig.pool.tick(now: start + 1)
        #expect(rig.pool.target == 32 && rig.pool.posted == 32)

        rig.arm()
        var filled: Set<UInt16> = []
        for index in 0..<32 {
            let (result, id, more) = try rig.exchange(UInt8(index))
            #expect(result == 100 && more)
            let buffer = try #require(id)
            let first = rig.pool.address(of: buffer).load(as: UInt8.self)
            #expect(first == UInt8(index), "the bytes are in the buffer the completion names")
            filled.insert(buffer)
        }
        #expect(filled == Set(0..<32), "only the buffers left posted were filled")
        let dry = try rig.exchange(99)
        #expect(dry.result == -ENOBUFS && dry.id == nil && !dry.more, "the 32 taken back were not in the ring")
        for id in filled { rig.pool.recycle(id) }
        #expect(rig.pool.lent == 0)
    }

    @Test func idleSparesAndThenThePostedBuffersGiveTheirPagesBackAndStayUsable() throws {
        let rig = try Rig(count: 64, size: 64 * 1024)
        defer { rig.close() }
        for _ in 0..<4 { rig.pool.ringRanDry() }
        rig.arm()
        // The kernel fills (touches) all 64, which come back; then the target halves and the 32
        // posted last become spares.
        var ids: [UInt16] = []
        for index in 0..<64 { ids.append(try #require(try rig.exchange(UInt8(index)).id)) }
        for id in ids { rig.pool.recycle(id) }
        #expect(rig.pool.posted == 64)
        let start = monotonicMilliseconds()
        rig.pool.tick(now: start)
        rig.pool.tick(now: start + 1)
        #expect(rig.pool.posted == 32 && rig.pool.residentSpares == 32)

        // A receive at 3 s: the posted buffers are in use, the spares are not.
        let busy = try rig.exchange(0x11)
        rig.pool.recycle(try #require(busy.id))
        rig.pool.tick(now: start + 3_000)
        rig.pool.tick(now: start + 4_999)
        #expect(rig.pool.residentSpares == 32 && rig.pool.releasedTotal == 0, "spares wait 5 s")
        rig.pool.tick(now: start + 5_001)
        #expect(rig.pool.residentSpares == 0 && rig.pool.releasedTotal == 32, "only the spares went")

        // Nothing taken for 5 s: the buffers still posted are released too, and stay posted.
        rig.pool.tick(now: start + 7_999)
        #expect(rig.pool.releasedTotal == 32)
        rig.pool.tick(now: start + 8_001)
        #expect(rig.pool.releasedTotal == 64 && rig.pool.posted == 32)

        let after = try rig.exchange(0xAB)
        let id = try #require(after.id)
        #expect(after.result == 100 && after.more)
        let bytes = UnsafeRawBufferPointer(start: rig.pool.address(of: id), count: 100)
        #expect(bytes.allSatisfy { $0 == 0xAB }, "a released buffer is filled again like a new one")
        rig.pool.recycle(id)
    }
}
