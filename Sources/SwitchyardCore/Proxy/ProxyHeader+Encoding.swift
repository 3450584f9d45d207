/// The headers Switchyard sends before the first byte to a `send-proxy` backend.
///
/// Both ends of a connection have one family on the wire, but a dual-stack listener reports an
/// IPv4 client as `::ffff:a.b.c.d`; when the two addresses given differ in family, the IPv4 one
/// is sent in its IPv4-mapped IPv6 form, so the header stays valid (both TCP6 / both IPv6).
/// When both are IPv4, the header is TCP4 / AF_INET. Mapped addresses are not unmapped: the
/// backend sees the addresses as the sockets reported them, as HAProxy sends them.
extension ProxyHeader {
    /// The v1 line `PROXY TCP4|TCP6 SRC DST SPORT DPORT\r\n` for a relayed TCP connection.
    public static func encodeV1(source: Address, destination: Address) -> [UInt8] {
        let (source, destination, isIPv6) = sameFamily(source, destination)
        let line = "PROXY \(isIPv6 ? "TCP6" : "TCP4") \(source.ip) \(destination.ip) \(source.port) \(destination.port)\r\n"
        return Array(line.utf8)
    }

    /// The v1 line `PROXY UNKNOWN\r\n` (the receiver uses the connection's own addresses).
    public static func encodeV1Unknown() -> [UInt8] {
        Array("PROXY UNKNOWN\r\n".utf8)
    }

    /// The v2 header with command PROXY over TCP, the two addresses, then `tlvs` in order.
    ///
    /// - Precondition: the TLVs fit in the header: each value at most 65535 bytes, and the
    ///   addresses plus every TLV at most 65535 bytes in all.
    public static func encodeV2(source: Address, destination: Address, tlvs: [TLV] = []) -> [UInt8] {
        let (source, destination, isIPv6) = sameFamily(source, destination)
        var body: [UInt8] = []
        body.reserveCapacity(36)
        body += source.ip.asIPv6Bytes(isIPv6)
        body += destination.ip.asIPv6Bytes(isIPv6)
        body += [UInt8(source.port >> 8), UInt8(source.port & 0xFF)]
        body += [UInt8(destination.port >> 8), UInt8(destination.port & 0xFF)]
        return v2Header(command: 0x1, familyByte: isIPv6 ? 0x21 : 0x11, addresses: body, tlvs: tlvs)
    }

    /// The v2 header with command LOCAL and family UNSPEC, no addresses, then `tlvs`: what a
    /// health check to a `send-proxy: v2` backend starts with.
    ///
    /// - Precondition: as for `encodeV2(source:destination:tlvs:)`.
    public static func encodeV2Local(tlvs: [TLV] = []) -> [UInt8] {
        v2Header(command: 0x0, familyByte: 0x00, addresses: [], tlvs: tlvs)
    }

    private static func v2Header(command: UInt8, familyByte: UInt8, addresses: [UInt8], tlvs: [TLV]) -> [UInt8] {
        var length = addresses.count
        for tlv in tlvs {
            precondition(tlv.value.count <= 0xFFFF, "ProxyHeader: a TLV value holds at most 65535 bytes")
            length += 3 + tlv.value.count
        }
        precondition(length <= 0xFFFF, "ProxyHeader: a v2 header holds at most 65535 bytes after its first 16")
        var bytes = v2Signature
        bytes.reserveCapacity(16 + length)
        bytes.append(0x20 | command)
        bytes.append(familyByte)
        bytes.append(UInt8(length >> 8))
        bytes.append(UInt8(length & 0xFF))
        bytes += addresses
        for tlv in tlvs {
            bytes.append(tlv.type)
            bytes.append(UInt8(tlv.value.count >> 8))
            bytes.append(UInt8(tlv.value.count & 0xFF))
            bytes += tlv.value
        }
        return bytes
    }

    /// Both addresses in one family: IPv4 when both are IPv4, IPv6 (IPv4-mapped) otherwise.
    private static func sameFamily(_ source: Address, _ destination: Address) -> (Address, Address, Bool) {
        if !source.ip.isIPv6 && !destination.ip.isIPv6 { return (source, destination, false) }
        // Rebuilt from their 128 bits, so that every IPv6 value written has exactly 16 bytes.
        func ipv6(_ address: Address) -> Address {
            let (high, low) = address.ip.mapped128
            return Address(ip: IPAddress(high: high, low: low), port: address.port)
        }
        return (ipv6(source), ipv6(destination), true)
    }
}

extension IPAddress {
    /// The 4 bytes of an IPv4 address, or the 16 of its IPv6 form when `ipv6` is set.
    fileprivate func asIPv6Bytes(_ ipv6: Bool) -> [UInt8] {
        guard ipv6 else { return bytes }
        let (high, low) = mapped128
        var result = [UInt8](repeating: 0, count: 16)
        for i in 0..<8 {
            result[i] = UInt8(truncatingIfNeeded: high >> (56 - 8 * UInt64(i)))
            result[8 + i] = UInt8(truncatingIfNeeded: low >> (56 - 8 * UInt64(i)))
        }
        return result
    }
}
