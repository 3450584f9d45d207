/// A PROXY protocol header (versions 1 and 2), as HAProxy's `doc/proxy-protocol.txt` (revision
/// 2020/03/05) defines it: the block another proxy puts before a connection's first byte to say
/// whom the connection is really from and to.
///
/// Parsing is strict: anything that does not match the specification exactly is `invalid`, as
/// section 2.1 asks ("Any sequence which does not exactly match the protocol must be discarded").
/// It works on the bytes received so far (`ProxyHeader.parse(_:)`, or `ProxyHeaderReader` which
/// keeps them), answers as soon as the answer is known, and never traps or reads out of bounds,
/// whatever the input. Encoding makes the headers Switchyard sends to backends (`send-proxy`).
///
/// Thread safety: values and pure functions, usable from any thread.
public struct ProxyHeader: Hashable, Sendable {
    public enum Version: Int, Hashable, Sendable {
        /// The human-readable line, `PROXY TCP4 ...\r\n`.
        case v1 = 1
        /// The binary block starting with the 12-byte signature.
        case v2 = 2
    }

    public enum Command: Hashable, Sendable {
        /// v2 `LOCAL`: the proxy opened the connection itself (a health check); the connection's
        /// own endpoints are the real ones and the header carries no addresses.
        case local
        /// v2 `PROXY`, and every v1 line: the connection was relayed for a client.
        case proxy
    }

    /// The v2 address family (v1 `TCP4` is `inet`, `TCP6` is `inet6`, `UNKNOWN` is `unspecified`).
    public enum Family: Hashable, Sendable {
        case unspecified, inet, inet6, unix
    }

    /// The v2 transport protocol (v1 `TCP4`/`TCP6` are `stream`, `UNKNOWN` is `unspecified`).
    public enum Transport: Hashable, Sendable {
        case unspecified, stream, datagram
    }

    /// An IP address and port carried by the header.
    public struct Address: Hashable, Sendable, CustomStringConvertible {
        public var ip: IPAddress
        public var port: UInt16

        public init(ip: IPAddress, port: UInt16) {
            self.ip = ip
            self.port = port
        }

        public var description: String {
            ip.isIPv6 ? "[\(ip)]:\(port)" : "\(ip):\(port)"
        }
    }

    /// One v2 type-length-value extension (section 2.2), kept as received.
    public struct TLV: Hashable, Sendable {
        public var type: UInt8
        public var value: [UInt8]

        public init(type: UInt8, value: [UInt8]) {
            self.type = type
            self.value = value
        }

        public static let alpn: UInt8 = 0x01
        public static let authority: UInt8 = 0x02
        public static let crc32c: UInt8 = 0x03
        public static let noop: UInt8 = 0x04
        public static let uniqueID: UInt8 = 0x05
        public static let ssl: UInt8 = 0x20
        public static let netns: UInt8 = 0x30
    }

    public var version: Version
    public var command: Command
    public var family: Family
    public var transport: Transport
    /// The client's address and port. Set only for a relayed TCP or UDP connection over IPv4 or
    /// IPv6 (v1 `TCP4`/`TCP6`, v2 `PROXY` with family `inet`/`inet6`); nil means "use the
    /// connection's own peer address" (v2 `LOCAL`, v1 `UNKNOWN`, v2 `UNSPEC` or `UNIX`).
    public var source: Address?
    /// The address and port the client connected to; set exactly when `source` is.
    public var destination: Address?
    /// The v2 TLVs in the order received (never any for v1). A `CRC32C` TLV has been verified.
    public var tlvs: [TLV]
    /// How many bytes the header occupies at the start of the connection: the payload starts there.
    public var byteCount: Int

    public init(version: Version, command: Command, family: Family, transport: Transport,
                source: Address?, destination: Address?, tlvs: [TLV] = [], byteCount: Int) {
        self.version = version
        self.command = command
        self.family = family
        self.transport = transport
        self.source = source
        self.destination = destination
        self.tlvs = tlvs
        self.byteCount = byteCount
    }

