import Testing
@testable import SwitchyardCore

private func address(_ ip: String, _ port: UInt16) -> ProxyHeader.Address {
    ProxyHeader.Address(ip: IPAddress(ip)!, port: port)
}

/// The v2 header with `versionAndCommand`, `familyByte` and `body` (length from the body).
private func v2(_ versionAndCommand: UInt8, _ familyByte: UInt8, _ body: [UInt8]) -> [UInt8] {
    ProxyHeader.v2Signature + [versionAndCommand, familyByte, UInt8(body.count >> 8), UInt8(body.count & 0xFF)] + body
}

/// v2 address block for TCP over IPv4: 10.0.0.1:1234 -> 10.0.0.2:80.
private let ipv4Block: [UInt8] = [10, 0, 0, 1, 10, 0, 0, 2, 0x04, 0xD2, 0x00, 0x50]
/// v2 address block for TCP over IPv6: 2001:db8::1 port 65535 -> ::1 port 443.
private let ipv6Block: [UInt8] = [0x20, 0x01, 0x0D, 0xB8] + [UInt8](repeating: 0, count: 11) + [1]
    + [UInt8](repeating: 0, count: 15) + [1] + [0xFF, 0xFF, 0x01, 0xBB]

private func tlv(_ type: UInt8, _ value: [UInt8]) -> [UInt8] {
    [type, UInt8(value.count >> 8), UInt8(value.count & 0xFF)] + value
}

/// A valid input and what it must parse to.
struct ValidProxyHeader: Sendable, CustomTestStringConvertible {
    let name: String
    let bytes: [UInt8]
    let expected: ProxyHeader
    var testDescription: String { name }
}

