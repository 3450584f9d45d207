/// A resource record type (RFC 1035 §3.2.2, RFC 3596, RFC 2782).
public struct DNSRecordType: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }

    public static let a = DNSRecordType(rawValue: 1)
    public static let cname = DNSRecordType(rawValue: 5)
    public static let soa = DNSRecordType(rawValue: 6)
    public static let aaaa = DNSRecordType(rawValue: 28)
    public static let srv = DNSRecordType(rawValue: 33)
    public static let opt = DNSRecordType(rawValue: 41)

    public var description: String {
        switch self {
        case .a: "A"
        case .cname: "CNAME"
        case .soa: "SOA"
        case .aaaa: "AAAA"
        case .srv: "SRV"
        case .opt: "OPT"
        default: "TYPE\(rawValue)"
        }
    }
}

/// The 4-bit RCODE of a message header (RFC 1035 §4.1.1, RFC 2136).
public struct DNSResponseCode: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    public static let noError = DNSResponseCode(rawValue: 0)
    public static let formatError = DNSResponseCode(rawValue: 1)
    public static let serverFailure = DNSResponseCode(rawValue: 2)
    public static let nameError = DNSResponseCode(rawValue: 3)
    public static let notImplemented = DNSResponseCode(rawValue: 4)
    public static let refused = DNSResponseCode(rawValue: 5)

    public var description: String {
        switch self {
        case .noError: "NOERROR"
        case .formatError: "FORMERR"
        case .serverFailure: "SERVFAIL"
        case .nameError: "NXDOMAIN"
        case .notImplemented: "NOTIMP"
        case .refused: "REFUSED"
        default: "RCODE\(rawValue)"
        }
    }
}

/// The class every record Switchyard asks for lives in.
let dnsClassInternet: UInt16 = 1

/// One entry of the question section.
public struct DNSQuestion: Hashable, Sendable {
    public var name: DNSName
    public var type: DNSRecordType
    /// 1 (IN) for every question Switchyard sends.
    public var recordClass: UInt16

    public init(name: DNSName, type: DNSRecordType, recordClass: UInt16 = 1) {
        self.name = name
        self.type = type
        self.recordClass = recordClass
    }
}

/// The target of an SRV record (RFC 2782).
public struct DNSServiceRecord: Hashable, Sendable {
    /// Lower is preferred: only the lowest priority present is used.
    public var priority: UInt16
    /// A share within one priority.
    public var weight: UInt16
    public var port: UInt16
    /// `.` means the service is decidedly not available at this name.
    public var target: DNSName

    public init(priority: UInt16, weight: UInt16, port: UInt16, target: DNSName) {
        self.priority = priority
        self.weight = weight
        self.port = port
        self.target = target
    }
}

/// What a record holds, decoded for the types Switchyard uses and the IN class.
public enum DNSRecordData: Hashable, Sendable {
    case address(IPAddress)
    case canonicalName(DNSName)
    case service(DNSServiceRecord)
    /// Any other type or class; its data was checked to lie within the message and skipped.
    case other(type: DNSRecordType, recordClass: UInt16)
}

/// One resource record of the answer, authority or additional section.
public struct DNSRecord: Hashable, Sendable {
    public var name: DNSName
    /// Seconds; a value with its top bit set was read as 0 (RFC 2181 §8).
    public var ttl: UInt32
    public var data: DNSRecordData

    public init(name: DNSName, ttl: UInt32, data: DNSRecordData) {
        self.name = name
        self.ttl = ttl
        self.data = data
    }
}