    /// The longest v1 line, CRLF included (section 2.1, "worst case").
    public static let maximumV1Length = 107
    /// The longest v2 header: 16 fixed bytes and a 16-bit length.
    public static let maximumV2Length = 16 + 0xFFFF

    /// The 12 bytes every v2 header starts with.
    static let v2Signature: [UInt8] = [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A]
    /// `PROXY `: the first 6 bytes of every v1 line.
    static let v1Prefix: [UInt8] = Array("PROXY ".utf8)

    /// Parses the header at the start of `bytes`, the bytes received on the connection so far.
    ///
    /// Returns `needMoreData` while `bytes` is a proper prefix of some valid header, `invalid` as
    /// soon as no continuation could make it valid, and `complete` once the whole header is there
    /// (bytes after `byteCount` are payload and are not looked at). `maximumLength` (at most
    /// `maximumV2Length`) lowers the size accepted for either version; a v2 header announcing
    /// more is `invalid` as soon as its 16 fixed bytes are in.
    ///
    /// Cost: O(1) for an incomplete v2 header, at most 107 bytes scanned for v1, and one pass over
    /// the TLVs once a v2 header is complete; so calling it again after every received chunk
    /// costs little even when a sender dribbles the header a byte at a time.
    public static func parse(_ bytes: [UInt8], maximumLength: Int = maximumV2Length) -> ProxyHeaderParseResult {
        parse(bytes.span, maximumLength: maximumLength)
    }

    /// `parse(_:maximumLength:)` over a span (a received buffer, a slice of one).
    public static func parse(_ bytes: Span<UInt8>, maximumLength: Int = maximumV2Length) -> ProxyHeaderParseResult {
        guard bytes.count > 0 else { return .needMoreData }
        switch bytes[0] {
        case v1Prefix[0]: return parseV1(bytes, maximumLength: min(maximumLength, maximumV1Length))
        case v2Signature[0]: return parseV2(bytes, maximumLength: min(maximumLength, maximumV2Length))
        default: return .invalid(.notProxyProtocol)
        }
    }
}

/// What `ProxyHeader.parse` makes of the bytes received so far.
public enum ProxyHeaderParseResult: Hashable, Sendable {
    /// The bytes are the start of a valid header; read more (within the header timeout).
    case needMoreData
    /// A whole valid header; the connection's payload starts `header.byteCount` bytes in.
    case complete(ProxyHeader)
    /// No continuation can make these bytes a valid header: close the connection.
    case invalid(ProxyHeaderError)
}

/// Why bytes are not a PROXY protocol header. `description` is a one-line reason for logs.
public enum ProxyHeaderError: Error, Hashable, Sendable, CustomStringConvertible {
    /// Starts with neither `PROXY ` (v1) nor the v2 signature.
    case notProxyProtocol
    /// v1: no CRLF within the first 107 bytes.
    case v1LineTooLong
    /// v1: a CR not followed by LF, or an LF not preceded by CR.
    case v1BadLineEnding
    /// v1: the protocol is not `TCP4`, `TCP6` or `UNKNOWN`.
    case v1UnknownProtocol
    /// v1: not exactly `PROXY PROTO SRC DST SPORT DPORT`, one space between fields.
    case v1MalformedFields
    /// v1: an address that is not canonical text of the protocol's family.
    case v1BadAddress
    /// v1: a port that is not a decimal 0 to 65535 without leading zeros.
    case v1BadPort
    /// v2: the version nibble (the value given) is not 2.
    case v2UnsupportedVersion(UInt8)
    /// v2: the command nibble (the value given) is neither LOCAL (0) nor PROXY (1).
    case v2UnsupportedCommand(UInt8)
    /// v2: a PROXY header's family and transport byte (the value given) is not one the
    /// specification defines.
    case v2UnsupportedFamily(UInt8)
    /// v2: the announced length is shorter than the addresses of the announced family.
    case v2AddressesTruncated(family: UInt8, length: Int)
    /// The header announces (or, for v1, would need) more bytes than allowed.
    case tooLong(length: Int, maximum: Int)
    /// v2: a TLV at this offset from the header's start does not fit in the header.
    case v2MalformedTLV(offset: Int)
    /// v2: a CRC32C TLV that is not 4 bytes or does not match the header.
    case v2ChecksumMismatch
    /// v2: a second CRC32C TLV, at this offset from the header's start (one is allowed).
    case v2SecondChecksum(offset: Int)

