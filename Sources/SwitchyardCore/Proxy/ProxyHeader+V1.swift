/// PROXY protocol version 1, the text line (`doc/proxy-protocol.txt` section 2.1):
///
///     PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n
///     PROXY TCP6 2001:db8::1 2001:db8::2 56324 443\r\n
///     PROXY UNKNOWN[ anything]\r\n
///
/// Strictness, field by field: exactly one space between fields and none at the end; the line
/// ends at the first CRLF, within 107 bytes, and any lone CR or LF is an error; IPv4 addresses
/// are four decimal numbers 0 to 255 without leading zeros; IPv6 addresses are RFC 4291 text
/// (groups of 1 to 4 hex digits, at most one `::`, 128 bits in all), accepting a dotted IPv4
/// tail such as `::ffff:10.0.0.1` because that is how `inet_ntop(3)`, and so HAProxy, writes
/// IPv4-mapped addresses; ports are decimal 0 to 65535 without leading zeros. `UNKNOWN` may be
/// followed by anything up to the CRLF, which is ignored, as the specification requires.
///
/// A partial line is checked as far as it goes, so a sender of garbage is refused at its first
/// impossible byte rather than after 107 bytes or the timeout.
extension ProxyHeader {
    private static let space: UInt8 = 0x20
    private static let carriageReturn: UInt8 = 0x0D
    private static let lineFeed: UInt8 = 0x0A
    private static let tcp4: [UInt8] = Array("TCP4".utf8)
    private static let tcp6: [UInt8] = Array("TCP6".utf8)
    private static let unknown: [UInt8] = Array("UNKNOWN".utf8)

    static func parseV1(_ bytes: Span<UInt8>, maximumLength: Int) -> ProxyHeaderParseResult {
        let count = bytes.count
        for i in 0..<min(count, v1Prefix.count) where bytes[i] != v1Prefix[i] {
            // "PROXY" followed by anything but one space is a v1 line with a bad separator.
            return .invalid(i < 5 ? .notProxyProtocol : .v1MalformedFields)
        }

        // The line ends at the first LF, which must follow a CR and lie within the limit.
        let scanEnd = min(count, maximumLength)
        var lineFeedIndex = -1
        var i = 0
        while i < scanEnd {
            let byte = bytes[i]
            if byte == lineFeed {
                guard i > 0, bytes[i - 1] == carriageReturn else { return .invalid(.v1BadLineEnding) }
                lineFeedIndex = i
                break
            }
            if byte == carriageReturn, i + 1 < count, bytes[i + 1] != lineFeed {
                return .invalid(.v1BadLineEnding)
            }
            i += 1
        }

        if lineFeedIndex < 0 {
            if count >= maximumLength {
                return .invalid(maximumLength == maximumV1Length
                    ? .v1LineTooLong : .tooLong(length: count, maximum: maximumLength))
            }
            // A CR as the last byte so far is the start of the CRLF: the content ends before it.
            let end = count > 0 && bytes[count - 1] == carriageReturn ? count - 1 : count
            return parseV1Fields(bytes, end: end, lineLength: nil)
        }
        return parseV1Fields(bytes, end: lineFeedIndex - 1, lineLength: lineFeedIndex + 1)
    }

