/// Reading a TLS ClientHello for `route-by-sni`, without decrypting or consuming anything: the
/// bytes are kept so that they can be sent on to the chosen backend unchanged.
///
/// What is read (RFC 8446 sections 4.1.2 and 5.1, RFC 6066 section 3, RFC 7301 section 3.1):
///
///     record      type 22 (handshake) | version 3.x | length 1...16384 | fragment
///     handshake   type 1 (ClientHello) | length (3 bytes) | body, possibly spread over records
///     body        version 3.x | random (32) | session_id <0..32> | cipher_suites <2..2^16-2>, even |
///                 compression_methods <1..255> | [extensions <0..2^16-1>, exactly to the end]
///     extension   type (2) | length (2) | data; no type twice
///     server_name (type 0)   list <1..2^16-1> of: name_type (1) | name <..2^16-1>;
///                            at most one host_name (type 0), a valid host name (`HostName`)
///     ALPN (type 16)         list <2..2^16-1> of: protocol name <1..255>
///
/// Every length is checked against the one that encloses it, so a malformed hello is refused
/// with the field that was wrong and nothing is read out of bounds. Reading stops at the end of
/// the ClientHello: what follows (more records, early data) is not looked at.
///
/// What the answers mean:
/// - `notTLS`: the first byte is not a TLS handshake record (22): a plain-text protocol, say.
/// - `malformed(.sslv2Hello)`: an SSLv2-compatible ClientHello (first byte with the high bit
///   set, third byte 1). It is a TLS client, but of a kind (SSL 2.0 framing, RFC 6101 appendix
///   E) that cannot carry extensions, hence no server name; counted with the malformed hellos.
/// - `malformed(_)`: a TLS record that does not hold a well-formed ClientHello, or one that is
///   not complete within the limit (16 KiB by default, record headers included).
/// - `hello(sni:alpn:)`: the server name, lowercased (nil when the client sent none), and the
///   ALPN protocol names in the client's order (empty when it sent none), each decoded as UTF-8
///   (a name that is not UTF-8 gets replacement characters; no registered one is).
public enum ClientHelloResult: Hashable, Sendable {
    /// What has arrived is the start of a ClientHello; read more (within `sni-timeout`).
    case needMoreData
    case hello(sni: String?, alpn: [String])
    case notTLS
    case malformed(ClientHelloError)
}

/// Why a TLS record does not hold a well-formed ClientHello; `description` is one line for logs.
public enum ClientHelloError: Error, Hashable, Sendable, CustomStringConvertible {
    /// A field of the ClientHello, for the errors that name one.
    public enum Field: String, Hashable, Sendable {
        case clientHello = "ClientHello"
        case random
        case sessionID = "session_id"
        case cipherSuites = "cipher_suites"
        case compressionMethods = "compression_methods"
        case extensions
        case `extension` = "an extension"
        case serverNameList = "server_name list"
        case hostName = "host_name"
        case alpnList = "ALPN protocol list"
        case alpnProtocol = "ALPN protocol name"
    }

    case sslv2Hello
    case unsupportedRecordVersion(major: UInt8, minor: UInt8)
    case emptyRecord
    case recordTooLong(length: Int)
    /// A record other than handshake (22) before the ClientHello was complete.
    case unexpectedRecordType(UInt8)
    case notClientHello(handshakeType: UInt8)
    case unsupportedHelloVersion(major: UInt8, minor: UInt8)
    /// Not complete within the limit, or announcing more than fits in it.
    case tooLarge(limit: Int)
    /// The field's length runs past the end of what encloses it.
    case truncated(Field)
    /// The field's length is one the protocol does not allow (zero, odd, too long).
    case invalidLength(Field)
    /// Bytes left over inside a length after its last element.
    case trailingBytes(Field)
    case duplicateExtension(type: UInt16)
    /// `host_name` is not a valid host name (see `HostName`).
    case invalidServerName
    /// Two `host_name` entries in one server_name list (RFC 6066 forbids it).
    case duplicateServerName

