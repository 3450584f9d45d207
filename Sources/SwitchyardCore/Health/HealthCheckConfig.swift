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
    // Check sequences and protocol checks (issue 22).
    /// A send/expect sequence (`steps`); nil: `send`/`expect`, or a connect alone.
    public var steps: [HealthStep]?
    /// A protocol check by name (`type`) with its options; nil: `steps` or `send`/`expect`.
    public var type: HealthCheckType?
    /// Whether each check starts with the PROXY header (`check-send-proxy`), in the backend's
    /// `send-proxy` version (v1 when it has none), for backends that require one. A backend's
    /// own `check-send-proxy` overrides it.
    public var checkSendProxy = false

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
        let kinds = [(send != nil || expect != nil, "send/expect"), (steps != nil, "steps"), (type != nil, "type")].filter(\.0)
        if kinds.count > 1 {
            throw ConfigError("health check \(kinds.map(\.1).joined(separator: " and ")) cannot be combined: choose one")
        }
        if let steps { try Self.validate(steps) }
        try type?.validate()
        // TLS in checks (issue 22).
        if tls.handshakeOnly && !kinds.isEmpty {
            throw ConfigError("health type tls checks the handshake alone; to run \(kinds.map(\.1).joined(separator: " and ")) inside TLS, use check-tls: true")
        }
    }

    /// Throws unless `steps` is 1 to `maximumSteps` steps, each send non-empty, each expect valid.
    public static func validate(_ steps: [HealthStep]) throws(ConfigError) {
        guard !steps.isEmpty else { throw ConfigError("health check steps are empty: give at least one send or expect") }
        guard steps.count <= maximumSteps else {
            throw ConfigError("health check has \(steps.count) steps; at most \(maximumSteps) are allowed")
        }
        for (index, step) in steps.enumerated() {
            do throws(ConfigError) {
                switch step {
                case let .send(bytes) where bytes.isEmpty: throw ConfigError("health check send payload is empty")
                case .send: break
                case let .expect(expectation): try expectation.validate()
                }
            } catch {
                throw ConfigError("step \(index + 1): \(error.message)")
            }
        }
    }

    /// The most reply bytes one `expect` step (or a protocol check's reply) reads.
    public static let maximumReply = 16 * 1024
    /// The most bytes one probe reads in all its steps: a backend that floods its check fails it.
    public static let maximumProbeRead = 64 * 1024
    /// The most steps in a `steps` sequence.
    public static let maximumSteps = 64

    /// A new dialog for one probe of `target` (the backend, or its `check-port`/`check-address`):
    /// the `type`'s, the `steps`, or `send` then `expect` as a two-step sequence (either alone: one
    /// step; neither: a connect alone passes).
    public func dialog(checking target: Endpoint) -> any HealthDialog {
        if let type { return type.dialog(checking: target) }
        if let steps { return HealthStepScript(steps) }
        var steps: [HealthStep] = []
        if let send { steps.append(.send(send)) }
        if let expect {
            steps.append(.expect(HealthExpectation(.bytes(expect), match: expectMatch == .prefix ? .prefix : .contains)))
        }
        let passText = expect != nil ? "expected reply" : send != nil ? "connected and sent" : "connected"
        return HealthStepScript(steps, passText: passText)
    }

    /// Decodes `send-hex`/`hex` text: pairs of hex digits, optionally separated by spaces
    /// (`2a31 0d0a`). Throws a `ConfigError` for an odd digit count or a non-hex character.
    public static func decodeHex(_ text: String) throws(ConfigError) -> [UInt8] {
        var bytes: [UInt8] = []
        var high: UInt8?
        for byte in text.utf8 {
            if byte == 0x20 || byte == 0x09 {
                guard high == nil else { throw ConfigError("'\(text)': a space splits a byte; write hex digits in pairs, as in 0d0a") }
                continue
            }
            guard let digit = Hex.value(byte) else {
                throw ConfigError("'\(text)': '\(healthPrintable([byte]))' is not a hex digit; write bytes as pairs, as in 2a310d0a")
            }
            if let first = high {
                bytes.append(first << 4 | digit)
                high = nil
            } else {
                high = digit
            }
        }
        guard high == nil else { throw ConfigError("'\(text)' has an odd number of hex digits; write bytes as pairs, as in 0d0a") }
        return bytes
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
                guard input.count >= 2, let high = Hex.value(input[input.startIndex]),
                      let low = Hex.value(input[input.startIndex + 1]) else {
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

    /// One line for the startup log, e.g. `tcp connect every 2s, timeout 1s, rise 2, fall 3`.
    public var summary: String {
        var kind = "tcp connect"
        if send != nil { kind += " + send" }
        if expect != nil { kind += " + expect (\(expectMatch.rawValue))" }
        if let steps { kind += " + \(steps.count) step\(steps.count == 1 ? "" : "s")" }
        if let type { kind = type.summary }
        if tls.handshakeOnly { kind = tls.summary } else if tls.checkTLS { kind += tls.summary }  // TLS in checks.
        if checkSendProxy { kind += " after a PROXY header" }
        return "\(kind) every \(interval.shortDescription), timeout \(timeout.shortDescription), rise \(rise), fall \(fall)"
    }
}
