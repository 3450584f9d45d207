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
/// How its verdicts combine with the health check's and the operator's: see `AgentVerdict`.
public struct AgentReply: Sendable, Equatable {
    public enum Health: String, Sendable, Equatable { case up, down }

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
    /// `maximumLength`, a bad percentage or control characters (the text after `#` included: it
    /// is shown on one line of `show backends`); nothing else is fatal.
    public static func parse(_ line: some Collection<UInt8>) throws(ConfigError) -> AgentReply {
        guard line.count <= maximumLength else { throw ConfigError("agent reply longer than \(maximumLength) bytes") }
        var bytes = Array(line)
        while let last = bytes.last, last == 0x0A || last == 0x0D { bytes.removeLast() }
        guard !bytes.contains(where: { ($0 < 0x20 && $0 != 0x09) || $0 == 0x7F }) else {
            throw ConfigError("agent reply has control characters: '\(healthPrintable(bytes))'")
        }
        var reply = AgentReply()
        if let hash = bytes.firstIndex(of: UInt8(ascii: "#")) {
            // Trimmed as bytes: a space followed by a combining mark is one Character.
            var text = bytes[(hash + 1)...]
            while let first = text.first, first == 0x20 || first == 0x09 { text.removeFirst() }
            while let last = text.last, last == 0x20 || last == 0x09 { text.removeLast() }
            reply.text = text.isEmpty ? nil : String(decoding: text, as: UTF8.self)
            bytes.removeSubrange(hash...)
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

/// What a backend's agent has said so far, one of three sources of a backend's state (as in
/// HAProxy): the health check says up or down, the operator (`drain`, `maint`, `ready` on the
/// admin socket) sets an administrative state, and the agent says both and a weight. Each word
/// stays in force until the agent says another of its kind, so a `50%` keeps an earlier `drain`.
///
/// How they combine (`BackendState.selectable` applies it):
/// - Up only when the health check says up and the agent has not said `down`: an agent's `up`
///   only clears its own `down`, it never brings up a backend whose check fails.
/// - The administrative state is the most restrictive of the operator's and the agent's
///   (`maint` over `drain` over `ready`): an agent's `ready` ends only its own `drain`/`maint`,
///   never the operator's, and the operator's `ready` never ends the agent's.
/// - The weight is `N%` of the configured weight (`weight(configured:percent:)`); 0 takes no
///   new clients, like a drain.
/// - An agent that cannot be reached, or answers garbage, changes nothing: its last words stay
///   in force and the failure is shown (`error`) and logged.
public struct AgentVerdict: Sendable, Equatable {
    /// The last `up`/`down` the agent said; nil: it has said neither (or never answered).
    public var health: AgentReply.Health?
    /// The last `ready`/`drain`/`maint` it said; `ready` until it says one.
    public var adminState: AdminState
    /// The last `N%` it said; nil: the configured weight.
    public var weightPercent: Int?
    /// The text after `#` in its latest reply.
    public var text: String?
    /// Why its latest check failed (no verdict then); nil after an answer.
    public var error: String?

    public init(health: AgentReply.Health? = nil, adminState: AdminState = .ready, weightPercent: Int? = nil,
                text: String? = nil, error: String? = nil) {
        self.health = health
        self.adminState = adminState
        self.weightPercent = weightPercent
        self.text = text
        self.error = error
    }

    /// Takes in one parsed reply: the words it has replace the earlier ones of their kind; its
    /// text replaces the earlier text; an error is over.
    public mutating func apply(_ reply: AgentReply) {
        if let health = reply.health { self.health = health }
        if let adminState = reply.adminState { self.adminState = adminState }
        if let weightPercent = reply.weightPercent { self.weightPercent = weightPercent }
        text = reply.text
        error = nil
    }

    /// Up only when the health check is up and the agent has not said down: an agent can take a
    /// backend down, or bring back one it took down, but never bring up one whose check fails.
    public func combined(checkUp: Bool) -> Bool { checkUp && health != .down }

    /// The weight an agent's `N%` gives a backend configured with `weight`: rounded down, at
    /// least 1 unless the percentage or the weight is 0 (a backend configured never to be
    /// picked stays so), at most `maximum` (256, as HAProxy caps it).
    public static func weight(configured weight: Int, percent: Int, maximum: Int = BackendSpec.maximumWeight) -> Int {
        guard percent > 0, weight > 0 else { return 0 }
        return min(maximum, max(1, weight * percent / 100))
    }

    /// A short account for `show backends` and the log: `drain 50% down # text`, or
    /// `error: REASON` (then what is in force).
    public var summary: String {
        var words = [adminState.rawValue]
        if let weightPercent { words.append("\(weightPercent)%") }
        if let health { words.append(health.rawValue) }
        if let text { words.append("# \(text)") }
        let state = words.joined(separator: " ")
        return error.map { "error: \($0) (in force: \(state))" } ?? state
    }
}