    public var description: String {
        switch self {
        case .sslv2Hello:
            return "SSLv2-compatible ClientHello, which cannot carry a server name"
        case let .unsupportedRecordVersion(major, minor):
            return "TLS record version \(major).\(minor) is not 3.0 to 3.4"
        case .emptyRecord:
            return "empty TLS handshake record"
        case let .recordTooLong(length):
            return "TLS record of \(length) bytes is longer than 16384"
        case let .unexpectedRecordType(type):
            return "TLS record of type \(type) before the ClientHello was complete"
        case let .notClientHello(type):
            return "TLS handshake message of type \(type) is not a ClientHello (1)"
        case let .unsupportedHelloVersion(major, minor):
            return "ClientHello version \(major).\(minor) is not 3.x"
        case let .tooLarge(limit):
            return "ClientHello not complete within \(limit) bytes"
        case let .truncated(field):
            return "ClientHello \(field.rawValue) runs past the end of its enclosing length"
        case let .invalidLength(field):
            return "ClientHello \(field.rawValue) has a length the protocol does not allow"
        case let .trailingBytes(field):
            return "ClientHello \(field.rawValue) has bytes left over after its last element"
        case let .duplicateExtension(type):
            return "ClientHello has extension \(type) twice"
        case .invalidServerName:
            return "ClientHello server_name is not a valid host name"
        case .duplicateServerName:
            return "ClientHello server_name list has two host names"
        }
    }
}

/// Keeps what a connection has received and reads a ClientHello from it as it arrives.
///
/// One per connection on a `route-by-sni` listener: `feed` each received chunk until the result
/// is not `needMoreData`, then send `received` to the chosen backend before relaying the rest.
/// Work is proportional to the bytes fed (each byte is looked at a bounded number of times), so
/// a client dribbling its hello a byte at a time costs no more than one sending it at once. Only
/// the first `limit` bytes are read; `received` keeps everything fed, for forwarding. After a
/// final result `feed` ignores its argument and returns that result again.
///
/// Thread ownership: a value owned by the one worker that owns the connection.
public struct ClientHelloReader: Sendable {
    /// The most a ClientHello may take, record headers included (`route-by-sni` reads 16 KiB).
    public static let defaultLimit = 16 * 1024

    public let limit: Int
    /// Every byte fed while the result was `needMoreData`, including the chunk that ended it.
    public private(set) var received: [UInt8] = []
    public private(set) var result: ClientHelloResult = .needMoreData

    /// The offset in `received` of the next byte to read: a record header when it equals
    /// `fragmentEnd`, else the next byte of the current record's fragment.
    private var cursor = 0
    private var fragmentEnd = 0
    /// The handshake message reassembled from the fragments read so far.
    private var handshake: [UInt8] = []

    public init(limit: Int = ClientHelloReader.defaultLimit) {
        self.limit = max(limit, 0)
    }

    /// Appends `chunk` and reads on from where the previous call stopped.
    @discardableResult
    public mutating func feed(_ chunk: some Sequence<UInt8>) -> ClientHelloResult {
        guard case .needMoreData = result else { return result }
        received.append(contentsOf: chunk)
        result = advance()
        return result
    }

