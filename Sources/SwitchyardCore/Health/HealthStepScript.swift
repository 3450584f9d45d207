/// One step of a `health: {steps: [...]}` sequence.
public enum HealthStep: Sendable, Equatable {
    /// Write these bytes (from `send` text with escapes, or `send-hex`).
    case send([UInt8])
    /// Read until the expectation holds, the reply limit is reached, or the backend closes.
    case expect(HealthExpectation)

    var summary: String {
        switch self {
        case let .send(bytes): "send '\(healthPrintable(bytes))'"
        case let .expect(expectation): "expect \(expectation.summary)"
        }
    }
}

/// What an `expect` step waits for.
public struct HealthExpectation: Sendable, Equatable {
    public enum Pattern: Sendable, Equatable {
        /// Bytes (from `string` text with escapes, or `hex`).
        case bytes([UInt8])
        /// A regular expression over the reply read as text (UTF-8, invalid bytes replaced).
        case regex(String)
        /// The backend closes the connection (anything it sends first is ignored).
        case close
    }

    /// How the pattern must stand in the reply read for this step.
    public enum Match: String, Sendable, CaseIterable {
        /// Anywhere in the reply.
        case contains
        /// At its start.
        case prefix
        /// The whole reply (read until the backend closes or the pattern is exceeded).
        case match
    }

    public var pattern: Pattern
    public var match: Match

    public init(_ pattern: Pattern, match: Match = .contains) {
        self.pattern = pattern
        self.match = match
    }

    var summary: String {
        switch pattern {
        case let .bytes(bytes): "\(match.rawValue) '\(healthPrintable(bytes))'"
        case let .regex(source): "\(match.rawValue) /\(Self.oneLine(source))/"
        case .close: "close"
        }
    }

    /// A regex's source as written, but for control characters (a newline from a YAML `\n`),
    /// escaped so that a verdict naming the step stays one line.
    private static func oneLine(_ source: String) -> String {
        var text = ""
        for scalar in source.unicodeScalars {
            if scalar.value < 0x20 || scalar.value == 0x7F {
                text += healthPrintable([UInt8(scalar.value)])
            } else {
                text.unicodeScalars.append(scalar)
            }
        }
        return text
    }

    /// Throws unless a regex compiles and a byte pattern is neither empty nor over the limit.
    public func validate() throws(ConfigError) {
        switch pattern {
        case let .bytes(bytes):
            guard !bytes.isEmpty else { throw ConfigError("health check expect text is empty") }
            guard bytes.count <= HealthCheckConfig.maximumReply else {
                throw ConfigError("health check expect text is longer than \(HealthCheckConfig.maximumReply) bytes")
            }
        case let .regex(source):
            guard !source.isEmpty else { throw ConfigError("health check regex is empty") }
            do { _ = try Regex(source) } catch {
                throw ConfigError("health check regex /\(source)/ does not compile: \(error)")
            }
        case .close:
            break
        }
    }
}

/// A send/expect sequence run in order within the check's timeout: HAProxy's `tcp-check`.
///
/// Bytes read for one `expect` step are matched as they arrive; once it holds, what came after
/// the matched part is kept for a following `expect` step (a reply may hold two things to
/// check), and dropped when a `send` step comes first (it is not the answer to that send). A step fails on a reply that cannot match any more, on a close before it matched,
/// or at `HealthCheckConfig.maximumReply` bytes; the failure names the step and what was read.
public struct HealthStepScript: HealthDialog {
    public let steps: [HealthStep]
    /// Shown on success, e.g. `+PONG`; nil shows "N steps passed".
    public let passText: String?
    private var index = 0
    private var pending: [UInt8] = []
    private var lastMatched = ""
    /// The backend has closed: every later `expect` is judged on what was read, never waits.
    private var closed = false

    public init(_ steps: [HealthStep], passText: String? = nil) {
        self.steps = steps
        self.passText = passText
    }

    public var progress: String {
        guard index < steps.count else { return "all steps passed" }
        return "step \(index + 1) (\(steps[index].summary)); \(healthReadText(pending))"
    }

    public mutating func advance(_ event: HealthDialogEvent) -> HealthDialogAction {
        switch event {
        case .connected, .sent:
            if case .sent = event { index += 1 }
            return next()
        case let .received(bytes):
            pending += bytes
            return evaluate(closed: false)
        case .closed:
            closed = true
            return evaluate(closed: true)
        }
    }