private let validHeaders: [ValidProxyHeader] = {
    func v1(_ line: String, _ family: ProxyHeader.Family, _ source: ProxyHeader.Address?,
            _ destination: ProxyHeader.Address?) -> ValidProxyHeader {
        let bytes = ascii(line)
        return ValidProxyHeader(
            name: line.replacingOccurrences(of: "\r\n", with: "\\r\\n"), bytes: bytes,
            expected: ProxyHeader(version: .v1, command: .proxy, family: family,
                                  transport: source == nil ? .unspecified : .stream,
                                  source: source, destination: destination, byteCount: bytes.count))
    }
    let longIPv6 = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"
    let unknownWorstCase = "PROXY UNKNOWN \(longIPv6) \(longIPv6) 65535 65535\r\n"
    precondition(unknownWorstCase.utf8.count == 107)
    let tcp6Longest = "PROXY TCP6 \(longIPv6) \(longIPv6.uppercased()) 65535 65535\r\n"
    precondition(tcp6Longest.utf8.count == 104)

    var cases: [ValidProxyHeader] = [
        v1("PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n", .inet,
           address("192.168.0.1", 56324), address("192.168.0.11", 443)),
        v1("PROXY TCP4 0.0.0.0 255.255.255.255 0 65535\r\n", .inet,
           address("0.0.0.0", 0), address("255.255.255.255", 65535)),
        v1("PROXY TCP6 2001:db8::1 2001:DB8::2 1 10\r\n", .inet6,
           address("2001:db8::1", 1), address("2001:db8::2", 10)),
        v1("PROXY TCP6 ::ffff:10.0.0.1 ::1 40000 6379\r\n", .inet6,
           address("::ffff:10.0.0.1", 40000), address("::1", 6379)),
        v1("PROXY TCP6 1:2:3:4:5:6:7:8 :: 9 99\r\n", .inet6,
           address("1:2:3:4:5:6:7:8", 9), address("::", 99)),
        v1(tcp6Longest, .inet6, address(longIPv6, 65535), address(longIPv6, 65535)),
        v1("PROXY UNKNOWN\r\n", .unspecified, nil, nil),
        v1("PROXY UNKNOWN 1.2.3.4 garbage that is ignored\r\n", .unspecified, nil, nil),
        v1(unknownWorstCase, .unspecified, nil, nil),
    ]

    func v2Case(_ name: String, _ bytes: [UInt8], _ command: ProxyHeader.Command, _ family: ProxyHeader.Family,
                _ transport: ProxyHeader.Transport, _ source: ProxyHeader.Address?,
                _ destination: ProxyHeader.Address?, _ tlvs: [ProxyHeader.TLV] = []) -> ValidProxyHeader {
        ValidProxyHeader(name: name, bytes: bytes, expected: ProxyHeader(
            version: .v2, command: command, family: family, transport: transport, source: source,
            destination: destination, tlvs: tlvs, byteCount: bytes.count))
    }
    let v4Source = address("10.0.0.1", 1234), v4Destination = address("10.0.0.2", 80)
    let v6Source = address("2001:db8::1", 65535), v6Destination = address("::1", 443)
    let sslValue: [UInt8] = [0x01, 0, 0, 0, 0] + tlv(0x21, ascii("TLSv1.3")) + tlv(0x22, ascii("client"))
    cases += [
        v2Case("v2 PROXY TCP/IPv4", v2(0x21, 0x11, ipv4Block), .proxy, .inet, .stream, v4Source, v4Destination),
        v2Case("v2 PROXY UDP/IPv4", v2(0x21, 0x12, ipv4Block), .proxy, .inet, .datagram, v4Source, v4Destination),
        v2Case("v2 PROXY TCP/IPv6", v2(0x21, 0x21, ipv6Block), .proxy, .inet6, .stream, v6Source, v6Destination),
        v2Case("v2 PROXY UDP/IPv6", v2(0x21, 0x22, ipv6Block), .proxy, .inet6, .datagram, v6Source, v6Destination),
        v2Case("v2 LOCAL, nothing after", v2(0x20, 0x00, []), .local, .unspecified, .unspecified, nil, nil),
        v2Case("v2 LOCAL with addresses, which are ignored", v2(0x20, 0x11, ipv4Block),
               .local, .unspecified, .unspecified, nil, nil),
        v2Case("v2 LOCAL with an undefined family byte, skipped unread", v2(0x20, 0xFF, [1, 2, 3, 4, 5]),
               .local, .unspecified, .unspecified, nil, nil),
        v2Case("v2 LOCAL with a TLV", v2(0x20, 0x00, tlv(0x04, [0, 0])),
               .local, .unspecified, .unspecified, nil, nil, [.init(type: 0x04, value: [0, 0])]),
        v2Case("v2 PROXY UNSPEC", v2(0x21, 0x00, []), .proxy, .unspecified, .unspecified, nil, nil),
        v2Case("v2 PROXY UNSPEC with a TLV", v2(0x21, 0x00, tlv(0xE0, [7])),
               .proxy, .unspecified, .unspecified, nil, nil, [.init(type: 0xE0, value: [7])]),
        v2Case("v2 PROXY UNIX stream with a TLV", v2(0x21, 0x31, [UInt8](repeating: 0x41, count: 216) + tlv(0x30, ascii("ns"))),
               .proxy, .unix, .stream, nil, nil, [.init(type: 0x30, value: ascii("ns"))]),
        v2Case("v2 with ALPN, authority, empty NOOP, unique id and SSL TLVs",
               v2(0x21, 0x11, ipv4Block + tlv(0x01, ascii("h2")) + tlv(0x02, ascii("api.example.com"))
                  + tlv(0x04, []) + tlv(0x05, [UInt8](repeating: 9, count: 128)) + tlv(0x20, sslValue)),
               .proxy, .inet, .stream, v4Source, v4Destination,
               [.init(type: 0x01, value: ascii("h2")), .init(type: 0x02, value: ascii("api.example.com")),
                .init(type: 0x04, value: []), .init(type: 0x05, value: [UInt8](repeating: 9, count: 128)),
                .init(type: 0x20, value: sslValue)]),
    ]

    // A header whose CRC32C TLV is right.
    var withChecksum = v2(0x21, 0x11, ipv4Block + tlv(0x03, [0, 0, 0, 0]) + tlv(0x04, [1]))
    var crc = CRC32C()
    crc.update(withChecksum)
    let value = crc.value
    let checksum: [UInt8] = [UInt8(value >> 24), UInt8(value >> 16 & 0xFF), UInt8(value >> 8 & 0xFF), UInt8(value & 0xFF)]
    withChecksum.replaceSubrange(31..<35, with: checksum)
    cases.append(v2Case("v2 with a correct CRC32C", withChecksum, .proxy, .inet, .stream, v4Source, v4Destination,
                        [.init(type: 0x03, value: checksum), .init(type: 0x04, value: [1])]))

    // The biggest legal header: 16 + 65535 bytes, the addresses then one NOOP TLV filling the rest.
    let filler = [UInt8](repeating: 0xAB, count: 0xFFFF - 12 - 3)
    let biggest = v2(0x21, 0x11, ipv4Block + tlv(0x04, filler))
    precondition(biggest.count == ProxyHeader.maximumV2Length)
    cases.append(v2Case("v2 of the biggest legal size, 65551 bytes", biggest, .proxy, .inet, .stream,
                        v4Source, v4Destination, [.init(type: 0x04, value: filler)]))
    return cases
}()

