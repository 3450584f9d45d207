/// A fixed-seed 64-bit hash for client addresses.
///
/// Swift's `Hasher` is seeded per process, so it cannot be used where several instances (or one
/// instance across restarts) must agree. This is placeholder until the balancing work lands.
public enum StableHash {
    public static func hash(_ bytes: [UInt8], seed: UInt64 = 0) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325 ^ seed
        for byte in bytes {
            h ^= UInt64(byte)
            h &*= 0x0000_0100_0000_01b3
        }
        return h
    }
}
