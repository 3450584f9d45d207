/// What a worker needs of the PROXY protocol for one connection, without allocating: the header
/// to send to a `send-proxy` backend, encoded from two `PeerAddress` values into inline storage,
/// and conversions between the parser's addresses and `PeerAddress`.

/// `send-proxy: v1|v2`: which header a backend receives before the client's first byte.
public enum ProxyProtocolVersion: String, CaseIterable, Hashable, Sendable, CustomStringConvertible {
    case v1, v2
    public var description: String { rawValue }
}

/// `accept-proxy: true` and its companions, as a service's listeners apply them.
public struct AcceptProxySettings: Hashable, Sendable {
    /// The longest header accepted: the size of HAProxy's default buffer, so anything HAProxy
    /// (or another proxy using its defaults) sends fits, and one connection can make the worker
    /// keep at most this much while its header arrives in pieces.
    public static let maximumHeaderLength = 16384
    public static let defaultTimeout: Duration = .seconds(3)

    /// How long a client may take to send the whole header.
    public var timeout: Duration
    /// Who may send a header; empty means anyone.
    public var trusted: [CIDR]

    public init(timeout: Duration = defaultTimeout, trusted: [CIDR] = []) {
        self.timeout = timeout
        self.trusted = trusted
    }

    /// Whether a peer at `address` may send a header.
    public func trusts(_ address: PeerAddress) -> Bool {
        guard !trusted.isEmpty else { return true }
        let (high, low) = address.mapped128
        for block in trusted where block.contains(high: high, low: low) { return true }
        return false
    }
}

/// Why a connection of an `accept-proxy` listener was closed before its header was read; the
/// `cause` label of `switchyard_proxy_header_errors_total` and the keys in `show stats`.
public enum ProxyHeaderFailure: Int, CaseIterable, Hashable, Sendable, CustomStringConvertible {
    /// The first bytes are not a PROXY header, or the client closed before a whole one arrived.
    case missing = 0
    /// It starts as a PROXY header but breaks the specification.
    case malformed
    /// Longer than `AcceptProxySettings.maximumHeaderLength` (or v1's 107 bytes).
    case oversized
    /// Not complete within `accept-proxy-timeout`.
    case timeout
    /// Sent by a peer outside `accept-proxy-from`.
    case untrusted

    public var label: String {
        switch self {
        case .missing: "missing"
        case .malformed: "malformed"
        case .oversized: "oversized"
        case .timeout: "timeout"
        case .untrusted: "untrusted"
        }
    }

    public var description: String { label }

    /// The failure a parser error counts as.
    public init(_ error: ProxyHeaderError) {
        switch error {
        case .notProxyProtocol: self = .missing
        case .v1LineTooLong, .tooLong: self = .oversized
        default: self = .malformed
        }
    }
}

/// A header ready to send, held inline (no heap storage): `bytes[0..<count]`.
public struct EncodedProxyHeader: Sendable {
    /// Room for the longest v1 line (107 bytes); a v2 header of two IPv6 addresses takes 52.
    public static let capacity = 108
    public var bytes = InlineArray<108, UInt8>(repeating: 0)
    public private(set) var count = 0

    public init() {}

    mutating func append(_ byte: UInt8) {
        bytes[count] = byte
        count += 1
    }

    mutating func append(ascii text: StaticString) {
        text.withUTF8Buffer { for byte in $0 { append(byte) } }
    }

    mutating func appendDecimal(_ value: Int) {
        if value >= 10 { appendDecimal(value / 10) }
        append(UInt8(0x30 + value % 10))
    }

    mutating func appendHex(_ value: UInt16) {
        if value >= 16 { appendHex(value >> 4) }
        let digit = UInt8(value & 0xF)
        append(digit < 10 ? 0x30 + digit : 0x61 + digit - 10)
    }

    /// The header's bytes, as an array (tests and logs; the worker sends `bytes` directly).
    public var array: [UInt8] {
        var result: [UInt8] = []
        for index in 0..<count { result.append(bytes[index]) }
        return result
    }
}

