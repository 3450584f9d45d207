/// Scrapes `/metrics` on `endpoint` until `holds` is true of the exposition, for at most
/// `timeout` seconds (workers publish their figures on each tick, so counts lag a little).
/// Returns whether it held, and the last scrape's lines that contain any of `showing`, for the
/// expectation's message.
func scrapeUntil(_ endpoint: TCPEndpoint, timeout: Double = 5, showing: [String],
                 _ holds: (String) -> Bool) -> (held: Bool, lines: String) {
    var text = ""
    let held = eventually(timeout: timeout, interval: 0.1) {
        text = (try? httpGet(endpoint, "/metrics")) ?? ""
        return holds(text)
    }
    let lines = text.split(separator: "\n").filter { line in !line.hasPrefix("#") && showing.contains { line.contains($0) } }
    return (held, lines.joined(separator: "\n"))
}
