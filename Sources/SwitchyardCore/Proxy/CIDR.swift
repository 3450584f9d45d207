/// An address block written in CIDR notation (`10.0.0.0/8`, `2001:db8::/32`), or one host (a
/// bare address is `/32` for IPv4, `/128` for IPv6). `accept-proxy-from` is a list of these.
///
/// IPv4 and IPv6 are matched in one 128-bit space in which an IPv4 address `a.b.c.d` is its
/// IPv4-mapped form `::ffff:a.b.c.d` (RFC 4291 section 2.5.5.2), and a block `a.b.c.d/n` is
/// `::ffff:a.b.c.d/(96+n)`. So:
/// - `10.0.0.0/8` contains the client `10.1.2.3` whether a socket reports it as IPv4 or, on a
///   dual-stack (`[::]`) listener, as `::ffff:10.1.2.3`;
/// - `::ffff:10.0.0.0/104` is the same block as `10.0.0.0/8`;
/// - `::/0` contains every address, IPv4 ones included, since a dual-stack listener reports
///   those inside it; `0.0.0.0/0` contains every IPv4 address and no other IPv6 one.
/// Other IPv6 blocks that embed IPv4 addresses (NAT64 `64:ff9b::/96`, the deprecated
/// IPv4-compatible `::a.b.c.d`) are plain IPv6 blocks: nothing is translated but the mapped form.
///
/// Thread safety: an immutable value.
public struct CIDR: Hashable, Sendable, CustomStringConvertible {
    /// The block's first address, as written (IPv4 or IPv6).
    public let address: IPAddress
    /// The prefix length as written: 0 to 32 for IPv4, 0 to 128 for IPv6.
    public let prefixLength: Int

    /// The block in the 128-bit space: high and low words of its first address, and the mask.
    private let high: UInt64
    private let low: UInt64
    private let maskHigh: UInt64
    private let maskLow: UInt64

    /// Parses `ADDRESS/LENGTH` or a bare `ADDRESS`.
    ///
    /// Throws, with a one-line reason that quotes `text`, for: an address that is not IPv4 or IPv6
    /// text (hostnames, brackets, zone indices such as `%eth0`), a length that is not a decimal
    /// number within the family's bits (no sign, no leading zeros), and an address with bits set
    /// past the prefix (`10.0.0.1/8`), which is more likely a typo than a block; the error names
    /// the block that was probably meant.
    public init(parsing text: String) throws(ConfigError) {
        let addressText: Substring
        let lengthText: Substring?
        if let slash = text.firstIndex(of: "/") {
            addressText = text[..<slash]
            lengthText = text[text.index(after: slash)...]
        } else {
            addressText = Substring(text)
            lengthText = nil
        }
        guard !addressText.isEmpty else { throw ConfigError("'\(text)' is not a CIDR block: the address is missing") }
        guard let address = IPAddress(addressText) else {
            throw ConfigError("'\(text)' is not a CIDR block: '\(addressText)' is not an IPv4 or IPv6 address")
        }
        let bits = address.isIPv6 ? 128 : 32
        var prefixLength = bits
        if let lengthText {
            guard !lengthText.isEmpty, lengthText.count <= 3,
                  lengthText.allSatisfy({ $0.isASCII && $0.isNumber }),
                  !(lengthText.count > 1 && lengthText.hasPrefix("0")),
                  let value = Int(lengthText), value <= bits else {
                throw ConfigError("'\(text)' is not a CIDR block: the prefix length '\(lengthText)' must be a number from 0 to \(bits)")
            }
            prefixLength = value
        }
        self.init(address: address, prefixLength: prefixLength)
        if self.address != address {
            throw ConfigError("'\(text)' has bits set after the first \(prefixLength); did you mean \(self)?")
        }
    }

    /// The block of `prefixLength` bits around `address`, whose bits past the prefix are cleared.
    /// A `prefixLength` outside 0 through the family's bits is clamped into it.
    public init(address: IPAddress, prefixLength: Int) {
        let isIPv6 = address.isIPv6
        let bits = isIPv6 ? 128 : 32
        let length = min(max(prefixLength, 0), bits)
        let length128 = isIPv6 ? length : 96 + length
        let maskHigh: UInt64 = length128 >= 64 ? ~0 : (length128 == 0 ? 0 : ~0 << UInt64(64 - length128))
        let maskLow: UInt64 = length128 <= 64 ? 0 : (length128 == 128 ? ~0 : ~0 << UInt64(128 - length128))
        let (high, low) = address.mapped128
        self.high = high & maskHigh
        self.low = low & maskLow
        self.maskHigh = maskHigh
        self.maskLow = maskLow
        self.prefixLength = length
        if isIPv6 {
            self.address = IPAddress(high: self.high, low: self.low)
        } else {
            let v4 = self.low & 0xFFFF_FFFF
            self.address = .v4(UInt8(v4 >> 24), UInt8(v4 >> 16 & 0xFF), UInt8(v4 >> 8 & 0xFF), UInt8(v4 & 0xFF))
        }
    }

    /// Whether `address` lies in the block (IPv4 and IPv4-mapped IPv6 alike, see the type).
    public func contains(_ address: IPAddress) -> Bool {
        let (high, low) = address.mapped128
        return contains(high: high, low: low)
    }

    /// Whether the address whose 128 bits (`IPAddress.mapped128`, `PeerAddress.mapped128`) are
    /// `high` then `low` lies in the block; what a worker calls, since it allocates nothing.
    public func contains(high: UInt64, low: UInt64) -> Bool {
        high & maskHigh == self.high && low & maskLow == self.low
    }

    public var description: String { "\(address)/\(prefixLength)" }
}

extension Sequence where Element == CIDR {
    /// Whether any block of the list contains `address` (false for an empty list).
    public func anyContains(_ address: IPAddress) -> Bool {
        contains { $0.contains(address) }
    }
}
