/// How the health checker probes every backend. Validated by `validate()`.
public struct HealthCheckConfig: Sendable, Equatable {
    /// How the reply must contain `expect`.
    public enum ExpectMatch: String, Sendable, CaseIterable {
        /// `expect` appears anywhere in what the backend sent before the timeout.
        case contains
        /// What the backend sent starts with `expect`.
        case prefix
    }

    /// Time between the starts of two probes of one backend.
    public var interval: Duration
    /// Time a probe may take, from connect to the expected reply.
    public var timeout: Duration
    /// Consecutive successes that bring a down backend up.
    public var rise: Int
    /// Consecutive failures that take a confirmed-up backend down.
    public var fall: Int
    /// Bytes written once connected; nil writes nothing.
    public var send: [UInt8]?
    /// Bytes the reply must hold; nil makes a successful connect (and send) enough.
    public var expect: [UInt8]?
    public var expectMatch: ExpectMatch
    /// TLS in checks: `type: tls`, `check-tls`, `server-name`, `ca-file` (issue 22).
    public var tls = HealthCheckTLS()

    public init(
        interval: Duration = .seconds(2), timeout: Duration = .seconds(1), rise: Int = 2, fall: Int = 3,
        send: [UInt8]? = nil, expect: [UInt8]? = nil, expectMatch: ExpectMatch = .contains
    ) {
        self.interval = interval
        self.timeout = timeout
        self.rise = rise
        self.fall = fall
        self.send = send
        self.expect = expect
        self.expectMatch = expectMatch
    }

    /// Builds a config from command-line text; nil arguments keep the defaults.
    /// `send` and `expect` are decoded with `decodeEscapes(_:)`.
    public init(
        interval: String?, timeout: String?, rise: Int?, fall: Int?,
        send: String?, expect: String?, expectMatch: ExpectMatch = .contains
    ) throws(ConfigError) {
        self.init()
        if let interval { self.interval = try Duration(parsing: interval) }
        if let timeout { self.timeout = try Duration(parsing: timeout) }
        if let rise { self.rise = rise }
        if let fall { self.fall = fall }
        if let send { self.send = try Self.decodeEscapes(send) }
        if let expect { self.expect = try Self.decodeEscapes(expect) }
        self.expectMatch = expectMatch
        try validate()
    }

    /// Throws a `ConfigError` naming the first value out of range.
    public func validate() throws(ConfigError) {
        guard interval >= .milliseconds(10) else {
            throw ConfigError("health check interval \(interval.shortDescription) is too short: use 10ms or more")
        }
        guard timeout >= .milliseconds(1) else {
            throw ConfigError("health check timeout must be at least 1ms")
        }
        guard (1...100).contains(rise) else { throw ConfigError("health check rise \(rise) must be from 1 to 100") }
        guard (1...100).contains(fall) else { throw ConfigError("health check fall \(fall) must be from 1 to 100") }
        if let send, send.isEmpty { throw ConfigError("health check send payload is empty") }
        if let expect {
            guard !expect.isEmpty else { throw ConfigError("health check expect text is empty") }
            guard expect.count <= Self.maximumReply else {
                throw ConfigError("health check expect text is longer than \(Self.maximumReply) bytes")
            }
        }
        // TLS in checks (issue 22).
        if tls.handshakeOnly && (send != nil || expect != nil) {
            throw ConfigError("health type tls checks the handshake alone; to send and expect inside TLS, use check-tls: true")
        }
    }

    /// The most reply bytes a probe reads while looking for `expect`.
    public static let maximumReply = 16 * 1024

    /// Whether `reply` (everything read so far) satisfies `expect`. True when there is no `expect`.
    public func replyMatches(_ reply: [UInt8]) -> Bool {
        guard let expect else { return true }
        switch expectMatch {
        case .prefix:
            return reply.starts(with: expect)
        case .contains:
            guard reply.count >= expect.count else { return false }
            for start in 0...(reply.count - expect.count) where reply[start] == expect[0] {
                if reply[start..<(start + expect.count)].elementsEqual(expect) { return true }
            }
            return false
        }
    }

    /// Whether more reply bytes could still turn a non-matching `reply` into a match.
    public func replyCouldStillMatch(_ reply: [UInt8]) -> Bool {
        guard let expect else { return false }
        switch expectMatch {
        case .prefix: return reply.count < expect.count && expect.starts(with: reply)
        case .contains: return reply.count < Self.maximumReply
        }
    }

    /// Decodes the escapes an operator can type in a shell argument: `\r`, `\n`, `\t`, `\\`, `\0`
    /// and `\xHH` (two hex digits). Other text is taken as UTF-8.
    /// Throws a `ConfigError` for an unknown escape, a trailing `\` or a bad `\x`.
    public static func decodeEscapes(_ text: String) throws(ConfigError) -> [UInt8] {
        var bytes: [UInt8] = []
        var input = Array(text.utf8)[...]
        while let byte = input.popFirst() {
            guard byte == UInt8(ascii: "\\") else {
                bytes.append(byte)
                continue
            }
            guard let escape = input.popFirst() else {
                throw ConfigError("'\(text)' ends with a lone '\\'; write '\\\\' for a backslash")
            }
            switch escape {
            case UInt8(ascii: "r"): bytes.append(0x0D)
            case UInt8(ascii: "n"): bytes.append(0x0A)
            case UInt8(ascii: "t"): bytes.append(0x09)
            case UInt8(ascii: "0"): bytes.append(0x00)
            case UInt8(ascii: "\\"): bytes.append(UInt8(ascii: "\\"))
            case UInt8(ascii: "x"):
                guard input.count >= 2, let high = hexValue(input[input.startIndex]),
                      let low = hexValue(input[input.startIndex + 1]) else {
                    throw ConfigError("'\(text)': '\\x' must be followed by two hex digits, as in \\x0d")
                }
                input = input.dropFirst(2)
                bytes.append(high << 4 | low)
            default:
                throw ConfigError("'\(text)': unknown escape '\\\(Character(Unicode.Scalar(escape)))'; use \\r, \\n, \\t, \\0, \\\\ or \\xHH")
            }
        }
        return bytes
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return byte - UInt8(ascii: "A") + 10
        default: return nil
        }
    }

    /// One line for the startup log, e.g. `tcp connect every 2s, timeout 1s, rise 2, fall 3`.
    public var summary: String {
        var kind = "tcp connect"
        if send != nil { kind += " + send" }
        if expect != nil { kind += " + expect (\(expectMatch.rawValue))" }
        if tls.handshakeOnly || tls.checkTLS { kind = tls.handshakeOnly ? tls.summary : kind + tls.summary }  // Issue 22.
        return "\(kind) every \(interval.shortDescription), timeout \(timeout.shortDescription), rise \(rise), fall \(fall)"
    }
}