/// Why bytes are not a DNS message, or not the answer to a query. `description` is one line.
public enum DNSMessageError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The message ends inside `part`, which needed bytes up to `needed`.
    case truncated(part: String, needed: Int, length: Int)
    /// A label length byte with the reserved top bits 01 or 10 (RFC 6891 §5 retired them).
    case badLabelType(byte: UInt8, offset: Int)
    /// A compression pointer that does not point before the name part holding it, or into the
    /// header; following only backwards pointers is what makes every name end.
    case badPointer(offset: Int, target: Int)
    /// A name longer than 255 bytes.
    case nameTooLong(offset: Int)
    /// A record whose data has the wrong size for its type.
    case badRecordLength(type: DNSRecordType, length: Int, offset: Int)
    /// A name inside record data that does not end exactly where the data ends.
    case nameOverrunsRecordData(type: DNSRecordType, offset: Int)
    /// Bytes after the last record the counts announce.
    case trailingBytes(count: Int)
    /// The QR bit is clear: a query, not a response.
    case notAResponse
    /// A response whose id is not the query's.
    case idMismatch(expected: UInt16, received: UInt16)
    /// A response whose question is not the query's (or whose opcode is not QUERY).
    case questionMismatch
    /// A CNAME chain in the answer that comes back to a name already seen or goes on too long.
    case badCanonicalNameChain(name: DNSName)

    /// Whether the bytes are not an answer to the query at all (another id or question, or no
    /// response). A client reading UDP drops such a datagram and goes on waiting: it may be a
    /// late answer to an earlier query or a forgery (RFC 5452 §9.1).
    public var isForeign: Bool {
        switch self {
        case .notAResponse, .idMismatch, .questionMismatch: true
        default: false
        }
    }

    public var description: String {
        switch self {
        case let .truncated(part, needed, length):
            "message of \(length) bytes ends inside \(part) (needs \(needed))"
        case let .badLabelType(byte, offset):
            "label length byte 0x\(String(byte, radix: 16)) at offset \(offset) has a reserved type"
        case let .badPointer(offset, target):
            "compression pointer at offset \(offset) to \(target) does not point backwards"
        case let .nameTooLong(offset):
            "name at offset \(offset) is longer than 255 bytes"
        case let .badRecordLength(type, length, offset):
            "\(type) record at offset \(offset) has \(length) bytes of data"
        case let .nameOverrunsRecordData(type, offset):
            "name in the \(type) record at offset \(offset) does not end with its data"
        case let .trailingBytes(count):
            "\(count) bytes after the last record"
        case .notAResponse:
            "not a response (QR bit clear)"
        case let .idMismatch(expected, received):
            "response id \(received) is not the query's \(expected)"
        case .questionMismatch:
            "response question is not the query's"
        case let .badCanonicalNameChain(name):
            "CNAME chain loops or is too long at \(name)"
        }
    }
}

/// A parsed DNS message (RFC 1035 §4.1).
///
/// Parsing is strict and bounded: every read is checked against the message's length, names
/// follow compression pointers only backwards (so they always end), and any violation is a
/// `DNSMessageError`; no input traps. A message with the TC bit set keeps the records that fit
/// completely and drops the rest (RFC 2181 §9: the client retries over TCP).
public struct DNSMessage: Hashable, Sendable {
    public var id: UInt16
    public var isResponse: Bool
    public var opcode: UInt8
    public var isAuthoritative: Bool
    public var isTruncated: Bool
    public var recursionDesired: Bool
    public var recursionAvailable: Bool
    public var responseCode: DNSResponseCode
    public var questions: [DNSQuestion]
    public var answers: [DNSRecord]
    public var authorities: [DNSRecord]
    public var additionals: [DNSRecord]

    /// The size of the fixed header.
    public static let headerLength = 12

    public init(parsing bytes: [UInt8]) throws(DNSMessageError) {
        var reader = DNSMessageReader(bytes)
        id = try reader.readUInt16(part: "the header")
        let flags = try reader.readUInt16(part: "the header")
        isResponse = flags & 0x8000 != 0
        opcode = UInt8(flags >> 11 & 0x0F)
        isAuthoritative = flags & 0x0400 != 0
        isTruncated = flags & 0x0200 != 0
        recursionDesired = flags & 0x0100 != 0
        recursionAvailable = flags & 0x0080 != 0
        responseCode = DNSResponseCode(rawValue: UInt8(flags & 0x000F))
        let questionCount = try reader.readUInt16(part: "the header")
        let answerCount = try reader.readUInt16(part: "the header")
        let authorityCount = try reader.readUInt16(part: "the header")
        let additionalCount = try reader.readUInt16(part: "the header")

        questions = []
        answers = []
        authorities = []
        additionals = []
        // Each question takes at least 5 bytes and each record 11, so the counts, which could
        // claim 65535 entries in a 12-byte message, never drive more loop turns than there are bytes.
        for _ in 0..<questionCount {
            let name = try reader.readName(part: "a question")
            let type = try reader.readUInt16(part: "a question")
            let recordClass = try reader.readUInt16(part: "a question")
            questions.append(DNSQuestion(name: name, type: DNSRecordType(rawValue: type), recordClass: recordClass))
        }
        let sections: [(UInt16, WritableKeyPath<DNSMessage, [DNSRecord]>, String)] = [
            (answerCount, \.answers, "an answer record"),
            (authorityCount, \.authorities, "an authority record"),
            (additionalCount, \.additionals, "an additional record"),
        ]
        for (count, section, part) in sections {
            for _ in 0..<count {
                if isTruncated {
                    // Keep what arrived whole; whatever follows may be cut anywhere.
                    var attempt = reader
                    guard let record = try? attempt.readRecord(part: part) else { return }
                    reader = attempt
                    self[keyPath: section].append(record)
                } else {
                    self[keyPath: section].append(try reader.readRecord(part: part))
                }
            }
        }
        if !isTruncated && reader.offset != bytes.count {
            throw .trailingBytes(count: bytes.count - reader.offset)
        }
    }

