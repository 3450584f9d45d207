/// One reply of the admin protocol.
///
/// On the wire (README, "Admin socket"): a status line, `OK` or `ERROR: message`, then zero or more
/// body lines, then one empty line that ends the reply. Body lines are never empty, so the
/// empty line is unambiguous.
public struct AdminReply: Error, Sendable, Equatable {
    public var ok: Bool
    /// The text after `ERROR: ` when `ok` is false.
    public var error: String?
    public var body: [String]

    public static func success(_ body: [String] = []) -> AdminReply {
        AdminReply(ok: true, error: nil, body: body)
    }

    public static func failure(_ message: String, _ body: [String] = []) -> AdminReply {
        AdminReply(ok: false, error: message, body: body)
    }

    /// The reply as sent: status line, body lines, then the empty line. Line breaks inside a body
    /// line are split and empty lines are written as a single space, so framing holds.
    public var wireText: String {
        var text = ok ? "OK\n" : "ERROR: \(Self.oneLine(error ?? "failed"))\n"
        for line in body {
            for part in line.split(separator: "\n", omittingEmptySubsequences: false) {
                text += part.isEmpty ? " \n" : "\(part)\n"
            }
        }
        return text + "\n"
    }

    private static func oneLine(_ text: String) -> String {
        String(text.map { $0 == "\n" || $0 == "\r" ? " " : $0 })
    }
}

/// Hand-written JSON, since the pure module has no Foundation.
public enum JSONText {
    /// `text` as a JSON string literal (RFC 8259 section 7): quotes, backslashes and control
    /// characters are escaped; other characters are kept as UTF-8.
    public static func string(_ text: String) -> String {
        // Most texts (names, addresses, numbers) need no escape: copy them whole.
        if !text.utf8.contains(where: { $0 < 0x20 || $0 == 0x22 || $0 == 0x5C || $0 == 0x7F }) {
            return "\"" + text + "\""
        }
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20 || scalar.value == 0x7F:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default:
                out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }

    /// An object from already-encoded values, keys in the given order.
    public static func object(_ fields: [(String, String)]) -> String {
        "{" + fields.map { "\(string($0.0)):\($0.1)" }.joined(separator: ",") + "}"
    }

    public static func array(_ values: [String]) -> String {
        "[" + values.joined(separator: ",") + "]"
    }
}
