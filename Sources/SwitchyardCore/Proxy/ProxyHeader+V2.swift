/// PROXY protocol version 2, the binary block (`doc/proxy-protocol.txt` section 2.2):
///
///     12 bytes   signature  0D 0A 0D 0A 00 0D 0A 51 55 49 54 0A
///     1 byte     version (high nibble, must be 2) and command (low nibble: 0 LOCAL, 1 PROXY)
///     1 byte     family (high nibble) and transport (low nibble)
///     2 bytes    length of what follows, big-endian
///     length     addresses (by family: 12 for IPv4, 36 for IPv6, 216 for UNIX, 0 for UNSPEC),
///                then TLVs (type: 1 byte, length: 2 bytes big-endian, value)
///
/// Strictness: the version must be 2 and the command LOCAL or PROXY. A PROXY header's family and
/// transport byte must be one the specification lists (0x00, 0x11, 0x12, 0x21, 0x22, 0x31,
/// 0x32), and its length must cover that family's addresses. For LOCAL the family byte is not
/// checked, because the specification says it is ignored. The bytes after the addresses must be
/// whole TLVs, each inside the header; a CRC32C TLV (type 0x03) must be 4 bytes and match the
/// header (section 2.2.3), and there may be only one: each would re-check the whole header, so
/// a header of thousands would cost a worker thousands of passes over 64 KiB. When a LOCAL header's family byte is not a known one, the address
/// length is unknown, so its remaining bytes are skipped unread.
extension ProxyHeader {
    static func parseV2(_ bytes: Span<UInt8>, maximumLength: Int) -> ProxyHeaderParseResult {
        let count = bytes.count
        for i in 0..<min(count, v2Signature.count) where bytes[i] != v2Signature[i] {
            return .invalid(.notProxyProtocol)
        }
        guard count > 12 else { return .needMoreData }
        let versionAndCommand = bytes[12]
        guard versionAndCommand >> 4 == 2 else { return .invalid(.v2UnsupportedVersion(versionAndCommand >> 4)) }
        let commandBits = versionAndCommand & 0x0F
        guard commandBits <= 1 else { return .invalid(.v2UnsupportedCommand(commandBits)) }
        let command: Command = commandBits == 0 ? .local : .proxy

        guard count > 13 else { return .needMoreData }
        let familyByte = bytes[13]
        let addressLength = Self.addressLength(familyByte)
        if command == .proxy && addressLength == nil { return .invalid(.v2UnsupportedFamily(familyByte)) }

        guard count >= 16 else { return .needMoreData }
        let length = Int(bytes[14]) << 8 | Int(bytes[15])
        let total = 16 + length
        guard total <= maximumLength else { return .invalid(.tooLong(length: total, maximum: maximumLength)) }
        if command == .proxy, let addressLength, length < addressLength {
            return .invalid(.v2AddressesTruncated(family: familyByte, length: length))
        }
        guard count >= total else { return .needMoreData }

        var header = ProxyHeader(version: .v2, command: command, family: .unspecified,
                                 transport: .unspecified, source: nil, destination: nil, byteCount: total)
        if command == .proxy {
            header.family = family(familyByte)
            header.transport = transport(familyByte)
            switch familyByte >> 4 {
            case 1:
                let source = IPAddress.v4(bytes[16], bytes[17], bytes[18], bytes[19])
                let destination = IPAddress.v4(bytes[20], bytes[21], bytes[22], bytes[23])
                header.source = Address(ip: source, port: bigEndian16(bytes, 24))
                header.destination = Address(ip: destination, port: bigEndian16(bytes, 26))
            case 2:
                var source = [UInt8](repeating: 0, count: 16)
                var destination = [UInt8](repeating: 0, count: 16)
                for i in 0..<16 {
                    source[i] = bytes[16 + i]
                    destination[i] = bytes[32 + i]
                }
                header.source = Address(ip: .v6(source), port: bigEndian16(bytes, 48))
                header.destination = Address(ip: .v6(destination), port: bigEndian16(bytes, 50))
            default:
                break // UNSPEC carries no address; UNIX paths are not used by Switchyard.
            }
        }
        guard let addressLength, 16 + addressLength <= total else { return .complete(header) }

        // TLVs: whole ones, each inside the header.
        var offset = 16 + addressLength
        var checksumOffset: Int?
        while offset < total {
            guard offset + 3 <= total else { return .invalid(.v2MalformedTLV(offset: offset)) }
            let type = bytes[offset]
            let valueLength = Int(bytes[offset + 1]) << 8 | Int(bytes[offset + 2])
            let valueStart = offset + 3
            guard valueLength <= total - valueStart else { return .invalid(.v2MalformedTLV(offset: offset)) }
            var value = [UInt8](repeating: 0, count: valueLength)
            for i in 0..<valueLength { value[i] = bytes[valueStart + i] }
            if type == TLV.crc32c {
                guard checksumOffset == nil else { return .invalid(.v2SecondChecksum(offset: offset)) }
                guard valueLength == 4 else { return .invalid(.v2ChecksumMismatch) }
                checksumOffset = valueStart
            }
            header.tlvs.append(TLV(type: type, value: value))
            offset = valueStart + valueLength
        }
        if let valueStart = checksumOffset {
            let expected = UInt32(bytes[valueStart]) << 24 | UInt32(bytes[valueStart + 1]) << 16
                | UInt32(bytes[valueStart + 2]) << 8 | UInt32(bytes[valueStart + 3])
            var crc = CRC32C()
            for i in 0..<total {
                crc.update((valueStart..<valueStart + 4).contains(i) ? 0 : bytes[i])
            }
            guard crc.value == expected else { return .invalid(.v2ChecksumMismatch) }
        }
        return .complete(header)
    }

    /// The address bytes a family and transport byte announces; nil for a byte the specification
    /// does not define.
    static func addressLength(_ familyByte: UInt8) -> Int? {
        switch familyByte {
        case 0x00: return 0
        case 0x11, 0x12: return 12
        case 0x21, 0x22: return 36
        case 0x31, 0x32: return 216
        default: return nil
        }
    }

    private static func family(_ familyByte: UInt8) -> Family {
        switch familyByte >> 4 {
        case 1: return .inet
        case 2: return .inet6
        case 3: return .unix
        default: return .unspecified
        }
    }

    private static func transport(_ familyByte: UInt8) -> Transport {
        switch familyByte & 0x0F {
        case 1: return .stream
        case 2: return .datagram
        default: return .unspecified
        }
    }

    private static func bigEndian16(_ bytes: Span<UInt8>, _ offset: Int) -> UInt16 {
        UInt16(bytes[offset]) << 8 | UInt16(bytes[offset + 1])
    }
}

/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), the checksum of RFC 4960 appendix B
/// that PROXY v2's `PP2_TYPE_CRC32C` carries. Bytewise with a 256-entry table.
struct CRC32C {
    private static let table: [UInt32] = (0..<256).map { index in
        var value = UInt32(index)
        for _ in 0..<8 {
            value = value & 1 == 1 ? (value >> 1) ^ 0x82F6_3B78 : value >> 1
        }
        return value
    }

    private var state: UInt32 = 0xFFFF_FFFF

    mutating func update(_ byte: UInt8) {
        state = Self.table[Int((state ^ UInt32(byte)) & 0xFF)] ^ (state >> 8)
    }

    mutating func update(_ bytes: some Sequence<UInt8>) {
        for byte in bytes { update(byte) }
    }

    var value: UInt32 { state ^ 0xFFFF_FFFF }
}
