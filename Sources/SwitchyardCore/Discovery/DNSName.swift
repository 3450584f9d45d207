/// A domain name as its labels (RFC 1035 §3.1), compared without regard to ASCII case (RFC 4343).
///
/// Labels are kept as the bytes received or written, so a name from the wire with odd bytes in
/// it survives intact (and is escaped in `description`); names from configuration are checked by
/// `init(parsing:)`.
public struct DNSName: Hashable, Sendable, CustomStringConvertible {
    /// The most bytes a label may hold (the two top bits of its length byte are the label type).
    public static let maximumLabelLength = 63
    /// The most bytes a name takes on the wire, length bytes and the final root byte included.
    public static let maximumWireLength = 255

    /// Each 1 to 63 bytes; empty for the root name.
    public let labels: [[UInt8]]

    /// The root name `.`.
    public static let root = DNSName(validLabels: [])

    /// `labels` must each be 1 to 63 bytes and together fit in 255 bytes on the wire
    /// (`DNSMessage` checks this for names it reads).
    init(validLabels labels: [[UInt8]]) {
        self.labels = labels
    }

    /// Parses a host or service name as configuration writes it: `web.example.com`,
    /// `_http._tcp.example.com`, with or without the final dot. Labels are letters, digits, `-`
    /// and `_`, 1 to 63 of them each, and the whole name at most 253 characters.
    /// Throws a `ConfigError` naming the text.
    public init(parsing text: String) throws(ConfigError) {
        var body = Substring(text)
        if body.hasSuffix(".") { body = body.dropLast() }
        guard !body.isEmpty else { throw ConfigError("'\(text)' is not a DNS name: it is empty") }
        guard body.utf8.count <= 253 else {
            throw ConfigError("'\(text)' is not a DNS name: longer than 253 characters")
        }
        var labels: [[UInt8]] = []
        for label in body.split(separator: ".", omittingEmptySubsequences: false) {
            guard !label.isEmpty else { throw ConfigError("'\(text)' is not a DNS name: it has an empty label") }
            guard label.utf8.count <= DNSName.maximumLabelLength else {
                throw ConfigError("'\(text)' is not a DNS name: label '\(label)' is longer than 63 characters")
            }
            guard label.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") }) else {
                throw ConfigError("'\(text)' is not a DNS name: label '\(label)' may hold only letters, digits, '-' and '_'")
            }
            labels.append(Array(label.utf8))
        }
        self.labels = labels
    }

    /// Bytes the name takes on the wire uncompressed: a length byte per label, the labels and
    /// the root byte.
    public var wireLength: Int {
        labels.reduce(1) { $0 + 1 + $1.count }
    }

    /// Appends the uncompressed wire form.
    func encode(into bytes: inout [UInt8]) {
        for label in labels {
            bytes.append(UInt8(label.count))
            bytes += label
        }
        bytes.append(0)
    }

    /// Dotted text without the final dot (`.` for the root); bytes other than letters, digits,
    /// `-` and `_` are written `\DDD` (RFC 1035 §5.1), a dot or backslash in a label `\.` `\\`.
    public var description: String {
        guard !labels.isEmpty else { return "." }
        var text = ""
        for (index, label) in labels.enumerated() {
            if index > 0 { text += "." }
            for byte in label {
                switch byte {
                case UInt8(ascii: "."), UInt8(ascii: "\\"):
                    text += "\\"
                    text.unicodeScalars.append(Unicode.Scalar(byte))
                case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                     UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "_"):
                    text.unicodeScalars.append(Unicode.Scalar(byte))
                default:
                    let digits = String(byte)
                    text += "\\" + String(repeating: "0", count: 3 - digits.count) + digits
                }
            }
        }
        return text
    }

    public static func == (left: DNSName, right: DNSName) -> Bool {
        guard left.labels.count == right.labels.count else { return false }
        for (a, b) in zip(left.labels, right.labels) {
            guard a.count == b.count else { return false }
            for (x, y) in zip(a, b) where DNSName.lowercased(x) != DNSName.lowercased(y) { return false }
        }
        return true
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(labels.count)
        for label in labels {
            hasher.combine(label.count)
            for byte in label { hasher.combine(DNSName.lowercased(byte)) }
        }
    }

    /// ASCII lower case only: DNS compares other bytes exactly (RFC 4343 §3).
    private static func lowercased(_ byte: UInt8) -> UInt8 {
        (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte) ? byte | 0x20 : byte
    }
}
