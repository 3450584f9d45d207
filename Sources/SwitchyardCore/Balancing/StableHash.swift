/// A fixed-seed 64-bit hash: XXH64, written from Yann Collet's published specification
/// (`doc/xxhash_spec.md` in the xxHash repository, "XXH64 Algorithm Description").
///
/// Swift's `Hasher` is seeded per process, so it cannot be used where several instances (or one
/// instance across restarts) must agree: ip-hash must send a client to the same backend from any
/// Switchyard process on any machine. The output equals the reference `XXH64(bytes, length, seed)`
/// on every platform (input is read little-endian whatever the host), which the tests pin.
///
/// Thread safety: pure functions, callable from any thread.
public enum StableHash {
    private static let prime1: UInt64 = 0x9E37_79B1_85EB_CA87
    private static let prime2: UInt64 = 0xC2B2_AE3D_27D4_EB4F
    private static let prime3: UInt64 = 0x1656_67B1_9E37_79F9
    private static let prime4: UInt64 = 0x85EB_CA77_C2B2_AE63
    private static let prime5: UInt64 = 0x27D4_EB2F_1656_67C5

    /// XXH64 of `bytes` with `seed`.
    public static func hash(_ bytes: [UInt8], seed: UInt64 = 0) -> UInt64 {
        let count = bytes.count
        var offset = 0
        var acc: UInt64
        if count >= 32 {
            // Four lanes over 32-byte stripes, then folded into one.
            var lane1 = seed &+ prime1 &+ prime2
            var lane2 = seed &+ prime2
            var lane3 = seed
            var lane4 = seed &- prime1
            while offset + 32 <= count {
                lane1 = round(lane1, littleEndianWord(bytes, at: offset))
                lane2 = round(lane2, littleEndianWord(bytes, at: offset + 8))
                lane3 = round(lane3, littleEndianWord(bytes, at: offset + 16))
                lane4 = round(lane4, littleEndianWord(bytes, at: offset + 24))
                offset += 32
            }
            acc = lane1.rotatedLeft(1) &+ lane2.rotatedLeft(7) &+ lane3.rotatedLeft(12) &+ lane4.rotatedLeft(18)
            acc = merge(acc, lane1)
            acc = merge(acc, lane2)
            acc = merge(acc, lane3)
            acc = merge(acc, lane4)
        } else {
            acc = seed &+ prime5
        }
        acc &+= UInt64(count)
        while offset + 8 <= count {
            acc = consume8(acc, littleEndianWord(bytes, at: offset))
            offset += 8
        }
        if offset + 4 <= count {
            var word: UInt64 = 0
            for i in 0..<4 { word |= UInt64(bytes[offset + i]) << (8 * UInt64(i)) }
            acc = consume4(acc, word)
            offset += 4
        }
        while offset < count {
            acc = consume1(acc, bytes[offset])
            offset += 1
        }
        return avalanche(acc)
    }

    /// XXH64 of up to 16 bytes held in two words, without allocating: byte `i` of the input is
    /// byte `i % 8` (little-endian) of `low` for `i < 8`, of `high` otherwise. Bits beyond
    /// `byteCount` are ignored. Equals `hash(bytes, seed:)` of those bytes.
    ///
    /// Workers use it for client addresses: an IPv4 address is 4 bytes in `low` in network order,
    /// an IPv6 address is 16 bytes.
    ///
    /// - Precondition: `byteCount` is 0 through 16.
    public static func hash(low: UInt64, high: UInt64 = 0, byteCount: Int, seed: UInt64 = 0) -> UInt64 {
        precondition((0...16).contains(byteCount), "StableHash: at most 16 bytes fit in two words")
        var acc = seed &+ prime5 &+ UInt64(byteCount)
        // Remaining bytes, always starting at a word boundary or 4 bytes into one.
        var pending = low
        var pendingCount = byteCount
        if pendingCount >= 8 {
            acc = consume8(acc, low)
            pending = high
            pendingCount -= 8
        }
        if pendingCount == 8 {
            acc = consume8(acc, high)
            pendingCount = 0
        }
        if pendingCount >= 4 {
            acc = consume4(acc, pending & 0xFFFF_FFFF)
            pending >>= 32
            pendingCount -= 4
        }
        while pendingCount > 0 {
            acc = consume1(acc, UInt8(truncatingIfNeeded: pending))
            pending >>= 8
            pendingCount -= 1
        }
        return avalanche(acc)
    }

    @inline(__always)
    private static func littleEndianWord(_ bytes: [UInt8], at offset: Int) -> UInt64 {
        var word: UInt64 = 0
        for i in 0..<8 { word |= UInt64(bytes[offset + i]) << (8 * UInt64(i)) }
        return word
    }

    @inline(__always)
    private static func round(_ acc: UInt64, _ lane: UInt64) -> UInt64 {
        (acc &+ lane &* prime2).rotatedLeft(31) &* prime1
    }

    @inline(__always)
    private static func merge(_ acc: UInt64, _ lane: UInt64) -> UInt64 {
        (acc ^ round(0, lane)) &* prime1 &+ prime4
    }

    @inline(__always)
    private static func consume8(_ acc: UInt64, _ word: UInt64) -> UInt64 {
        (acc ^ round(0, word)).rotatedLeft(27) &* prime1 &+ prime4
    }

    @inline(__always)
    private static func consume4(_ acc: UInt64, _ word: UInt64) -> UInt64 {
        (acc ^ (word &* prime1)).rotatedLeft(23) &* prime2 &+ prime3
    }

    @inline(__always)
    private static func consume1(_ acc: UInt64, _ byte: UInt8) -> UInt64 {
        (acc ^ (UInt64(byte) &* prime5)).rotatedLeft(11) &* prime1
    }

    @inline(__always)
    private static func avalanche(_ value: UInt64) -> UInt64 {
        var acc = value
        acc ^= acc >> 33
        acc &*= prime2
        acc ^= acc >> 29
        acc &*= prime3
        acc ^= acc >> 32
        return acc
    }
}

extension UInt64 {
    @inline(__always)
    fileprivate func rotatedLeft(_ count: UInt64) -> UInt64 {
        (self << count) | (self >> (64 - count))
    }
}
