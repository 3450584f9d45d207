/// Byte-level access to `IPAddress`, for the PROXY protocol (addresses travel in network order)
/// and for CIDR matching (every address seen as 128 bits).
extension IPAddress {
    /// The address of 4 bytes (IPv4) or 16 bytes (IPv6) in network order; nil for any other count.
    public init?(bytes: some Collection<UInt8>) {
        switch bytes.count {
        case 4:
            var iterator = bytes.makeIterator()
            guard let a = iterator.next(), let b = iterator.next(), let c = iterator.next(),
                  let d = iterator.next() else { return nil }
            self = .v4(a, b, c, d)
        case 16:
            self = .v6(Array(bytes))
        default:
            return nil
        }
    }

    /// The address as an IPv6 address of 128 bits, most significant word first: an IPv4 address
    /// `a.b.c.d` becomes its IPv4-mapped form `::ffff:a.b.c.d` (RFC 4291 section 2.5.5.2), which
    /// is how a dual-stack socket reports an IPv4 peer. An IPv6 case whose array does not hold 16
    /// bytes is read as if missing bytes were 0 (it cannot be made by parsing).
    public var mapped128: (high: UInt64, low: UInt64) {
        switch self {
        case let .v4(a, b, c, d):
            let v4 = UInt64(a) << 24 | UInt64(b) << 16 | UInt64(c) << 8 | UInt64(d)
            return (0, 0x0000_FFFF_0000_0000 | v4)
        case let .v6(bytes):
            var high: UInt64 = 0
            var low: UInt64 = 0
            for i in 0..<16 {
                let byte = i < bytes.count ? UInt64(bytes[i]) : 0
                if i < 8 { high = high << 8 | byte } else { low = low << 8 | byte }
            }
            return (high, low)
        }
    }

    /// The IPv6 address whose 128 bits are `high` then `low`.
    public init(high: UInt64, low: UInt64) {
        var bytes = [UInt8](repeating: 0, count: 16)
        for i in 0..<8 {
            bytes[i] = UInt8(truncatingIfNeeded: high >> (56 - 8 * UInt64(i)))
            bytes[8 + i] = UInt8(truncatingIfNeeded: low >> (56 - 8 * UInt64(i)))
        }
        self = .v6(bytes)
    }

    /// For an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`), the IPv4 address it carries; nil for
    /// any other address, including plain IPv4 ones.
    public var unmappedIPv4: IPAddress? {
        guard case .v6 = self else { return nil }
        let (high, low) = mapped128
        guard high == 0, low >> 32 == 0xFFFF else { return nil }
        return .v4(UInt8(truncatingIfNeeded: low >> 24), UInt8(truncatingIfNeeded: low >> 16),
                   UInt8(truncatingIfNeeded: low >> 8), UInt8(truncatingIfNeeded: low))
    }

    /// This address as IPv6: itself when it is one, its IPv4-mapped form otherwise.
    public var asIPv6: IPAddress {
        guard case .v4 = self else { return self }
        let (high, low) = mapped128
        return IPAddress(high: high, low: low)
    }
}