    /// Starts the step at `index`: a send, or an expect that may already hold on kept bytes.
    private mutating func next() -> HealthDialogAction {
        guard index < steps.count else { return .pass(passText ?? "\(steps.count) step\(steps.count == 1 ? "" : "s") passed") }
        switch steps[index] {
        case let .send(bytes):
            // What an earlier reply left unread is not an answer to this request (HAProxy's
            // tcp-check empties its input buffer the same way).
            pending.removeAll()
            return .send(bytes)
        case .expect: return pending.isEmpty && !closed ? .receive : evaluate(closed: closed)
        }
    }

    private mutating func evaluate(closed: Bool) -> HealthDialogAction {
        guard index < steps.count, case let .expect(expectation) = steps[index] else {
            // Bytes or a close while sending: keep them for the next expect; a close is final.
            return closed ? .fail("closed by the backend before \(progress)") : .receive
        }
        switch Self.check(expectation, against: pending, closed: closed) {
        case let .matched(consumed):
            lastMatched = healthPrintable(pending.prefix(consumed))
            pending.removeFirst(min(consumed, pending.count))
            index += 1
            return next()
        case .wait:
            if pending.count >= HealthCheckConfig.maximumReply {
                return .fail("step \(index + 1) (\(steps[index].summary)): no match in \(pending.count) bytes: '\(healthPrintable(pending))'")
            }
            return .receive
        case .mismatch:
            let end = closed ? " (then closed)" : ""
            let got = pending.isEmpty ? "nothing" : "'\(healthPrintable(pending))'"
            return .fail("step \(index + 1) (\(steps[index].summary)): got \(got)\(end)")
        }
    }

    enum Verdict: Equatable {
        /// Holds; the first `consumed` bytes belong to this step.
        case matched(consumed: Int)
        case wait
        case mismatch
    }

    /// Whether `expectation` holds on `reply`, needs more, or cannot hold any more.
    static func check(_ expectation: HealthExpectation, against reply: [UInt8], closed: Bool) -> Verdict {
        switch expectation.pattern {
        case .close:
            return closed ? .matched(consumed: reply.count) : .wait
        case let .bytes(pattern):
            switch expectation.match {
            case .prefix:
                if reply.count >= pattern.count { return reply.starts(with: pattern) ? .matched(consumed: pattern.count) : .mismatch }
                return pattern.starts(with: reply) && !closed ? .wait : .mismatch
            case .match:
                if reply.count > pattern.count || (closed && reply != pattern) { return .mismatch }
                if reply == pattern && closed { return .matched(consumed: reply.count) }
                return pattern.starts(with: reply) ? .wait : .mismatch
            case .contains:
                if let end = endOfFirst(pattern, in: reply) { return .matched(consumed: end) }
                return closed ? .mismatch : .wait
            }
        case let .regex(source):
            // Unicode scalars, not characters: "\r\n" must stay two things for `\n` to match.
            guard let regex = try? Regex(source).matchingSemantics(.unicodeScalar) else { return .mismatch }
            let text = String(decoding: reply, as: UTF8.self)
            switch expectation.match {
            case .contains:
                if let found = try? regex.firstMatch(in: text) {
                    return .matched(consumed: text.utf8.distance(from: text.startIndex, to: found.range.upperBound))
                }
            case .prefix:
                if let found = try? regex.prefixMatch(in: text) {
                    return .matched(consumed: text.utf8.distance(from: text.startIndex, to: found.range.upperBound))
                }
            case .match:
                if closed, (try? regex.wholeMatch(in: text)) != nil { return .matched(consumed: reply.count) }
            }
            return closed ? .mismatch : .wait
        }
    }

    /// The index just past the first occurrence of `pattern` in `reply`.
    static func endOfFirst(_ pattern: [UInt8], in reply: [UInt8]) -> Int? {
        guard !pattern.isEmpty, reply.count >= pattern.count else { return nil }
        for start in 0...(reply.count - pattern.count) where reply[start] == pattern[0] {
            if reply[start..<(start + pattern.count)].elementsEqual(pattern) { return start + pattern.count }
        }
        return nil
    }
}