@Suite struct ProxyHeaderParsingTests {
    @Test(arguments: validHeaders)
    func validHeadersParseToWhatTheyCarry(_ valid: ValidProxyHeader) {
        #expect(ProxyHeader.parse(valid.bytes) == .complete(valid.expected))
    }

    @Test(arguments: validHeaders)
    func payloadAfterTheHeaderIsNotPartOfIt(_ valid: ValidProxyHeader) {
        let payload = ascii("GET / HTTP/1.1\r\n\r\n") + [0x0D, 0x0A, 0x00]
        #expect(ProxyHeader.parse(valid.bytes + payload) == .complete(valid.expected))
        var reader = ProxyHeaderReader()
        #expect(reader.feed(valid.bytes + payload) == .complete(valid.expected))
        #expect(Array(reader.payload) == payload)
    }

    /// A header split over many small writes: every proper prefix asks for more, and the
    /// reader fed one byte at a time completes exactly on the last byte.
    @Test(arguments: validHeaders)
    func everyPrefixNeedsMoreAndByteAtATimeCompletesOnTheLastByte(_ valid: ValidProxyHeader) {
        // Every prefix for all but the biggest header, whose prefixes are sampled.
        let lengths = valid.bytes.count < 1_000
            ? Array(0..<valid.bytes.count)
            : Array(0..<300) + Array(stride(from: 300, to: valid.bytes.count, by: 997)) + [valid.bytes.count - 1]
        for length in lengths {
            #expect(ProxyHeader.parse(Array(valid.bytes[..<length])) == .needMoreData, "prefix of \(length) bytes")
        }
        guard valid.bytes.count < 1_000 else { return }
        var reader = ProxyHeaderReader()
        for (index, byte) in valid.bytes.enumerated() {
            let result = reader.feed([byte])
            if index < valid.bytes.count - 1 {
                #expect(result == .needMoreData, "after \(index + 1) bytes")
            } else {
                #expect(result == .complete(valid.expected))
            }
        }
    }

    @Test(arguments: validHeaders)
    func splitInTwoAtEveryPointGivesTheSameHeader(_ valid: ValidProxyHeader) {
        let points = valid.bytes.count < 1_000
            ? Array(0...valid.bytes.count)
            : [0, 1, 15, 16, 17, 28, 29, 1_000, 40_000, valid.bytes.count - 1, valid.bytes.count]
        for point in points {
            var reader = ProxyHeaderReader()
            reader.feed(valid.bytes[..<point])
            #expect(reader.feed(valid.bytes[point...]) == .complete(valid.expected), "split at \(point)")
            #expect(reader.payload.isEmpty)
        }
    }

    @Test func theBiggestLegalHeaderArrivingInSmallWritesCompletesOnItsLastByte() {
        guard let biggest = validHeaders.last, biggest.bytes.count == ProxyHeader.maximumV2Length else {
            Issue.record("the biggest header is not the last case")
            return
        }
        var reader = ProxyHeaderReader()
        var offset = 0
        var writes = 0
        while offset < biggest.bytes.count {
            let end = min(offset + 536, biggest.bytes.count)
            let result = reader.feed(biggest.bytes[offset..<end])
            writes += 1
            #expect(result == (end == biggest.bytes.count ? .complete(biggest.expected) : .needMoreData))
            offset = end
        }
        #expect(writes == 123)
    }

    @Test func aLowerMaximumRefusesALongerV2HeaderAsSoonAsItsLengthIsKnown() {
        let header = v2(0x21, 0x11, ipv4Block + tlv(0x04, [UInt8](repeating: 0, count: 100)))
        #expect(ProxyHeader.parse(Array(header[..<15]), maximumLength: 64) == .needMoreData)
        #expect(ProxyHeader.parse(Array(header[..<16]), maximumLength: 64) == .invalid(.tooLong(length: 131, maximum: 64)))
        #expect(ProxyHeader.parse(header, maximumLength: 131) == ProxyHeader.parse(header))
        let line = ascii("PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n")
        #expect(ProxyHeader.parse(Array(line[..<19]), maximumLength: 20) == .needMoreData)
        #expect(ProxyHeader.parse(Array(line[..<20]), maximumLength: 20) == .invalid(.tooLong(length: 20, maximum: 20)))
        #expect(ProxyHeader.parse(line, maximumLength: 20) == .invalid(.tooLong(length: 47, maximum: 20)))
    }