    /// Entry point for a fuzzer (libFuzzer's `LLVMFuzzerTestOneInput` calls it with each input).
    /// Parses `bytes` as a message and, when that succeeds, as the response to a query of the
    /// message's own id and first question, so that the answer checks and the CNAME chase run
    /// too. Must never trap, loop or grow without bound, whatever the bytes.
    public static func fuzz(_ bytes: [UInt8]) {
        guard let message = try? DNSMessage(parsing: bytes), let question = message.questions.first else { return }
        let query = DNSQuery(id: message.id, name: question.name, type: question.type)
        guard let reply = try? DNSReply(answering: query, bytes: bytes) else { return }
        for service in reply.services { _ = reply.additionalAddresses(of: service.target) }
        _ = query.bytes
    }
}

/// A query for one name and type, class IN, recursion desired, as a stub resolver sends it.
public struct DNSQuery: Hashable, Sendable {
    /// Chosen at random by the caller for each query (RFC 5452 §4.3): together with a fresh
    /// source port it is what makes a forged answer hard to guess.
    public var id: UInt16
    public var name: DNSName
    public var type: DNSRecordType

    public init(id: UInt16, name: DNSName, type: DNSRecordType) {
        self.id = id
        self.name = name
        self.type = type
    }

    /// The message as sent over UDP: header (RD set, one question), then the question.
    public var bytes: [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(DNSMessage.headerLength + name.wireLength + 4)
        bytes.appendUInt16(id)
        bytes.appendUInt16(0x0100)  // QR 0, opcode QUERY, RD 1.
        bytes.appendUInt16(1)
        bytes.appendUInt16(0)
        bytes.appendUInt16(0)
        bytes.appendUInt16(0)
        name.encode(into: &bytes)
        bytes.appendUInt16(type.rawValue)
        bytes.appendUInt16(dnsClassInternet)
        return bytes
    }

    /// The message as sent over TCP: prefixed by its length in two bytes (RFC 1035 §4.2.2).
    public var tcpBytes: [UInt8] {
        let message = bytes
        var framed: [UInt8] = []
        framed.reserveCapacity(message.count + 2)
        framed.appendUInt16(UInt16(message.count))
        return framed + message
    }
}

extension [UInt8] {
    fileprivate mutating func appendUInt16(_ value: UInt16) {
        append(UInt8(value >> 8))
        append(UInt8(value & 0xFF))
    }
}

/// Bounds-checked reads from a message; each failure says what it was reading.
struct DNSMessageReader {
    let bytes: [UInt8]
    private(set) var offset = 0

    init(_ bytes: [UInt8]) {
        self.bytes = bytes
    }

    private func require(_ count: Int, part: String) throws(DNSMessageError) {
        guard count <= bytes.count - offset else {
            throw .truncated(part: part, needed: offset + count, length: bytes.count)
        }
    }

    mutating func readUInt16(part: String) throws(DNSMessageError) -> UInt16 {
        try require(2, part: part)
        defer { offset += 2 }
        return UInt16(bytes[offset]) << 8 | UInt16(bytes[offset + 1])
    }

