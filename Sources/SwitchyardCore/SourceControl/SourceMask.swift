/// `source-mask: V4,V6`: how many leading bits of a client's address name its source, so that a
/// network (a `/24` of IPv4, a `/64` of IPv6, which one household or one cloud instance often
/// holds whole) is counted as one source. The default, `32,128`, counts each address.
///
/// Thread safety: an immutable value.
public struct SourceMask: Hashable, Sendable, CustomStringConvertible {
    /// Prefix length for IPv4 clients (and IPv4-mapped IPv6 ones), 0 to 32.
    public var ipv4: Int
    /// Prefix length for IPv6 clients, 0 to 128.
    public var ipv6: Int

    public static let host = SourceMask(ipv4: 32, ipv6: 128)

    /// Lengths outside the family's bits are clamped into them.
    public init(ipv4: Int, ipv6: Int) {
        self.ipv4 = min(max(ipv4, 0), 32)
        self.ipv6 = min(max(ipv6, 0), 128)
    }

    /// Parses `V4,V6` (`24,64`), each a decimal number within its family's bits.
    public init(parsing text: String) throws(ConfigError) {
        let parts = text.split(separator: ",", omittingEmptySubsequences: false)
        func length(_ part: Substring, bits: Int) -> Int? {
            guard !part.isEmpty, part.count <= 3, part.allSatisfy({ $0.isASCII && $0.isNumber }),
                  !(part.count > 1 && part.hasPrefix("0")), let value = Int(part), value <= bits else { return nil }
            return value
        }
        guard parts.count == 2, let v4 = length(parts[0], bits: 32), let v6 = length(parts[1], bits: 128) else {
            throw ConfigError("source-mask '\(text)' must be IPV4-PREFIX,IPV6-PREFIX such as 24,64 (0 to 32, then 0 to 128)")
        }
        self.init(ipv4: v4, ipv6: v6)
    }

    /// The source of the address whose 128 bits (`PeerAddress.mapped128`) are `high`, `low`:
    /// the address with the bits past its family's prefix cleared. An IPv4-mapped address is
    /// masked as IPv4 and stays IPv4-mapped, so a client is one source however a socket shows it.
    public func source(high: UInt64, low: UInt64) -> (high: UInt64, low: UInt64) {
        if high == 0 && low >> 32 == 0xFFFF {
            let mask: UInt64 = ipv4 == 0 ? 0 : (0xFFFF_FFFF << UInt64(32 - ipv4)) & 0xFFFF_FFFF
            return (0, 0xFFFF_0000_0000 | (low & mask))
        }
        let maskHigh: UInt64 = ipv6 >= 64 ? ~0 : (ipv6 == 0 ? 0 : ~0 << UInt64(64 - ipv6))
        let maskLow: UInt64 = ipv6 <= 64 ? 0 : (ipv6 == 128 ? ~0 : ~0 << UInt64(128 - ipv6))
        return (high & maskHigh, low & maskLow)
    }

    /// How `show sources` names a source: the address, or `ADDRESS/LENGTH` when this mask
    /// counts a network.
    public func describe(high: UInt64, low: UInt64) -> String {
        let address = IPAddress(high: high, low: low)
        if let v4 = address.unmappedIPv4 {
            return ipv4 == 32 ? v4.description : "\(v4)/\(ipv4)"
        }
        return ipv6 == 128 ? address.description : "\(address)/\(ipv6)"
    }

    public var description: String { "\(ipv4),\(ipv6)" }
}