    /// The longest v1 line still waiting for its LF is not yet too long.
    @Test func theWorstCaseV1LineWaitingForItsLineFeedNeedsMore() {
        let longIPv6 = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"
        let line = ascii("PROXY UNKNOWN \(longIPv6) \(longIPv6) 65535 65535\r\n")
        #expect(ProxyHeader.parse(Array(line.dropLast())) == .needMoreData)
        #expect(ProxyHeader.parse(Array(line.dropLast()) + [0x20]) == .invalid(.v1BadLineEnding))
        #expect(ProxyHeader.parse(Array(line.dropLast(2)) + [0x20, 0x20]) == .invalid(.v1LineTooLong))
    }
}

/// Inputs that must be refused, and with which error.
private let malformedV1: [(String, ProxyHeaderError)] = {
    let longIPv6 = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"
    return [
        ("GET / HTTP/1.1\r\n", .notProxyProtocol),
        ("proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n", .notProxyProtocol),
        ("PROXI TCP4 1.2.3.4 5.6.7.8 1 2\r\n", .notProxyProtocol),
        ("\u{16}\u{3}\u{1}", .notProxyProtocol),
        ("PROXYTCP4 1.2.3.4 5.6.7.8 1 2\r\n", .v1MalformedFields),
        ("PROXY\r\n", .v1MalformedFields),
        ("PROXY  TCP4 1.2.3.4 5.6.7.8 1 2\r\n", .v1MalformedFields),
        ("PROXY \r\n", .v1MalformedFields),
        ("PROXY TCP4\r\n", .v1MalformedFields),
        ("PROXY TCP4 \r\n", .v1MalformedFields),
        ("PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n", .v1MalformedFields),
        ("PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n", .v1MalformedFields),
        ("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n", .v1MalformedFields),
        ("PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", .v1MalformedFields),
        ("PROXY TCP4 1.2.3.4 5.6.7.8\r\n", .v1MalformedFields),
        ("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n", .v1MalformedFields),
        ("PROXY TCP4 1.2.3.4\r\n", .v1MalformedFields),
        ("PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n", .v1UnknownProtocol),
        ("PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n", .v1UnknownProtocol),
        ("PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n", .v1UnknownProtocol),
        ("PROXY UNKNOWNX\r\n", .v1UnknownProtocol),
        ("PROXY UNKNOWN\t\r\n", .v1UnknownProtocol),
        ("PROXY TCP44 1.2.3.4 5.6.7.8 1 2\r\n", .v1UnknownProtocol),
        ("PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n", .v1BadAddress),
        ("PROXY TCP4 1.2.3.04 5.6.7.8 1 2\r\n", .v1BadAddress),
        ("PROXY TCP4 1.2.3.00 5.6.7.8 1 2\r\n", .v1BadAddress),
        ("PROXY TCP4 256.2.3.4 5.6.7.8 1 2\r\n", .v1BadAddress),
        ("PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n", .v1BadAddress),
        ("PROXY TCP4 1.2.3.4.5 5.6.7.8 1 2\r\n", .v1BadAddress),
        ("PROXY TCP4 1..3.4 5.6.7.8 1 2\r\n", .v1BadAddress),
        ("PROXY TCP4 1.2.3.4. 5.6.7.8 1 2\r\n", .v1BadAddress),
        ("PROXY TCP4 1.2.3.4 5.6.7.8888 1 2\r\n", .v1BadAddress),
        ("PROXY TCP4 1.2.3.4 localhost 1 2\r\n", .v1BadAddress),
        ("PROXY TCP4 ::1 ::1 1 2\r\n", .v1BadAddress),
        ("PROXY TCP4 1.2.3.4 ::ffff:5.6.7.8 1 2\r\n", .v1BadAddress),
        ("PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n", .v1BadAddress),
        ("PROXY TCP6 1::2::3 ::1 1 2\r\n", .v1BadAddress),
        ("PROXY TCP6 1:2:3:4:5:6:7:8:9 ::1 1 2\r\n", .v1BadAddress),
        ("PROXY TCP6 1:2:3:4:5:6:7 ::1 1 2\r\n", .v1BadAddress),
        ("PROXY TCP6 12345::1 ::1 1 2\r\n", .v1BadAddress),
        ("PROXY TCP6 ::ffff:01.2.3.4 ::1 1 2\r\n", .v1BadAddress),
        ("PROXY TCP6 ::ffff:1.2.3 ::1 1 2\r\n", .v1BadAddress),
        ("PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n", .v1BadAddress),
        ("PROXY TCP6 [::1] ::1 1 2\r\n", .v1BadAddress),
        ("PROXY TCP6 ::g ::1 1 2\r\n", .v1BadAddress),
        ("PROXY TCP6 : ::1 1 2\r\n", .v1BadAddress),
        ("PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n", .v1BadPort),
        ("PROXY TCP4 1.2.3.4 5.6.7.8 1 00\r\n", .v1BadPort),
        ("PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n", .v1BadPort),
        ("PROXY TCP4 1.2.3.4 5.6.7.8 99999 2\r\n", .v1BadPort),
        ("PROXY TCP4 1.2.3.4 5.6.7.8 123456 2\r\n", .v1BadPort),
        ("PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n", .v1BadPort),
        ("PROXY TCP4 1.2.3.4 5.6.7.8 1 +2\r\n", .v1BadPort),
        ("PROXY TCP4 1.2.3.4 5.6.7.8 1 0x50\r\n", .v1BadPort),
        ("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", .v1BadLineEnding),
        ("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\r\n", .v1BadLineEnding),
        ("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX", .v1BadLineEnding),
        ("PROXY TCP4 1.2.3.4\r5.6.7.8 1 2\r\n", .v1BadLineEnding),
        ("PROXY UNKNOWN \n", .v1BadLineEnding),
        ("PROXY UNKNOWN a\rb\r\n", .v1BadLineEnding),
        ("PROXY \n", .v1BadLineEnding),
        ("PROXY UNKNOWN " + String(repeating: "x", count: 100), .v1LineTooLong),
        ("PROXY UNKNOWN \(longIPv6) \(longIPv6) 65535 655350\r\n", .v1LineTooLong),
    ]
}()

