/// DNS host names as TLS `server_name` carries them (RFC 6066 section 3: ASCII, internationalized
/// names as A-labels, no trailing dot), and as `route-by-sni` patterns name them.
///
/// Valid: 1 to 253 bytes; labels of 1 to 63 bytes separated by single dots; each label made of
/// ASCII letters, digits, `-` and `_`, not starting or ending with `-`. The underscore is not a
/// host-name character (RFC 952), but container and service names often carry one and clients
/// send them as they are, so it is accepted rather than sending those connections to `default`.
/// A trailing dot (`example.com.`) is refused: RFC 6066 forbids it, and accepting it would give
/// one name two spellings.
///
/// Names compare case-insensitively (RFC 4343), so they are kept lowercased.
public enum HostName {
    public static let maximumLength = 253
    public static let maximumLabelLength = 63

    /// The name in lowercase when `bytes` is a valid host name, nil otherwise.
    public static func normalized(_ bytes: some Collection<UInt8>) -> String? {
        guard (1...maximumLength).contains(bytes.count) else { return nil }
        var lowered: [UInt8] = []
        lowered.reserveCapacity(bytes.count)
        var labelLength = 0
        var previous: UInt8 = 0x2E
        for byte in bytes {
            switch byte {
            case 0x2E: // '.'
                guard labelLength > 0, previous != 0x2D else { return nil }
                labelLength = 0
            case 0x2D: // '-'
                guard labelLength > 0 else { return nil }
                labelLength += 1
            case 0x30...0x39, 0x61...0x7A, 0x5F: // digits, a-z, '_'
                labelLength += 1
            case 0x41...0x5A: // A-Z
                labelLength += 1
                lowered.append(byte | 0x20)
                previous = byte
                guard labelLength <= maximumLabelLength else { return nil }
                continue
            default:
                return nil
            }
            guard labelLength <= maximumLabelLength else { return nil }
            lowered.append(byte)
            previous = byte
        }
        // Not empty, no trailing dot, no trailing hyphen.
        guard labelLength > 0, previous != 0x2D else { return nil }
        return String(decoding: lowered, as: UTF8.self)
    }

    /// `normalized(_:)` of a string's UTF-8 bytes.
    public static func normalized(_ text: some StringProtocol) -> String? {
        normalized(Array(text.utf8))
    }
}
