/// The `postgres` check: a protocol 3.0 startup message for `user` and `database`. The server is
/// up when it asks for authentication ('R' with a method other than 0: no password is sent, so
/// the database is not opened) or is ready for a query ('Z', after 'R' 0 under trust), and down
/// on an error response ('E', whose message is shown: a wrong database name, too many clients,
/// starting up or shutting down) or anything else. No password is ever sent; once the verdict
/// is known the checker closes the connection.
public struct PostgresHealthDialog: ReplyJudgingDialog {
    public let startup: [UInt8]
    public var request: [UInt8]? { startup }
    public var reply: [UInt8] = []

    public init(user: String, database: String?) {
        var body: [UInt8] = [0x00, 0x03, 0x00, 0x00]  // protocol 3.0
        for (key, value) in [("user", user), ("database", database ?? user), ("application_name", "switchyard-health")] {
            body += Array(key.utf8) + [0] + Array(value.utf8) + [0]
        }
        body.append(0)
        startup = Self.int32(body.count + 4) + body
    }

    static func int32(_ value: Int) -> [UInt8] {
        [UInt8(truncatingIfNeeded: value >> 24), UInt8(truncatingIfNeeded: value >> 16),
         UInt8(truncatingIfNeeded: value >> 8), UInt8(truncatingIfNeeded: value)]
    }

    public var progress: String { "waiting for the startup reply; \(healthReadText(reply))" }

    public func verdict(closed: Bool) -> HealthDialogAction {
        var offset = 0
        while reply.count - offset >= 5 {
            let type = reply[offset]
            let length = reply[(offset + 1)..<(offset + 5)].reduce(0) { $0 << 8 | Int($1) }
            guard length >= 4, length <= HealthCheckConfig.maximumReply else {
                return .fail("not a PostgreSQL reply: '\(healthPrintable(reply))'")
            }
            guard reply.count - offset >= 1 + length else { break }
            let body = reply[(offset + 5)..<(offset + 1 + length)]
            switch type {
            case UInt8(ascii: "R"):
                let method = body.prefix(4).reduce(0) { $0 << 8 | Int($1) }
                // AuthenticationOk (trust): the server goes on to open the database and answers
                // ready-for-query or an error (a wrong database name comes only now), so read on.
                guard method == 0 else { return .pass("authentication requested (method \(method))") }
                offset += 1 + length
            case UInt8(ascii: "Z"):
                return .pass("ready for query")
            case UInt8(ascii: "E"):
                return .fail("PostgreSQL error: \(Self.errorText(body))")
            case UInt8(ascii: "N"), UInt8(ascii: "S"), UInt8(ascii: "K"):
                offset += 1 + length  // a notice, a parameter, the backend key: read on
            default:
                return .fail("unexpected PostgreSQL message '\(healthPrintable([type]))'")
            }
        }
        if closed { return .fail("closed before a startup reply; \(healthReadText(reply))") }
        // Notices alone never end: a server that sends nothing but them fails at the reply limit.
        if reply.count >= HealthCheckConfig.maximumReply { return .fail("no startup verdict in \(reply.count) bytes: '\(healthPrintable(reply))'") }
        return .receive
    }

    /// "FATAL 3D000: database \"nope\" does not exist" from an ErrorResponse's fields.
    static func errorText(_ body: ArraySlice<UInt8>) -> String {
        var fields: [UInt8: String] = [:]
        var rest = body[...]
        while let code = rest.first, code != 0 {
            rest = rest.dropFirst()
            let end = rest.firstIndex(of: 0) ?? rest.endIndex
            fields[code] = healthOneLine(rest[..<end])
            rest = rest[min(end + 1, rest.endIndex)...]
        }
        let severity = fields[UInt8(ascii: "V")] ?? fields[UInt8(ascii: "S")] ?? "ERROR"
        let code = fields[UInt8(ascii: "C")].map { " \($0)" } ?? ""
        return "\(severity)\(code): \(fields[UInt8(ascii: "M")] ?? "no message")"
    }
}

/// The `mysql` check (MySQL and MariaDB): the server's greeting packet must be protocol 10; an
/// error packet instead (too many connections, a blocked host) is down, with its message.
public struct MySQLHealthDialog: ReplyJudgingDialog {
    public var request: [UInt8]? { nil }
    public var reply: [UInt8] = []

    public init() {}

    public var progress: String { "waiting for the server greeting; \(healthReadText(reply))" }

    public func verdict(closed: Bool) -> HealthDialogAction {
        guard reply.count >= 5 else {
            return closed ? .fail("closed before a greeting; \(healthReadText(reply))") : .receive
        }
        let length = Int(reply[0]) | Int(reply[1]) << 8 | Int(reply[2]) << 16
        let payload = reply.dropFirst(4).prefix(length)
        switch reply[4] {
        case 0x0A:
            guard let end = payload.dropFirst().firstIndex(of: 0) else {
                let complete = reply.count >= 4 + length || reply.count >= HealthCheckConfig.maximumReply
                return complete || closed ? .fail("a greeting without a server version") : .receive
            }
            return .pass("protocol 10, \(healthOneLine(payload[(payload.startIndex + 1)..<end]))")
        case 0xFF:
            guard reply.count >= 4 + length || closed || reply.count >= HealthCheckConfig.maximumReply else { return .receive }
            let code = payload.count >= 3 ? Int(payload[payload.startIndex + 1]) | Int(payload[payload.startIndex + 2]) << 8 : 0
            var message = payload.dropFirst(3)
            if message.first == UInt8(ascii: "#") { message = message.dropFirst(6) }
            return .fail("MySQL error \(code): \(healthOneLine(message))")
        default:
            return .fail("not a protocol 10 greeting: '\(healthPrintable(reply))'")
        }
    }
}