private let malformedV2: [(String, [UInt8], ProxyHeaderError)] = {
    var cases: [(String, [UInt8], ProxyHeaderError)] = []
    let good = v2(0x21, 0x11, ipv4Block)
    for index in 0..<12 {
        var bytes = good
        bytes[index] ^= 0xFF
        cases.append(("signature byte \(index) wrong", bytes, .notProxyProtocol))
    }
    cases += [
        ("signature then HTTP", ProxyHeader.v2Signature[..<5] + ascii("GET / HTTP/1.1\r\n"), .notProxyProtocol),
        ("version 1", v2(0x11, 0x11, ipv4Block), .v2UnsupportedVersion(1)),
        ("version 0", v2(0x01, 0x11, ipv4Block), .v2UnsupportedVersion(0)),
        ("version 3", v2(0x31, 0x11, ipv4Block), .v2UnsupportedVersion(3)),
        ("version 15", v2(0xF1, 0x11, ipv4Block), .v2UnsupportedVersion(15)),
    ]
    for command: UInt8 in 2...15 {
        cases.append(("command \(command)", v2(0x20 | command, 0x11, ipv4Block), .v2UnsupportedCommand(command)))
    }
    for familyByte: UInt8 in [0x01, 0x02, 0x03, 0x10, 0x13, 0x20, 0x23, 0x30, 0x33, 0x40, 0x41, 0xF1, 0xFF] {
        cases.append(("PROXY with family byte \(familyByte)", v2(0x21, familyByte, ipv4Block + ipv6Block),
                      .v2UnsupportedFamily(familyByte)))
    }
    cases += [
        ("IPv4 length 11", v2(0x21, 0x11, Array(ipv4Block[..<11])), .v2AddressesTruncated(family: 0x11, length: 11)),
        ("IPv4 length 0", v2(0x21, 0x11, []), .v2AddressesTruncated(family: 0x11, length: 0)),
        ("UDP/IPv4 length 4", v2(0x21, 0x12, [1, 2, 3, 4]), .v2AddressesTruncated(family: 0x12, length: 4)),
        ("IPv6 length 35", v2(0x21, 0x21, Array(ipv6Block[..<35])), .v2AddressesTruncated(family: 0x21, length: 35)),
        ("IPv6 length 12", v2(0x21, 0x21, ipv4Block), .v2AddressesTruncated(family: 0x21, length: 12)),
        ("UNIX length 215", v2(0x21, 0x31, [UInt8](repeating: 0, count: 215)), .v2AddressesTruncated(family: 0x31, length: 215)),
        ("one stray byte after the addresses", v2(0x21, 0x11, ipv4Block + [0x04]), .v2MalformedTLV(offset: 28)),
        ("two stray bytes after the addresses", v2(0x21, 0x11, ipv4Block + [0x04, 0x00]), .v2MalformedTLV(offset: 28)),
        ("TLV longer than the header", v2(0x21, 0x11, ipv4Block + [0x04, 0x00, 0x02, 0x00]), .v2MalformedTLV(offset: 28)),
        ("TLV of length 65535 in a short header", v2(0x21, 0x11, ipv4Block + [0x01, 0xFF, 0xFF]), .v2MalformedTLV(offset: 28)),
        ("second TLV truncated", v2(0x21, 0x11, ipv4Block + tlv(0x01, ascii("h2")) + [0x02, 0x00]), .v2MalformedTLV(offset: 33)),
        ("UNSPEC with a stray byte", v2(0x21, 0x00, [0x01]), .v2MalformedTLV(offset: 16)),
        ("LOCAL with a stray byte after its TLVs", v2(0x20, 0x00, tlv(0x04, []) + [9]), .v2MalformedTLV(offset: 19)),
        ("CRC32C of 3 bytes", v2(0x21, 0x11, ipv4Block + tlv(0x03, [0, 0, 0])), .v2ChecksumMismatch),
        ("CRC32C of 5 bytes", v2(0x21, 0x11, ipv4Block + tlv(0x03, [0, 0, 0, 0, 0])), .v2ChecksumMismatch),
        ("CRC32C that does not match", v2(0x21, 0x11, ipv4Block + tlv(0x03, [1, 2, 3, 4])), .v2ChecksumMismatch),
        // One CRC32C at most: each would re-check the whole header. The second is refused before
        // any checksum is computed, whatever the values.
        ("two CRC32C TLVs", v2(0x21, 0x11, ipv4Block + tlv(0x03, [1, 2, 3, 4]) + tlv(0x03, [1, 2, 3, 4])),
         .v2SecondChecksum(offset: 35)),
        ("a second CRC32C after another TLV", v2(0x21, 0x11, ipv4Block + tlv(0x03, [0, 0, 0, 0]) + tlv(0x04, [1]) + tlv(0x03, [0, 0, 0, 0])),
         .v2SecondChecksum(offset: 39)),
        ("a second CRC32C of the wrong length", v2(0x21, 0x11, ipv4Block + tlv(0x03, [0, 0, 0, 0]) + tlv(0x03, [0])),
         .v2SecondChecksum(offset: 35)),
        ("a LOCAL header of 1,000 CRC32C TLVs",
         v2(0x20, 0x00, Array([[UInt8]](repeating: tlv(0x03, [0, 0, 0, 0]), count: 1000).joined())),
         .v2SecondChecksum(offset: 23)),
    ]
    return cases
}()