    private mutating func advance() -> ClientHelloResult {
        let available = min(received.count, limit)
        let waiting: ClientHelloResult = available >= limit ? .malformed(.tooLarge(limit: limit)) : .needMoreData
        guard available > 0 else { return waiting }
        if cursor == 0 {
            let first = received[0]
            if first & 0x80 != 0 {
                // SSL 2.0 framing: 2-byte length with the high bit set, then message type 1.
                guard available >= 3 else { return waiting }
                return received[2] == 1 ? .malformed(.sslv2Hello) : .notTLS
            }
            guard first == 22 else { return .notTLS }
        }
        while true {
            if cursor == fragmentEnd {
                guard available - cursor >= 5 else { return waiting }
                let type = received[cursor]
                let major = received[cursor + 1]
                let minor = received[cursor + 2]
                let length = Int(received[cursor + 3]) << 8 | Int(received[cursor + 4])
                guard type == 22 else { return .malformed(.unexpectedRecordType(type)) }
                guard major == 3, minor <= 4 else { return .malformed(.unsupportedRecordVersion(major: major, minor: minor)) }
                guard length > 0 else { return .malformed(.emptyRecord) }
                guard length <= 16384 else { return .malformed(.recordTooLong(length: length)) }
                cursor += 5
                fragmentEnd = cursor + length
            }
            let end = min(fragmentEnd, available)
            if end > cursor {
                handshake.append(contentsOf: received[cursor..<end])
                cursor = end
            }
            if let first = handshake.first, first != 1 {
                return .malformed(.notClientHello(handshakeType: first))
            }
            if handshake.count >= 4 {
                let length = Int(handshake[1]) << 16 | Int(handshake[2]) << 8 | Int(handshake[3])
                let missing = 4 + length - handshake.count
                if missing <= 0 {
                    return ClientHello.parseBody(handshake, end: 4 + length)
                }
                // The fewest bytes the whole hello can take: what is read, what is missing, and
                // one more record header if the current record ends before the message does.
                let leftInRecord = fragmentEnd - cursor
                let fewest = cursor + missing + (missing > leftInRecord ? 5 : 0)
                if fewest > limit { return .malformed(.tooLarge(limit: limit)) }
            }
            if cursor < fragmentEnd || cursor >= available { return waiting }
        }
    }
}

/// One-shot reading of a ClientHello, and the fuzzing entry point.
public enum ClientHello {
    /// What `ClientHelloReader` makes of `bytes` fed at once.
    public static func parse(_ bytes: [UInt8], limit: Int = ClientHelloReader.defaultLimit) -> ClientHelloResult {
        var reader = ClientHelloReader(limit: limit)
        return reader.feed(bytes)
    }

    /// Reads the body of the ClientHello message `message[0..<end]` (its 4-byte header included).
    static func parseBody(_ message: [UInt8], end: Int) -> ClientHelloResult {
        var body = ByteReader(message, from: 4, to: end)
        guard let major = body.u8(), let minor = body.u8() else { return .malformed(.truncated(.clientHello)) }
        guard major == 3 else { return .malformed(.unsupportedHelloVersion(major: major, minor: minor)) }
        guard body.skip(32) else { return .malformed(.truncated(.random)) }

        guard let sessionIDLength = body.u8() else { return .malformed(.truncated(.sessionID)) }
        guard sessionIDLength <= 32 else { return .malformed(.invalidLength(.sessionID)) }
        guard body.skip(Int(sessionIDLength)) else { return .malformed(.truncated(.sessionID)) }

        guard let cipherSuitesLength = body.u16() else { return .malformed(.truncated(.cipherSuites)) }
        guard cipherSuitesLength >= 2, cipherSuitesLength % 2 == 0 else { return .malformed(.invalidLength(.cipherSuites)) }
        guard body.skip(Int(cipherSuitesLength)) else { return .malformed(.truncated(.cipherSuites)) }

        guard let compressionLength = body.u8() else { return .malformed(.truncated(.compressionMethods)) }
        guard compressionLength >= 1 else { return .malformed(.invalidLength(.compressionMethods)) }
        guard body.skip(Int(compressionLength)) else { return .malformed(.truncated(.compressionMethods)) }

        // Extensions are optional (a hello without them ends here) but fill the rest when present.
        if body.isAtEnd { return .hello(sni: nil, alpn: []) }
        guard let extensionsLength = body.u16() else { return .malformed(.truncated(.extensions)) }
        guard Int(extensionsLength) <= body.remaining else { return .malformed(.truncated(.extensions)) }
        guard Int(extensionsLength) == body.remaining else { return .malformed(.trailingBytes(.clientHello)) }

        var serverName: String?
        var alpn: [String] = []
        var seen = Set<UInt16>()
        while !body.isAtEnd {
            guard let type = body.u16(), let length = body.u16(),
                  var data = body.reader(count: Int(length)) else { return .malformed(.truncated(.extension)) }
            guard seen.insert(type).inserted else { return .malformed(.duplicateExtension(type: type)) }
            switch type {
            case 0:
                switch readServerName(&data) {
                case let .success(name): serverName = name
                case let .failure(error): return .malformed(error)
                }
            case 16:
                switch readALPN(&data) {
                case let .success(protocols): alpn = protocols
                case let .failure(error): return .malformed(error)
                }
            default:
                break
            }
        }
        return .hello(sni: serverName, alpn: alpn)
    }