    public var description: String {
        switch self {
        case .notProxyProtocol:
            return "not a PROXY protocol header (starts with neither 'PROXY ' nor the v2 signature)"
        case .v1LineTooLong:
            return "PROXY v1 line has no CRLF within 107 bytes"
        case .v1BadLineEnding:
            return "PROXY v1 line has a CR or LF that is not part of a CRLF"
        case .v1UnknownProtocol:
            return "PROXY v1 protocol is not TCP4, TCP6 or UNKNOWN"
        case .v1MalformedFields:
            return "PROXY v1 line is not 'PROXY TCP4|TCP6 SRC DST SPORT DPORT' with single spaces"
        case .v1BadAddress:
            return "PROXY v1 address is not a canonical address of the announced family"
        case .v1BadPort:
            return "PROXY v1 port is not a number from 0 to 65535 without leading zeros"
        case let .v2UnsupportedVersion(version):
            return "PROXY v2 header has version \(version), not 2"
        case let .v2UnsupportedCommand(command):
            return "PROXY v2 header has command \(command), neither LOCAL (0) nor PROXY (1)"
        case let .v2UnsupportedFamily(byte):
            return "PROXY v2 header has family/transport byte 0x\(String(byte, radix: 16)), which is not defined"
        case let .v2AddressesTruncated(family, length):
            return "PROXY v2 header length \(length) is too short for the addresses of family 0x\(String(family, radix: 16))"
        case let .tooLong(length, maximum):
            return "PROXY header of \(length) bytes is longer than the \(maximum) allowed"
        case let .v2MalformedTLV(offset):
            return "PROXY v2 TLV at byte \(offset) runs past the end of the header"
        case .v2ChecksumMismatch:
            return "PROXY v2 header's CRC32C does not match its bytes"
        case let .v2SecondChecksum(offset):
            return "PROXY v2 header has a second CRC32C TLV at byte \(offset)"
        }
    }
}

/// Keeps the bytes a connection has received until they hold a whole PROXY header, then hands
/// the header and the payload that followed it in the same reads.
///
/// Use one per connection on an `accept-proxy` listener: `feed` every chunk received until the
/// result is not `needMoreData`; then `payload` holds the bytes after the header, to be relayed
/// first. After a final result `feed` ignores its argument and returns the same result.
///
/// Thread ownership: a value owned by the one worker that owns the connection.
public struct ProxyHeaderReader: Sendable {
    public let maximumLength: Int
    /// Every byte fed while the result was `needMoreData`, including the chunk that ended it.
    public private(set) var received: [UInt8] = []
    public private(set) var result: ProxyHeaderParseResult = .needMoreData

    public init(maximumLength: Int = ProxyHeader.maximumV2Length) {
        self.maximumLength = maximumLength
    }

    /// Appends `chunk` and parses what has been received so far.
    @discardableResult
    public mutating func feed(_ chunk: some Sequence<UInt8>) -> ProxyHeaderParseResult {
        guard case .needMoreData = result else { return result }
        received.append(contentsOf: chunk)
        result = ProxyHeader.parse(received, maximumLength: maximumLength)
        return result
    }

    /// The bytes received after a complete header (empty before one is complete).
    public var payload: ArraySlice<UInt8> {
        guard case let .complete(header) = result else { return [] }
        return received[header.byteCount...]
    }
}
