/// A backend's agent check (HAProxy's `agent-check`): every `agent-interval` the agent checker
/// connects to `agent-address:agent-port`, sends `agent-send` if given, and reads one line that
/// `AgentReply` parses. The keys, in a backend mapping or as `,agent-port=N` options of the
/// command-line form:
///
/// - `agent-port`: where the agent listens; without it the backend has no agent check.
/// - `agent-address`: the agent's IP address; the backend's own address when absent.
/// - `agent-interval`: between two checks (default 2s, as HAProxy's `agent-inter`).
/// - `agent-send`: text sent once connected, with `\r`, `\n`, `\t`, `\\`, `\0`, `\xHH` escapes.
///
/// A check ends within its interval, at least 1 s and at most 10 s (`timeout`).
public struct AgentCheckSettings: Hashable, Sendable {
    public static let defaultInterval: Duration = .seconds(2)
    /// The longest `agent-send`.
    public static let maximumSend = 1024
    /// The option names, as keys of a backend mapping and of the command-line form.
    public static let keys = ["agent-port", "agent-address", "agent-interval", "agent-send"]

    public var port: UInt16?
    public var address: IPAddress?
    public var interval: Duration?
    public var send: [UInt8]?

    public init(port: UInt16? = nil, address: IPAddress? = nil, interval: Duration? = nil, send: [UInt8]? = nil) {
        self.port = port
        self.address = address
        self.interval = interval
        self.send = send
    }

    /// Whether the backend has an agent check (an `agent-port`).
    public var isEnabled: Bool { port != nil }

    public var effectiveInterval: Duration { interval ?? Self.defaultInterval }

    /// How long one check may take: the interval, at least 1 s (a slow agent on a busy host is
    /// not cut off by a short interval), at most 10 s.
    public var timeout: Duration { min(max(effectiveInterval, .seconds(1)), .seconds(10)) }

    /// Where the agent of a backend at `backend` listens; nil without an `agent-port`. The
    /// backend's resolved address is kept when no `agent-address` is given.
    public func endpoint(of backend: Endpoint) -> Endpoint? {
        guard let port else { return nil }
        if let address { return Endpoint(address: address, port: port) }
        var target = backend
        target.port = port
        return target
    }

    /// Parses the option `key` (one of `keys`) with its value `text`. A nil `context` leaves
    /// the message without a prefix (the file's decoder names the key itself).
    public mutating func parse(_ key: String, _ text: String, context: String?) throws(ConfigError) {
        let prefix = context.map { "\($0): \(key) " } ?? ""
        switch key {
        case "agent-port":
            guard !text.isEmpty, text.allSatisfy({ $0.isASCII && $0.isNumber }), let value = UInt16(text), value != 0 else {
                throw ConfigError("\(prefix)'\(text)' must be a number from 1 to 65535")
            }
            port = value
        case "agent-address":
            var host = Substring(text)
            if host.hasPrefix("[") && host.hasSuffix("]") { host = host.dropFirst().dropLast() }
            guard let value = IPAddress(String(host)) else {
                throw ConfigError("\(prefix)'\(text)' is not an IP address (give the port as agent-port)")
            }
            address = value
        case "agent-interval":
            let value: Duration
            do {
                value = try Duration(parsing: text)
            } catch {
                throw ConfigError("\(prefix)'\(text)': \(error.message)")
            }
            guard value >= .milliseconds(10), value <= .seconds(3600) else {
                throw ConfigError("\(prefix)'\(text)' must be from 10ms to 1h")
            }
            // Whole milliseconds, as the backend is written back, so that it reads back the same.
            interval = .milliseconds(value.milliseconds)
        case "agent-send":
            let value: [UInt8]
            do {
                value = try HealthCheckConfig.decodeEscapes(text)
            } catch {
                throw ConfigError("\(prefix)\(error.message)")
            }
            guard !value.isEmpty, value.count <= Self.maximumSend else {
                throw ConfigError("\(prefix)must be 1 to \(Self.maximumSend) bytes")
            }
            send = value
        default:
            throw ConfigError("\(prefix)is not an agent option")
        }
    }

    /// Refuses agent options without an `agent-port`.
    public func validate(context: String) throws(ConfigError) {
        guard port == nil, address != nil || interval != nil || send != nil else { return }
        throw ConfigError("\(context): agent-address, agent-interval and agent-send need agent-port")
    }

    /// The options as the command-line form writes them (`,agent-port=N,...`), read back by
    /// `parse`; empty without an agent.
    public var options: String {
        var text = ""
        if let port { text += ",agent-port=\(port)" }
        if let address { text += ",agent-address=\(address.isIPv6 ? "[\(address)]" : address.description)" }
        if let interval { text += ",agent-interval=\(interval.shortDescription)" }
        if let send { text += ",agent-send=\(Self.escaped(send))" }
        return text
    }

    /// `bytes` as escape text that `decodeEscapes` reads back and that holds no comma, space or
    /// control character (it stands in a comma-separated option).
    static func escaped(_ bytes: [UInt8]) -> String {
        var text = ""
        for byte in bytes {
            switch byte {
            case 0x0D: text += "\\r"
            case 0x0A: text += "\\n"
            case 0x09: text += "\\t"
            case UInt8(ascii: "\\"): text += "\\\\"
            case 0x21...0x7E where byte != UInt8(ascii: ","): text.unicodeScalars.append(Unicode.Scalar(byte))
            default: text += "\\x" + String(byte, radix: 16).leftPadded(to: 2)
            }
        }
        return text
    }
}

extension AdminState {
    /// `maint` is more restrictive than `drain`, which is more than `ready`.
    public static func mostRestrictive(_ a: AdminState, _ b: AdminState) -> AdminState {
        func rank(_ state: AdminState) -> Int {
            switch state {
            case .ready: 0
            case .drain: 1
            case .maint: 2
            }
        }
        return rank(a) >= rank(b) ? a : b
    }
}

/// The combination of a backend's three sources (see `AgentVerdict`).
extension BackendState {
    /// The state in force: the most restrictive of the operator's (a backend being removed
    /// drains) and the agent's.
    public var effectiveAdmin: AdminState {
        AdminState.mostRestrictive(displayedState, agent?.adminState ?? .ready)
    }

    /// The health check's verdict, unless the agent said `down`.
    public var isUp: Bool { agent?.combined(checkUp: health.isUp) ?? health.isUp }

    /// The weight balancers use: the agent's `N%` of the configured weight, else the configured.
    public var effectiveWeight: Int {
        guard let percent = agent?.weightPercent else { return spec.weight }
        return AgentVerdict.weight(configured: spec.weight, percent: percent)
    }
}