@Suite struct ProxyHeaderMalformedTests {
    @Test(arguments: malformedV1)
    func malformedV1LinesAreRefused(line: String, error: ProxyHeaderError) {
        #expect(ProxyHeader.parse(ascii(line)) == .invalid(error))
        expectNoPrefixCompletes(ascii(line))
    }

    @Test(arguments: malformedV2)
    func malformedV2HeadersAreRefused(name: String, bytes: [UInt8], error: ProxyHeaderError) {
        #expect(ProxyHeader.parse(bytes) == .invalid(error), "\(name)")
        expectNoPrefixCompletes(bytes)
    }

    /// Once refused, always refused: no longer input turns an invalid prefix into a header, and
    /// no prefix of an invalid input is a complete header.
    private func expectNoPrefixCompletes(_ bytes: [UInt8]) {
        var refusedAt: Int?
        for length in 0...bytes.count {
            switch ProxyHeader.parse(Array(bytes[..<length])) {
            case .complete:
                Issue.record("prefix of \(length) bytes of \(hexString(bytes)) parsed as a header")
            case .invalid:
                if refusedAt == nil { refusedAt = length }
            case .needMoreData:
                #expect(refusedAt == nil, "prefix of \(length) needs more after \(refusedAt ?? -1) was refused")
            }
        }
    }

    /// Garbage is refused at its first impossible byte, not after 107 bytes or the timeout.
    @Test(arguments: [
        ("G", 1), ("PROXY X", 7), ("PROXY TCP4 1.2.3.4x", 19), ("PROXY TCP4 1.2.3.4 5.6.7.8 1 01", 31),
        ("PROXY TCP4 1.2.3.4 5.6.7.8 1 123456", 35), ("PROXY TCP6 1.2.3.4 ", 19),
        ("PROXY TCP4 1234567890123456", 27), ("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 ", 31),
    ])
    func garbageIsRefusedAtItsFirstImpossibleByte(text: String, refusedAfter: Int) {
        let bytes = ascii(text)
        #expect(ProxyHeader.parse(Array(bytes[..<(refusedAfter - 1)])) == .needMoreData)
        guard case .invalid = ProxyHeader.parse(Array(bytes[..<refusedAfter])) else {
            Issue.record("'\(text)' not refused after \(refusedAfter) bytes")
            return
        }
    }

