/// What happened on a health probe's connection, fed to its `HealthDialog` in order.
public enum HealthDialogEvent: Sendable, Equatable {
    /// The TCP connect completed (and a PROXY header, if any, was sent).
    case connected
    /// The bytes of the last `.send` action were all written.
    case sent
    /// Bytes arrived (only after a `.receive` action).
    case received([UInt8])
    /// The backend closed its side (only after a `.receive` action).
    case closed
}

/// What a health probe's connection should do next.
public enum HealthDialogAction: Sendable, Equatable {
    /// Write these bytes, then report `.sent`.
    case send([UInt8])
    /// Wait for bytes or the backend's close.
    case receive
    /// The backend passed; the text is shown as the last check's text.
    case pass(String)
    /// The backend failed; the text names the failing step and what was read.
    case fail(String)
}

/// A health check's conversation with a backend, as a pure state machine: the checker connects,
/// then shuttles bytes in and out as the dialog asks, within the check's timeout, and closes the
/// connection once it passes or fails. One dialog value serves one probe.
///
/// Implementations: `HealthStepScript` (send/expect sequences, and the `redis`,
/// `redis-primary` and `smtp` checks built on them), `HTTPHealthDialog`, `PostgresHealthDialog`
/// and `MySQLHealthDialog`.
public protocol HealthDialog: Sendable {
    mutating func advance(_ event: HealthDialogEvent) -> HealthDialogAction
    /// What the dialog waits for and what it has read, for a timeout's message.
    var progress: String { get }
}

/// A dialog that sends one request (or nothing) once connected and judges the reply as it
/// grows: the HTTP, PostgreSQL and MySQL checks.
public protocol ReplyJudgingDialog: HealthDialog {
    /// Sent once connected; nil: the server speaks first.
    var request: [UInt8]? { get }
    /// Everything read so far.
    var reply: [UInt8] { get set }
    /// Pass, fail, or `.receive` for more; `closed`: the backend closed after `reply`.
    func verdict(closed: Bool) -> HealthDialogAction
}

extension ReplyJudgingDialog {
    public mutating func advance(_ event: HealthDialogEvent) -> HealthDialogAction {
        switch event {
        case .connected: return request.map { .send($0) } ?? .receive
        case .sent: return .receive
        case let .received(bytes):
            reply += bytes
            return verdict(closed: false)
        case .closed:
            return verdict(closed: true)
        }
    }
}

/// Printable text of reply bytes for messages: ASCII kept, others escaped, at most `limit`
/// bytes (80 by default; then `...`). Always one line.
public func healthPrintable(_ bytes: some Collection<UInt8>, limit: Int = 80) -> String {
    var text = ""
    for byte in bytes.prefix(limit) {
        switch byte {
        case 0x0D: text += "\\r"
        case 0x0A: text += "\\n"
        case 0x09: text += "\\t"
        case 0x20...0x7E where byte != UInt8(ascii: "\\"): text.append(Character(Unicode.Scalar(byte)))
        default: text += "\\x" + String(byte, radix: 16).leftPadded(to: 2)
        }
    }
    if bytes.count > limit { text += "..." }
    return text
}

/// A server's text (an error message, a version) for a verdict: on one line, nothing cut.
public func healthOneLine(_ text: some Collection<UInt8>) -> String {
    healthPrintable(text, limit: .max)
}

/// `read 'TEXT'` with the printable form of `bytes`, or `nothing read`: for progress messages.
public func healthReadText(_ bytes: some Collection<UInt8>) -> String {
    bytes.isEmpty ? "nothing read" : "read '\(healthPrintable(bytes))'"
}

extension String {
    func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