    /// Checks the fields in `v1Prefix.count..<end`. `lineLength` is the length of the whole line
    /// with its CRLF when the line is complete, nil while it is still arriving (then the last
    /// field may be incomplete and is checked only for what it can still become).
    private static func parseV1Fields(_ bytes: Span<UInt8>, end: Int, lineLength: Int?) -> ProxyHeaderParseResult {
        let complete = lineLength != nil
        let start = v1Prefix.count
        guard end >= start else { return .needMoreData }

        // The protocol: TCP4, TCP6 or UNKNOWN.
        var protocolEnd = start
        while protocolEnd < end && bytes[protocolEnd] != space { protocolEnd += 1 }
        let protocolTerminated = protocolEnd < end || complete
        // Two spaces after PROXY.
        if protocolEnd == start && protocolTerminated { return .invalid(.v1MalformedFields) }
        if !protocolTerminated {
            let isPrefix = [tcp4, tcp6, unknown].contains { matches(bytes, start..<protocolEnd, prefixOf: $0) }
            return isPrefix ? .needMoreData : .invalid(.v1UnknownProtocol)
        }
        if matches(bytes, start..<protocolEnd, exactly: unknown) {
            // Section 2.1: for UNKNOWN the receiver must ignore anything before the CRLF.
            guard let lineLength else { return .needMoreData }
            return .complete(ProxyHeader(version: .v1, command: .proxy, family: .unspecified,
                                         transport: .unspecified, source: nil, destination: nil,
                                         byteCount: lineLength))
        }
        let isIPv6: Bool
        if matches(bytes, start..<protocolEnd, exactly: tcp4) {
            isIPv6 = false
        } else if matches(bytes, start..<protocolEnd, exactly: tcp6) {
            isIPv6 = true
        } else {
            return .invalid(.v1UnknownProtocol)
        }
        guard protocolEnd < end else { return .invalid(.v1MalformedFields) }

        // Four fields after it: source, destination, source port, destination port.
        var sourceIP: IPAddress?
        var destinationIP: IPAddress?
        var sourcePort: UInt16?
        var destinationPort: UInt16?
        var fieldIndex = 0
        var fieldStart = protocolEnd + 1
        while true {
            var fieldEnd = fieldStart
            while fieldEnd < end && bytes[fieldEnd] != space { fieldEnd += 1 }
            let terminated = fieldEnd < end || complete
            guard fieldIndex < 4 else { return .invalid(.v1MalformedFields) }
            let range = fieldStart..<fieldEnd
            if terminated {
                guard !range.isEmpty else { return .invalid(.v1MalformedFields) }
                switch fieldIndex {
                case 0, 1:
                    guard let ip = isIPv6 ? strictIPv6(bytes, range) : strictIPv4(bytes, range) else {
                        return .invalid(.v1BadAddress)
                    }
                    if fieldIndex == 0 { sourceIP = ip } else { destinationIP = ip }
                default:
                    guard let port = strictPort(bytes, range) else { return .invalid(.v1BadPort) }
                    if fieldIndex == 2 { sourcePort = port } else { destinationPort = port }
                }
            } else {
                let possible = fieldIndex < 2
                    ? couldBeAddress(bytes, range, isIPv6: isIPv6)
                    : couldBePort(bytes, range)
                guard possible else { return .invalid(fieldIndex < 2 ? .v1BadAddress : .v1BadPort) }
                return .needMoreData
            }
            fieldIndex += 1
            if fieldEnd >= end { break }
            fieldStart = fieldEnd + 1
            // A space at the very end of a partial line: the next field has not started yet.
            if fieldStart >= end && !complete {
                return fieldIndex < 4 ? .needMoreData : .invalid(.v1MalformedFields)
            }
        }
        guard let lineLength else { return .needMoreData }
        guard fieldIndex == 4, let sourceIP, let destinationIP, let sourcePort, let destinationPort else {
            return .invalid(.v1MalformedFields)
        }
        return .complete(ProxyHeader(
            version: .v1, command: .proxy, family: isIPv6 ? .inet6 : .inet, transport: .stream,
            source: Address(ip: sourceIP, port: sourcePort),
            destination: Address(ip: destinationIP, port: destinationPort),
            byteCount: lineLength))
    }

    private static func matches(_ bytes: Span<UInt8>, _ range: Range<Int>, exactly word: [UInt8]) -> Bool {
        range.count == word.count && matches(bytes, range, prefixOf: word)
    }

    private static func matches(_ bytes: Span<UInt8>, _ range: Range<Int>, prefixOf word: [UInt8]) -> Bool {
        guard range.count <= word.count else { return false }
        for (offset, index) in range.enumerated() where bytes[index] != word[offset] { return false }
        return true
    }

