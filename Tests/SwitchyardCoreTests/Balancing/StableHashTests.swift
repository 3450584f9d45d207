import Testing
@testable import SwitchyardCore

@Suite struct StableHashTests {
    /// Reference values from libxxhash 0.8.1 (`XXH64(data, length, seed)`), covering the short
    /// path, the 8/4/1-byte tails and the four-lane path for 32 bytes and more.
    @Test(arguments: [
        ("", UInt64(0), UInt64(0xEF46_DB37_51D8_E999)),
        ("", 42, 0x98B1_582B_0977_E704),
        ("abc", 0, 0x44BC_2CF5_AD77_0999),
        ("abc", 42, 0x13C1_D910_7027_70E6),
        ("127.0.0.1:8080", 0, 0xC65E_86B0_00FB_3CBF),
        ("127.0.0.1:8080", 42, 0x2A72_8FA6_DB11_2604),
        ("0123456789abcdef0123456789abcdefXYZ", 0, 0x654F_6A2B_39E4_D8C1),
        ("0123456789abcdef0123456789abcdefXYZ", 42, 0x05F4_0013_5409_1DB1),
    ])
    func matchesReferenceXXH64(text: String, seed: UInt64, expected: UInt64) {
        #expect(StableHash.hash(Array(text.utf8), seed: seed) == expected)
    }

    @Test func twoWordFormEqualsByteFormForEveryLengthUpTo16() {
        let bytes: [UInt8] = [0x0A, 0x00, 0x00, 0x01, 0xFE, 0x80, 0x12, 0x34,
                              0x56, 0x78, 0x9A, 0xBC, 0xDE, 0xF0, 0x11, 0x22]
        var low: UInt64 = 0
        var high: UInt64 = 0
        for (i, byte) in bytes.enumerated() {
            if i < 8 { low |= UInt64(byte) << (8 * UInt64(i)) } else { high |= UInt64(byte) << (8 * UInt64(i - 8)) }
        }
        for count in 0...16 {
            for seed: UInt64 in [0, 7] {
                #expect(StableHash.hash(low: low, high: high, byteCount: count, seed: seed)
                    == StableHash.hash(Array(bytes.prefix(count)), seed: seed), "\(count) bytes")
            }
        }
    }
}