    @Test func v2GarbageIsRefusedAtTheFirstWrongFixedByte() {
        #expect(ProxyHeader.parse([0x0D, 0x0A, 0x0D, 0x0B]) == .invalid(.notProxyProtocol))
        #expect(ProxyHeader.parse(ProxyHeader.v2Signature + [0x22]) == .invalid(.v2UnsupportedCommand(2)))
        #expect(ProxyHeader.parse(ProxyHeader.v2Signature + [0x21, 0x55]) == .invalid(.v2UnsupportedFamily(0x55)))
        #expect(ProxyHeader.parse(ProxyHeader.v2Signature + [0x21, 0x11, 0x00]) == .needMoreData)
        #expect(ProxyHeader.parse(ProxyHeader.v2Signature + [0x21, 0x11, 0x00, 0x0B])
                == .invalid(.v2AddressesTruncated(family: 0x11, length: 11)))
    }

    @Test func nothingReceivedYetNeedsMore() {
        #expect(ProxyHeader.parse([]) == .needMoreData)
        var reader = ProxyHeaderReader()
        #expect(reader.feed([UInt8]()) == .needMoreData)
    }

    @Test func theReaderKeepsItsAnswerAndIgnoresLaterBytes() {
        var reader = ProxyHeaderReader()
        #expect(reader.feed(ascii("GET /")) == .invalid(.notProxyProtocol))
        #expect(reader.feed(ascii("PROXY UNKNOWN\r\n")) == .invalid(.notProxyProtocol))
        #expect(reader.received == ascii("GET /"))
        #expect(reader.payload.isEmpty)

        var complete = ProxyHeaderReader()
        complete.feed(ascii("PROXY UNKNOWN\r\nab"))
        complete.feed(ascii("cd"))
        #expect(Array(complete.payload) == ascii("ab"))
    }

    @Test func errorsAreOneLine() {
        let errors = malformedV1.map(\.1) + malformedV2.map(\.2) + [.tooLong(length: 200, maximum: 100)]
        for error in errors {
            #expect(!error.description.isEmpty && !error.description.contains("\n"), "\(error)")
        }
        #expect(ProxyHeaderError.v2UnsupportedFamily(0x55).description
                == "PROXY v2 header has family/transport byte 0x55, which is not defined")
    }
}

@Suite struct ProxyHeaderEncodingTests {
    @Test func v1LinesArePinned() {
        #expect(ProxyHeader.encodeV1(source: address("192.168.0.1", 56324), destination: address("192.168.0.11", 443))
                == ascii("PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n"))
        #expect(ProxyHeader.encodeV1(source: address("2001:db8::1", 1), destination: address("::1", 0))
                == ascii("PROXY TCP6 2001:db8::1 ::1 1 0\r\n"))
        // An IPv4 client seen by an IPv6 listener address: both sent as IPv6.
        #expect(ProxyHeader.encodeV1(source: address("10.0.0.1", 5), destination: address("::1", 6))
                == ascii("PROXY TCP6 ::ffff:a00:1 ::1 5 6\r\n"))
        #expect(ProxyHeader.encodeV1Unknown() == ascii("PROXY UNKNOWN\r\n"))
    }

    @Test func v2HeadersArePinned() {
        #expect(hexString(ProxyHeader.encodeV2(source: address("10.0.0.1", 1234), destination: address("10.0.0.2", 80)))
                == "0d0a0d0a000d0a515549540a" + "2111000c" + "0a0000010a00000204d20050")
        #expect(hexString(ProxyHeader.encodeV2(source: address("2001:db8::1", 65535), destination: address("::1", 443)))
                == "0d0a0d0a000d0a515549540a" + "21210024" + hexString(ipv6Block))
        #expect(hexString(ProxyHeader.encodeV2Local()) == "0d0a0d0a000d0a515549540a" + "20000000")
        #expect(hexString(ProxyHeader.encodeV2Local(tlvs: [.init(type: 0x04, value: [1, 2])]))
                == "0d0a0d0a000d0a515549540a" + "20000005" + "0400020102")
        #expect(hexString(ProxyHeader.encodeV2(source: address("10.0.0.1", 1), destination: address("::2", 2)))
                == "0d0a0d0a000d0a515549540a" + "21210024" + "00000000000000000000ffff0a000001"
                + "00000000000000000000000000000002" + "00010002")
    }

    private static let addressPairs: [(String, UInt16, String, UInt16)] = [
        ("127.0.0.1", 1, "127.0.0.1", 6379), ("0.0.0.0", 0, "255.255.255.255", 65535),
        ("10.1.2.3", 40000, "192.168.1.1", 443), ("::1", 55555, "::1", 80), ("::", 0, "::", 0),
        ("2001:db8:0:1:1:1:1:1", 1, "fe80::1", 2), ("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535, "1::", 1),
        ("::ffff:10.0.0.1", 3, "::ffff:10.0.0.2", 4), ("10.0.0.1", 3, "2001:db8::2", 4), ("2001:db8::2", 4, "10.0.0.1", 3),
    ]

    @Test(arguments: addressPairs)
    func encodedHeadersParseBackToTheSameAddresses(source: String, sourcePort: UInt16, destination: String, destinationPort: UInt16) {
        let from = address(source, sourcePort)
        let to = address(destination, destinationPort)
        let mixed = from.ip.isIPv6 != to.ip.isIPv6
        let expectedFrom = mixed ? ProxyHeader.Address(ip: from.ip.asIPv6, port: sourcePort) : from
        let expectedTo = mixed ? ProxyHeader.Address(ip: to.ip.asIPv6, port: destinationPort) : to
        let isIPv6 = from.ip.isIPv6 || to.ip.isIPv6
        for (version, bytes) in [(ProxyHeader.Version.v1, ProxyHeader.encodeV1(source: from, destination: to)),
                                 (.v2, ProxyHeader.encodeV2(source: from, destination: to))] {
            #expect(ProxyHeader.parse(bytes) == .complete(ProxyHeader(
                version: version, command: .proxy, family: isIPv6 ? .inet6 : .inet, transport: .stream,
                source: expectedFrom, destination: expectedTo, byteCount: bytes.count)), "\(version)")
            #expect(bytes.count <= (version == .v1 ? 104 : 52))
        }
    }

    @Test func tlvsRoundTripAndLocalCarriesNoAddress() {
        let tlvs: [ProxyHeader.TLV] = [.init(type: 0x02, value: ascii("db.example.com")), .init(type: 0xE1, value: [])]
        let bytes = ProxyHeader.encodeV2(source: address("10.0.0.1", 1), destination: address("10.0.0.2", 2), tlvs: tlvs)
        guard case let .complete(header) = ProxyHeader.parse(bytes) else {
            Issue.record("encoded header does not parse")
            return
        }
        #expect(header.tlvs == tlvs)
        #expect(ProxyHeader.parse(ProxyHeader.encodeV2Local(tlvs: tlvs)) == .complete(ProxyHeader(
            version: .v2, command: .local, family: .unspecified, transport: .unspecified,
            source: nil, destination: nil, tlvs: tlvs, byteCount: 16 + 17 + 3)))
    }
}