    private static func readServerName(_ data: inout ByteReader) -> Result<String?, ClientHelloError> {
        guard let listLength = data.u16() else { return .failure(.truncated(.serverNameList)) }
        guard Int(listLength) <= data.remaining else { return .failure(.truncated(.serverNameList)) }
        guard Int(listLength) == data.remaining else { return .failure(.trailingBytes(.serverNameList)) }
        guard listLength > 0 else { return .failure(.invalidLength(.serverNameList)) }
        var hostName: String?
        while !data.isAtEnd {
            guard let nameType = data.u8(), let nameLength = data.u16() else {
                return .failure(.truncated(.serverNameList))
            }
            guard let name = data.reader(count: Int(nameLength)) else { return .failure(.truncated(.hostName)) }
            // Other name types are skipped: none is defined, and their length is read the same way.
            guard nameType == 0 else { continue }
            guard hostName == nil else { return .failure(.duplicateServerName) }
            guard let normalized = HostName.normalized(name.remainingBytes) else { return .failure(.invalidServerName) }
            hostName = normalized
        }
        return .success(hostName)
    }

    private static func readALPN(_ data: inout ByteReader) -> Result<[String], ClientHelloError> {
        guard let listLength = data.u16() else { return .failure(.truncated(.alpnList)) }
        guard Int(listLength) <= data.remaining else { return .failure(.truncated(.alpnList)) }
        guard Int(listLength) == data.remaining else { return .failure(.trailingBytes(.alpnList)) }
        guard listLength >= 2 else { return .failure(.invalidLength(.alpnList)) }
        var protocols: [String] = []
        while !data.isAtEnd {
            guard let length = data.u8() else { return .failure(.truncated(.alpnList)) }
            guard length > 0 else { return .failure(.invalidLength(.alpnProtocol)) }
            guard let name = data.reader(count: Int(length)) else { return .failure(.truncated(.alpnProtocol)) }
            protocols.append(String(decoding: name.remainingBytes, as: UTF8.self))
        }
        return .success(protocols)
    }
}

/// Bounds-checked big-endian reads from `bytes[offset..<end]`: every read returns nil rather
/// than go past `end`, and moves nothing when it fails.
struct ByteReader {
    private let bytes: [UInt8]
    private(set) var offset: Int
    let end: Int

    /// A reader of `bytes[from..<to]`, with both bounds clamped into the array.
    init(_ bytes: [UInt8], from: Int, to: Int) {
        self.bytes = bytes
        let end = min(max(to, 0), bytes.count)
        self.end = end
        self.offset = min(max(from, 0), end)
    }

    var remaining: Int { end - offset }
    var isAtEnd: Bool { offset >= end }
    var remainingBytes: ArraySlice<UInt8> { bytes[offset..<end] }

    mutating func u8() -> UInt8? {
        guard remaining >= 1 else { return nil }
        defer { offset += 1 }
        return bytes[offset]
    }

    mutating func u16() -> UInt16? {
        guard remaining >= 2 else { return nil }
        defer { offset += 2 }
        return UInt16(bytes[offset]) << 8 | UInt16(bytes[offset + 1])
    }

    mutating func skip(_ count: Int) -> Bool {
        guard count >= 0, remaining >= count else { return false }
        offset += count
        return true
    }

    /// A reader of the next `count` bytes, which this one moves past; nil if fewer remain.
    mutating func reader(count: Int) -> ByteReader? {
        guard count >= 0, remaining >= count else { return nil }
        defer { offset += count }
        return ByteReader(bytes, from: offset, to: offset + count)
    }
}
