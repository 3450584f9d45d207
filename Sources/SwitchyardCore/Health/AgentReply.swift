/// One reply line of a backend's agent (HAProxy's agent-check protocol, which existing agents
/// speak): words separated by spaces, commas or tabs, ending in a newline. Each word sets one
/// thing; the last word of a kind wins; unknown words are ignored (newer agents send more).
///
/// - `up`, and `down` / `fail` / `failed` / `stopped`: the agent's view of the backend's health.
/// - `ready`, `drain`, `maint`: the administrative state it asks for.
/// - `N%`: the weight as a percentage of the configured weight (0 to 1000).
/// - `maxconn:N`: noted, not applied.
/// - `#` and everything after it: a text kept for `show backends`.
///
/// How its verdicts combine with the health check's: see `AgentVerdict.combined(checkUp:)`.
public struct AgentReply: Sendable, Equatable {
    public enum Health: String, Sendable, Equatable { case up, down }
    public enum AdminState: String, Sendable, Equatable { case ready, drain, maint }

    public var health: Health?
    public var adminState: AdminState?
    public var weightPercent: Int?
    public var maxConnections: Int?
    public var text: String?

    public init(health: Health? = nil, adminState: AdminState? = nil, weightPercent: Int? = nil,
                maxConnections: Int? = nil, text: String? = nil) {
        self.health = health
        self.adminState = adminState
        self.weightPercent = weightPercent
        self.maxConnections = maxConnections
        self.text = text
    }

    /// The longest line read from an agent; a longer one is an error.
    public static let maximumLength = 1024

    /// Parses one line (without or with its `\n`/`\r\n`). Throws on an empty reply, a line over
    /// `maximumLength`, a bad percentage or control characters; nothing else is fatal.
    public static func parse(_ line: some Collection<UInt8>) throws(ConfigError) -> AgentReply {
        guard line.count <= maximumLength else { throw ConfigError("agent reply longer than \(maximumLength) bytes") }
        var bytes = Array(line)
        while let last = bytes.last, last == 0x0A || last == 0x0D { bytes.removeLast() }
        var reply = AgentReply()
        if let hash = bytes.firstIndex(of: UInt8(ascii: "#")) {
            let text = String(decoding: bytes[(hash + 1)...], as: UTF8.self)
            reply.text = text.isEmpty ? nil : String(text.drop { $0 == " " })
            bytes.removeSubrange(hash...)
        }
        guard !bytes.contains(where: { $0 < 0x20 && $0 != 0x09 }) else {
            throw ConfigError("agent reply has control characters: '\(healthPrintable(bytes))'")
        }
        let words = bytes.split { $0 == 0x20 || $0 == 0x2C || $0 == 0x09 }.map { String(decoding: $0, as: UTF8.self).lowercased() }
        guard !words.isEmpty || reply.text != nil else { throw ConfigError("empty agent reply") }
        for word in words {
            switch word {
            case "up": reply.health = .up
            case "down", "fail", "failed", "stopped": reply.health = .down
            case "ready": reply.adminState = .ready
            case "drain": reply.adminState = .drain
            case "maint": reply.adminState = .maint
            default:
                if word.hasSuffix("%") {
                    guard let value = Int(word.dropLast()), (0...1000).contains(value) else {
                        throw ConfigError("agent weight '\(word)' must be a percentage from 0% to 1000%")
                    }
                    reply.weightPercent = value
                } else if word.hasPrefix("maxconn:"), let value = Int(word.dropFirst(8)), value >= 0 {
                    reply.maxConnections = value
                }
            }
        }
        return reply
    }
}

/// The agent's latest word on a backend, combined with the health check's (HAProxy's rules).
public struct AgentVerdict: Sendable, Equatable {
    /// The last `up`/`down` the agent said; nil: it has said neither (or never answered).
    public var health: AgentReply.Health?

    public init(health: AgentReply.Health? = nil) { self.health = health }

    /// Up only when the health check is up and the agent has not said down: an agent can take a
    /// backend down, or bring back one it took down, but never bring up one whose check fails.
    public func combined(checkUp: Bool) -> Bool { checkUp && health != .down }

    /// The weight an agent's `N%` gives a backend configured with `weight`: rounded down, at
    /// least 1 unless the percentage is 0, at most `maximum`.
    public static func weight(configured weight: Int, percent: Int, maximum: Int = 1000) -> Int {
        guard percent > 0 else { return 0 }
        return min(maximum, max(1, weight * percent / 100))
    }
}