@Suite struct ProxyHeaderFuzzEntryTests {
    /// The fuzz entry point on every table input, their prefixes and random mutations of them:
    /// it must return (its internal checks trap on any inconsistency, which would end the test run).
    @Test func fuzzEntryAcceptsEveryTableInputAndMutationsOfThem() {
        var inputs = validHeaders.filter { $0.bytes.count < 1_000 }.map(\.bytes)
            + malformedV1.map { ascii($0.0) } + malformedV2.map(\.1)
        var random = TestRandom(seed: 0x5052_4F58_5900_0001)
        let seeds = inputs
        for _ in 0..<3_000 {
            var bytes = seeds[Int.random(in: 0..<seeds.count, using: &random)]
            for _ in 0..<Int.random(in: 1...4, using: &random) where !bytes.isEmpty {
                let index = Int.random(in: 0..<bytes.count, using: &random)
                switch Int.random(in: 0..<4, using: &random) {
                case 0: bytes[index] = UInt8.random(in: 0...255, using: &random)
                case 1: bytes.remove(at: index)
                case 2: bytes.insert(UInt8.random(in: 0...255, using: &random), at: index)
                default: bytes = Array(bytes[..<index])
                }
            }
            inputs.append(bytes)
        }
        var completes = 0
        for bytes in inputs {
            if case .complete = ProxyHeader.fuzz(bytes) { completes += 1 }
        }
        #expect(completes >= validHeaders.count - 1)
        #expect(ProxyHeader.fuzz(validHeaders.last!.bytes) == .complete(validHeaders.last!.expected))
    }
}

@Suite struct CRC32CTests {
    /// The check value of CRC-32C (RFC 3720 appendix B.4 test vectors and the common "123456789").
    @Test func knownVectors() {
        var digits = CRC32C()
        digits.update(ascii("123456789"))
        #expect(digits.value == 0xE306_9283)
        var zeros = CRC32C()
        zeros.update([UInt8](repeating: 0, count: 32))
        #expect(zeros.value == 0x8A91_36AA)
        var ones = CRC32C()
        ones.update([UInt8](repeating: 0xFF, count: 32))
        #expect(ones.value == 0x62A8_AB43)
        var ascending = CRC32C()
        ascending.update((0..<32).map { UInt8($0) })
        #expect(ascending.value == 0x46DD_794E)
    }
}
