extension AgentReply {
    /// An entry point for fuzzers: `bytes` is one agent reply as read from the socket. Traps (so
    /// that the fuzzer reports the input) if:
    /// - a refusal is not one line, or a reply over `maximumLength` bytes is accepted;
    /// - an accepted reply has a percentage outside 0...1000, or a text that is empty, has
    ///   control characters or starts or ends with a space;
    /// - the reply written back as words (when that fits in `maximumLength`) does not parse to
    ///   the same reply;
    /// - the verdict it leaves has a summary that is not one line, or gives a weight outside
    ///   0...256 (or above 0 for a backend configured with weight 0).
    public static func fuzz(_ bytes: [UInt8]) {
        let reply: AgentReply
        do {
            reply = try parse(bytes)
        } catch {
            precondition(!error.message.isEmpty && !error.message.contains("\n"), "AgentReply.fuzz: refusal is not one line")
            return
        }
        precondition(bytes.count <= maximumLength, "AgentReply.fuzz: accepted \(bytes.count) bytes")
        if let percent = reply.weightPercent { precondition((0...1000).contains(percent), "AgentReply.fuzz: \(percent)%") }
        if let text = reply.text {
            precondition(!text.isEmpty && !text.unicodeScalars.contains { $0.value < 0x20 && $0 != "\t" || $0.value == 0x7F },
                         "AgentReply.fuzz: text '\(text.debugDescription)' has control characters")
            let scalars = text.unicodeScalars
            precondition(scalars.first != " " && scalars.last != " " && scalars.first != "\t" && scalars.last != "\t",
                         "AgentReply.fuzz: text '\(text)' is not trimmed")
        }
        var words: [String] = []
        if let health = reply.health { words.append(health.rawValue) }
        if let adminState = reply.adminState { words.append(adminState.rawValue) }
        if let percent = reply.weightPercent { words.append("\(percent)%") }
        if let connections = reply.maxConnections { words.append("maxconn:\(connections)") }
        if let text = reply.text { words.append("# " + text) }
        // Invalid UTF-8 in the text comes back as U+FFFD (3 bytes each), which can carry the
        // written-back line past `maximumLength`: only a line within it must read back.
        let line = Array((words.joined(separator: " ") + "\n").utf8)
        if !words.isEmpty && line.count <= maximumLength {
            let again = try? parse(line)
            precondition(again == reply, "AgentReply.fuzz: \(words) parses to \(String(describing: again)), not \(reply)")
        }
        var verdict = AgentVerdict()
        verdict.apply(reply)
        precondition(!verdict.summary.contains("\n"), "AgentReply.fuzz: summary is not one line")
        for configured in [0, 1, 3, BackendSpec.maximumWeight] {
            let weight = AgentVerdict.weight(configured: configured, percent: reply.weightPercent ?? 100)
            precondition((0...BackendSpec.maximumWeight).contains(weight) && (configured > 0 || weight == 0),
                         "AgentReply.fuzz: weight \(weight) from \(configured) at \(reply.weightPercent ?? 100)%")
        }
    }
}
