/// The `http` check: one request (`Connection: close`), then the status line's code must lie in
/// `status` and, when `body` is set, the body must contain it.
public struct HTTPHealthDialog: ReplyJudgingDialog {
    public let request: [UInt8]?
    public let status: ClosedRange<Int>
    public let body: [UInt8]?
    public var reply: [UInt8] = []

    public init(method: String = "GET", path: String = "/", host: String, status: ClosedRange<Int> = 200...399, body: String? = nil) {
        request = Array("\(method) \(path) HTTP/1.1\r\nHost: \(host)\r\nUser-Agent: switchyard-health\r\nConnection: close\r\n\r\n".utf8)
        self.status = status
        self.body = body.map { Array($0.utf8) }
    }

    /// `200-399` or `200` as an inclusive range of status codes from 100 to 599.
    public static func parseStatusRange(_ text: String) throws(ConfigError) -> ClosedRange<Int> {
        let parts = text.split(separator: "-", maxSplits: 1, omittingEmptySubsequences: false).map { Int($0) }
        guard let low = parts.first ?? nil, let high = parts.count == 2 ? parts[1] : low,
              (100...599).contains(low), (100...599).contains(high), low <= high else {
            throw ConfigError("health check status '\(text)' must be a code or a range such as 200-399 (100 to 599)")
        }
        return low...high
    }

    public var progress: String {
        "waiting for an HTTP status \(status.lowerBound)-\(status.upperBound); \(healthReadText(reply))"
    }

    public func verdict(closed: Bool) -> HealthDialogAction {
        guard let lineEnd = HealthStepScript.endOfFirst([0x0D, 0x0A], in: reply) else {
            if closed || reply.count >= HealthCheckConfig.maximumReply { return .fail("no HTTP status line: '\(healthPrintable(reply))'") }
            return .receive
        }
        let line = healthOneLine(reply[..<(lineEnd - 2)])
        let words = line.split(separator: " ", maxSplits: 2)
        guard words.count >= 2, words[0].hasPrefix("HTTP/1."), words[1].count == 3, let code = Int(words[1]) else {
            return .fail("not an HTTP status line: '\(healthPrintable(reply[..<(lineEnd - 2)]))'")
        }
        guard status.contains(code) else { return .fail("HTTP \(line.dropFirst(9))") }
        guard let body else { return .pass("HTTP \(line.dropFirst(9))") }
        if let headerEnd = HealthStepScript.endOfFirst(Array("\r\n\r\n".utf8), in: reply),
           HealthStepScript.endOfFirst(body, in: Array(reply[headerEnd...])) != nil {
            return .pass("HTTP \(code), body has '\(healthPrintable(body))'")
        }
        if closed || reply.count >= HealthCheckConfig.maximumReply {
            return .fail("HTTP \(code) but the body lacks '\(healthPrintable(body))'")
        }
        return .receive
    }
}