extension ProxyHeader {
    /// The header `version` for a relayed TCP connection from `source` to `destination`, the
    /// same bytes as `encodeV1(source:destination:)` and `encodeV2(source:destination:)` give for
    /// those addresses (mixed families are sent as IPv6 with the IPv4 one mapped), built without
    /// allocating.
    public static func encode(_ version: ProxyProtocolVersion, source: PeerAddress, destination: PeerAddress) -> EncodedProxyHeader {
        let isIPv6 = source.isIPv6 || destination.isIPv6
        let source = isIPv6 ? source.asIPv6 : source
        let destination = isIPv6 ? destination.asIPv6 : destination
        var header = EncodedProxyHeader()
        switch version {
        case .v1:
            header.append(ascii: isIPv6 ? "PROXY TCP6 " : "PROXY TCP4 ")
            appendText(source, to: &header)
            header.append(0x20)
            appendText(destination, to: &header)
            header.append(0x20)
            header.appendDecimal(Int(source.port))
            header.append(0x20)
            header.appendDecimal(Int(destination.port))
            header.append(0x0D)
            header.append(0x0A)
        case .v2:
            for index in v2SignatureInline.indices { header.append(v2SignatureInline[index]) }
            header.append(0x21)
            header.append(isIPv6 ? 0x21 : 0x11)
            header.append(0)
            header.append(isIPv6 ? 36 : 12)
            let length = isIPv6 ? 16 : 4
            for index in 0..<length { header.append(source.bytes[index]) }
            for index in 0..<length { header.append(destination.bytes[index]) }
            header.append(UInt8(source.port >> 8))
            header.append(UInt8(source.port & 0xFF))
            header.append(UInt8(destination.port >> 8))
            header.append(UInt8(destination.port & 0xFF))
        }
        return header
    }

    private static let v2SignatureInline: InlineArray<12, UInt8> = [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A]

    /// The address as `IPAddress.description` writes it: dotted IPv4, or RFC 5952 IPv6 (the
    /// longest run of two or more zero groups compressed, the first of equal runs).
    private static func appendText(_ address: PeerAddress, to header: inout EncodedProxyHeader) {
        guard address.isIPv6 else {
            for index in 0..<4 {
                if index > 0 { header.append(0x2E) }
                header.appendDecimal(Int(address.bytes[index]))
            }
            return
        }
        var groups = InlineArray<8, UInt16>(repeating: 0)
        for index in 0..<8 {
            groups[index] = UInt16(address.bytes[2 * index]) << 8 | UInt16(address.bytes[2 * index + 1])
        }
        let (bestStart, bestLength) = IPAddress.compressedRun(groups)
        var index = 0
        var wroteGroup = false
        while index < 8 {
            if index == bestStart {
                header.append(0x3A)
                header.append(0x3A)
                index += bestLength
                wroteGroup = false
                continue
            }
            if wroteGroup { header.append(0x3A) }
            header.appendHex(groups[index])
            wroteGroup = true
            index += 1
        }
    }
}

extension PeerAddress {
    /// The address a header carries, as a peer (an IPv6 value of another length reads as zeros).
    public init(_ address: ProxyHeader.Address) {
        switch address.ip {
        case let .v4(a, b, c, d):
            self.init(ipv4: a, b, c, d, port: address.port)
        case let .v6(array):
            var bytes = InlineArray<16, UInt8>(repeating: 0)
            for index in 0..<min(16, array.count) { bytes[index] = array[index] }
            self.init(ipv6: bytes, port: address.port)
        }
    }

    /// This address as IPv6: itself when it is one, its IPv4-mapped form (`::ffff:a.b.c.d`) otherwise.
    public var asIPv6: PeerAddress {
        guard !isIPv6 else { return self }
        var mapped = InlineArray<16, UInt8>(repeating: 0)
        mapped[10] = 0xFF
        mapped[11] = 0xFF
        for index in 0..<4 { mapped[12 + index] = bytes[index] }
        return PeerAddress(ipv6: mapped, port: port)
    }

    /// The address in the 128-bit space `CIDR` matches in (IPv4 as `::ffff:a.b.c.d`).
    public var mapped128: (high: UInt64, low: UInt64) {
        let full = asIPv6
        var high: UInt64 = 0
        var low: UInt64 = 0
        for index in 0..<8 {
            high = high << 8 | UInt64(full.bytes[index])
            low = low << 8 | UInt64(full.bytes[8 + index])
        }
        return (high, low)
    }

    /// `StableHash` of the address (not the port), as ip-hash keys a client: equal to
    /// `StableHash.hash` of its 4 or 16 bytes, and so to the key a socket with this peer gives.
    public var stableHashKey: UInt64 {
        var low: UInt64 = 0
        var high: UInt64 = 0
        let count = isIPv6 ? 16 : 4
        for index in 0..<count {
            let byte = UInt64(bytes[index])
            if index < 8 { low |= byte << (8 * UInt64(index)) } else { high |= byte << (8 * UInt64(index - 8)) }
        }
        return StableHash.hash(low: low, high: high, byteCount: count)
    }
}