    private static func isDigit(_ byte: UInt8) -> Bool { byte >= 0x30 && byte <= 0x39 }

    private static func isHexDigit(_ byte: UInt8) -> Bool {
        isDigit(byte) || (byte >= 0x41 && byte <= 0x46) || (byte >= 0x61 && byte <= 0x66)
    }

    /// A decimal number of 1 to `maximumDigits` digits with no leading zero (a lone `0` is fine).
    private static func strictDecimal(_ bytes: Span<UInt8>, _ range: Range<Int>, maximumDigits: Int) -> Int? {
        guard (1...maximumDigits).contains(range.count) else { return nil }
        if range.count > 1 && bytes[range.lowerBound] == 0x30 { return nil }
        var value = 0
        for index in range {
            guard isDigit(bytes[index]) else { return nil }
            value = value * 10 + Int(bytes[index] - 0x30)
        }
        return value
    }

    private static func strictPort(_ bytes: Span<UInt8>, _ range: Range<Int>) -> UInt16? {
        guard let value = strictDecimal(bytes, range, maximumDigits: 5), value <= 0xFFFF else { return nil }
        return UInt16(value)
    }

    /// Four decimal octets without leading zeros, as the four bytes.
    private static func strictIPv4Octets(_ bytes: Span<UInt8>, _ range: Range<Int>) -> (UInt8, UInt8, UInt8, UInt8)? {
        guard range.count <= 15 else { return nil }
        var octets: [UInt8] = []
        var partStart = range.lowerBound
        for index in range.lowerBound...range.upperBound where index == range.upperBound || bytes[index] == 0x2E {
            guard octets.count < 4,
                  let value = strictDecimal(bytes, partStart..<index, maximumDigits: 3), value <= 255 else { return nil }
            octets.append(UInt8(value))
            partStart = index + 1
        }
        guard octets.count == 4 else { return nil }
        return (octets[0], octets[1], octets[2], octets[3])
    }

    private static func strictIPv4(_ bytes: Span<UInt8>, _ range: Range<Int>) -> IPAddress? {
        guard let octets = strictIPv4Octets(bytes, range) else { return nil }
        return .v4(octets.0, octets.1, octets.2, octets.3)
    }

    private static func strictIPv6(_ bytes: Span<UInt8>, _ range: Range<Int>) -> IPAddress? {
        guard (2...45).contains(range.count) else { return nil }
        var lastColon = -1
        var hasDot = false
        for index in range {
            let byte = bytes[index]
            if byte == 0x3A { lastColon = index }
            else if byte == 0x2E { hasDot = true }
            else if !isHexDigit(byte) { return nil }
        }
        guard lastColon >= 0 else { return nil }
        // A dotted tail must be a strict IPv4 address too (no leading zeros there either).
        if hasDot && strictIPv4Octets(bytes, (lastColon + 1)..<range.upperBound) == nil { return nil }
        var text = ""
        text.reserveCapacity(range.count)
        for index in range { text.unicodeScalars.append(Unicode.Scalar(bytes[index])) }
        guard let parsed = IPAddress.parseV6(Substring(text)) else { return nil }
        return .v6(parsed)
    }

    /// Whether a field still arriving could become an address of the family.
    private static func couldBeAddress(_ bytes: Span<UInt8>, _ range: Range<Int>, isIPv6: Bool) -> Bool {
        guard range.count <= (isIPv6 ? 45 : 15) else { return false }
        for index in range {
            let byte = bytes[index]
            let allowed = isIPv6 ? (isHexDigit(byte) || byte == 0x3A || byte == 0x2E) : (isDigit(byte) || byte == 0x2E)
            if !allowed { return false }
        }
        return true
    }

    /// Whether a field still arriving could become a port.
    private static func couldBePort(_ bytes: Span<UInt8>, _ range: Range<Int>) -> Bool {
        guard range.count <= 5 else { return false }
        if range.count > 1 && bytes[range.lowerBound] == 0x30 { return false }
        for index in range where !isDigit(bytes[index]) { return false }
        return true
    }
}
