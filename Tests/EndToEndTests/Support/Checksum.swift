/// A 64-bit running checksum for verifying that every relayed byte arrived, in order.
///
/// It is FNV-1a (offset basis 0xcbf29ce484222325, prime 0x100000001b3) applied to
/// little-endian 64-bit words instead of single bytes, so a debug build can check
/// hundreds of mebibytes per test without dominating the run time. A trailing partial
/// word is buffered across `update` calls, so the result depends only on the byte
/// sequence, never on how it was split into chunks. It detects corruption, loss,
/// duplication and reordering; it is not a cryptographic hash.
struct Checksum: Equatable, CustomStringConvertible {
    private static let offsetBasis: UInt64 = 0xcbf2_9ce4_8422_2325
    private static let prime: UInt64 = 0x0000_0100_0000_01b3

    private var state = Checksum.offsetBasis
    private var pendingWord: UInt64 = 0
    private var pendingCount = 0
    /// Number of bytes fed in so far.
    private(set) var byteCount = 0

    init() {}

    mutating func update(_ bytes: UnsafeRawBufferPointer) {
        byteCount += bytes.count
        var index = 0
        // Complete a partial word left over from the previous call.
        while pendingCount > 0 && pendingCount < 8 && index < bytes.count {
            pendingWord |= UInt64(bytes[index]) << (8 * UInt64(pendingCount))
            pendingCount += 1
            index += 1
        }
        if pendingCount == 8 {
            mix(pendingWord)
            pendingWord = 0
            pendingCount = 0
        }
        while index + 8 <= bytes.count {
            mix(UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: index, as: UInt64.self)))
            index += 8
        }
        while index < bytes.count {
            pendingWord |= UInt64(bytes[index]) << (8 * UInt64(pendingCount))
            pendingCount += 1
            index += 1
        }
    }

    mutating func update(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { update($0) }
    }

    /// The checksum of everything fed in so far; the running state is not changed.
    var value: UInt64 {
        var copy = self
        if copy.pendingCount > 0 {
            // Mark the tail length so that trailing zero bytes still change the result.
            copy.mix(copy.pendingWord ^ (UInt64(copy.pendingCount) << 60))
        }
        return copy.state
    }

    static func of(_ bytes: [UInt8]) -> UInt64 {
        var checksum = Checksum()
        checksum.update(bytes)
        return checksum.value
    }

    static func == (lhs: Checksum, rhs: Checksum) -> Bool {
        lhs.value == rhs.value && lhs.byteCount == rhs.byteCount
    }

    var description: String {
        "\(byteCount) bytes, checksum \(String(value, radix: 16))"
    }

    private mutating func mix(_ word: UInt64) {
        state = (state ^ word) &* Checksum.prime
    }
}

/// Deterministic pseudo-random bytes from a seeded xorshift64 generator, so a test can
/// regenerate (or just checksum) exactly what a backend or client sent.
struct DeterministicBytes {
    private var state: UInt64
    private var pendingWord: UInt64 = 0
    private var pendingCount = 0

    /// `seed` may be any value; zero, which would make xorshift stick at zero, is remapped.
    init(seed: UInt64) {
        state = seed == 0 ? 0x9e37_79b9_7f4a_7c15 : seed
    }

    private mutating func nextWord() -> UInt64 {
        state ^= state << 13
        state ^= state >> 7
        state ^= state << 17
        return state
    }

    /// Fills `buffer` with the next `buffer.count` bytes of the stream. The stream does not
    /// depend on how it is split into fills: unused bytes of a word carry over.
    mutating func fill(_ buffer: UnsafeMutableRawBufferPointer) {
        var index = 0
        while pendingCount > 0 && index < buffer.count {
            buffer[index] = UInt8(truncatingIfNeeded: pendingWord)
            pendingWord >>= 8
            pendingCount -= 1
            index += 1
        }
        while index + 8 <= buffer.count {
            buffer.storeBytes(of: nextWord().littleEndian, toByteOffset: index, as: UInt64.self)
            index += 8
        }
        if index < buffer.count {
            pendingWord = nextWord()
            pendingCount = 8
            while index < buffer.count {
                buffer[index] = UInt8(truncatingIfNeeded: pendingWord)
                pendingWord >>= 8
                pendingCount -= 1
                index += 1
            }
        }
    }

    /// The next `count` bytes of the stream.
    mutating func next(_ count: Int) -> [UInt8] {
        [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
            fill(UnsafeMutableRawBufferPointer(buffer))
            initialized = count
        }
    }

    /// The checksum of the first `count` bytes of the stream seeded with `seed`,
    /// computed in bounded memory.
    static func checksum(seed: UInt64, count: Int) -> Checksum {
        var generator = DeterministicBytes(seed: seed)
        var checksum = Checksum()
        let chunk = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 16, alignment: 8)
        defer { chunk.deallocate() }
        var remaining = count
        while remaining > 0 {
            let part = UnsafeMutableRawBufferPointer(rebasing: chunk[0..<min(remaining, chunk.count)])
            generator.fill(part)
            checksum.update(UnsafeRawBufferPointer(part))
            remaining -= part.count
        }
        return checksum
    }
}