    mutating func readUInt32(part: String) throws(DNSMessageError) -> UInt32 {
        try require(4, part: part)
        defer { offset += 4 }
        return UInt32(bytes[offset]) << 24 | UInt32(bytes[offset + 1]) << 16
            | UInt32(bytes[offset + 2]) << 8 | UInt32(bytes[offset + 3])
    }

    /// Reads a possibly compressed name at the current offset and moves past it (past its first
    /// pointer, if any).
    ///
    /// Every pointer must target an offset after the header and strictly before the start of
    /// the run of labels it ends. Jump targets therefore decrease, so decoding ends within as
    /// many jumps as the message has bytes; an encoder only ever points at names it wrote
    /// earlier, so no real message is refused.
    mutating func readName(part: String) throws(DNSMessageError) -> DNSName {
        var labels: [[UInt8]] = []
        var wireLength = 1
        var position = offset
        var runStart = offset
        var resumeAt: Int?
        while true {
            guard position < bytes.count else {
                throw .truncated(part: part, needed: position + 1, length: bytes.count)
            }
            let length = bytes[position]
            switch length & 0xC0 {
            case 0x00:
                if length == 0 {
                    offset = resumeAt ?? position + 1
                    return DNSName(validLabels: labels)
                }
                let end = position + 1 + Int(length)
                guard end <= bytes.count else {
                    throw .truncated(part: part, needed: end, length: bytes.count)
                }
                wireLength += 1 + Int(length)
                guard wireLength <= DNSName.maximumWireLength else { throw .nameTooLong(offset: offset) }
                labels.append(Array(bytes[(position + 1)..<end]))
                position = end
            case 0xC0:
                guard position + 1 < bytes.count else {
                    throw .truncated(part: part, needed: position + 2, length: bytes.count)
                }
                let target = Int(length & 0x3F) << 8 | Int(bytes[position + 1])
                guard target >= DNSMessage.headerLength, target < runStart else {
                    throw .badPointer(offset: position, target: target)
                }
                if resumeAt == nil { resumeAt = position + 2 }
                position = target
                runStart = target
            default:
                throw .badLabelType(byte: length, offset: position)
            }
        }
    }

    /// Reads one resource record, decoding A, AAAA, CNAME and SRV data of class IN.
    mutating func readRecord(part: String) throws(DNSMessageError) -> DNSRecord {
        let start = offset
        let name = try readName(part: part)
        let type = DNSRecordType(rawValue: try readUInt16(part: part))
        let recordClass = try readUInt16(part: part)
        let rawTTL = try readUInt32(part: part)
        let length = Int(try readUInt16(part: part))
        try require(length, part: "the data of \(part)")
        let dataStart = offset
        let dataEnd = offset + length
        let ttl = rawTTL & 0x8000_0000 != 0 ? 0 : rawTTL
        let data: DNSRecordData
        switch (type, recordClass) {
        case (.a, dnsClassInternet):
            guard length == 4 else { throw .badRecordLength(type: type, length: length, offset: start) }
            data = .address(.v4(bytes[dataStart], bytes[dataStart + 1], bytes[dataStart + 2], bytes[dataStart + 3]))
            offset = dataEnd
        case (.aaaa, dnsClassInternet):
            guard length == 16 else { throw .badRecordLength(type: type, length: length, offset: start) }
            data = .address(.v6(Array(bytes[dataStart..<dataEnd])))
            offset = dataEnd
        case (.cname, dnsClassInternet):
            let target = try readName(part: "the data of \(part)")
            guard offset == dataEnd else { throw .nameOverrunsRecordData(type: type, offset: start) }
            data = .canonicalName(target)
        case (.srv, dnsClassInternet):
            guard length >= 7 else { throw .badRecordLength(type: type, length: length, offset: start) }
            let priority = try readUInt16(part: part)
            let weight = try readUInt16(part: part)
            let port = try readUInt16(part: part)
            // RFC 2782 forbids compressing the target, but RFC 3597 §4 asks receivers to accept it.
            let target = try readName(part: "the data of \(part)")
            guard offset == dataEnd else { throw .nameOverrunsRecordData(type: type, offset: start) }
            data = .service(DNSServiceRecord(priority: priority, weight: weight, port: port, target: target))
        default:
            data = .other(type: type, recordClass: recordClass)
            offset = dataEnd
        }
        return DNSRecord(name: name, ttl: ttl, data: data)
    }
}
