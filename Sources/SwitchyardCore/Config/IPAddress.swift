/// An IPv4 or IPv6 address, parsed from text without the C library so that it can be tested anywhere.
public enum IPAddress: Hashable, Sendable, CustomStringConvertible {
    /// Four bytes in network order.
    case v4(UInt8, UInt8, UInt8, UInt8)
    /// Sixteen bytes in network order.
    case v6([UInt8])

    /// Parses dotted-quad IPv4 (`127.0.0.1`) or RFC 4291 IPv6 text (`::1`, `fe80::1:2`,
    /// `::ffff:10.0.0.1`). Returns nil for anything else, including hostnames.
    public init?(_ text: some StringProtocol) {
        if let v4 = IPAddress.parseV4(Substring(text)) {
            self = .v4(v4.0, v4.1, v4.2, v4.3)
        } else if let v6 = IPAddress.parseV6(Substring(text)) {
            self = .v6(v6)
        } else {
            return nil
        }
    }

    /// The address bytes in network order (4 or 16 of them).
    public var bytes: [UInt8] {
        switch self {
        case let .v4(a, b, c, d): return [a, b, c, d]
        case let .v6(bytes): return bytes
        }
    }

    public var isIPv6: Bool {
        if case .v6 = self { return true }
        return false
    }

    public var description: String {
        switch self {
        case let .v4(a, b, c, d):
            return "\(a).\(b).\(c).\(d)"
        case let .v6(bytes):
            var groups = InlineArray<8, UInt16>(repeating: 0)
            for i in 0..<8 { groups[i] = UInt16(bytes[2 * i]) << 8 | UInt16(bytes[2 * i + 1]) }
            let (bestStart, bestLength) = IPAddress.compressedRun(groups)
            var text = ""
            var i = 0
            while i < 8 {
                if i == bestStart {
                    text += "::"
                    i += bestLength
                    continue
                }
                if !text.isEmpty && !text.hasSuffix(":") { text += ":" }
                text += String(groups[i], radix: 16)
                i += 1
            }
            return text
        }
    }

    /// RFC 5952: the longest run of zero groups (the first of equal ones) that `::` replaces,
    /// as (start, length); start is -1 when no run of at least two groups exists.
    static func compressedRun(_ groups: InlineArray<8, UInt16>) -> (start: Int, length: Int) {
        var bestStart = -1, bestLength = 0, runStart = -1
        for i in 0...8 {
            if i < 8 && groups[i] == 0 {
                if runStart < 0 { runStart = i }
            } else if runStart >= 0 {
                if i - runStart > bestLength { bestStart = runStart; bestLength = i - runStart }
                runStart = -1
            }
        }
        return bestLength < 2 ? (-1, 0) : (bestStart, bestLength)
    }

    static func parseV4(_ text: Substring) -> (UInt8, UInt8, UInt8, UInt8)? {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var octets: [UInt8] = []
        for part in parts {
            guard !part.isEmpty, part.count <= 3, part.allSatisfy({ $0.isASCII && $0.isNumber }),
                  let value = UInt8(part) else { return nil }
            octets.append(value)
        }
        return (octets[0], octets[1], octets[2], octets[3])
    }

    static func parseV6(_ text: Substring) -> [UInt8]? {
        guard text.contains(":"), text.count <= 45 else { return nil }
        var halves: [String] = []
        if let range = text.firstRange(of: "::") {
            halves = [String(text[..<range.lowerBound]), String(text[range.upperBound...])]
            if halves[1].contains("::") { return nil }
        } else {
            halves = [String(text)]
        }

        func groups(_ part: String, allowV4Tail: Bool) -> [UInt16]? {
            if part.isEmpty { return [] }
            var result: [UInt16] = []
            let pieces = part.split(separator: ":", omittingEmptySubsequences: false)
            for (index, piece) in pieces.enumerated() {
                if allowV4Tail && index == pieces.count - 1 && piece.contains(".") {
                    guard let v4 = parseV4(piece) else { return nil }
                    result.append(UInt16(v4.0) << 8 | UInt16(v4.1))
                    result.append(UInt16(v4.2) << 8 | UInt16(v4.3))
                    continue
                }
                guard (1...4).contains(piece.count), piece.allSatisfy({ $0.isHexDigit }),
                      let value = UInt16(piece, radix: 16) else { return nil }
                result.append(value)
            }
            return result
        }

        var all: [UInt16]
        if halves.count == 2 {
            guard let head = groups(halves[0], allowV4Tail: false),
                  let tail = groups(halves[1], allowV4Tail: true),
                  head.count + tail.count <= 7 else { return nil }
            all = head + Array(repeating: 0, count: 8 - head.count - tail.count) + tail
        } else {
            guard let only = groups(halves[0], allowV4Tail: true), only.count == 8 else { return nil }
            all = only
        }
        var bytes: [UInt8] = []
        for group in all {
            bytes.append(UInt8(group >> 8))
            bytes.append(UInt8(group & 0xff))
        }
        return bytes
    }
}
