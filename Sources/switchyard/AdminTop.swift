import FoundationEssentials
import Glibc
import SwitchyardCore
import SwitchyardIO

/// `switchyard admin top`: a full-screen view of the backends, refreshed every second from
/// `show backends json`, until `q` (or Ctrl-C, or the terminal going away).
enum AdminTop {
    static let interval = Duration.seconds(1)

    static func run(socketPath: String) -> Never {
        let terminal: RawTerminal
        do {
            terminal = try RawTerminal()
        } catch {
            writeError("switchyard admin top: \(error)\n")
            Glibc.exit(2)
        }
        var view = TopView()
        let clock = ContinuousClock()
        let start = clock.now
        while true {
            let polledAt = clock.now
            let status = poll(socketPath: socketPath, into: &view, at: polledAt - start)
            let size = terminal.size()
            let title = "switchyard admin top   \(socketPath)   \(timeOfDay())   q quits"
            let lines = view.screen(title: title, status: status, height: size.rows, columns: size.columns)
            // Home, each line cleared to its end, then everything below cleared: no flicker.
            terminal.write("\u{1B}[H" + lines.map { $0 + "\u{1B}[K" }.joined(separator: "\n") + "\u{1B}[J")
            while case let remaining = polledAt + interval - clock.now, remaining > .zero {
                guard let key = terminal.readByte(timeout: remaining) else { continue }
                switch key {
                case UInt8(ascii: "q"), UInt8(ascii: "Q"), 3, 4:  // q, Ctrl-C, Ctrl-D or end of input
                    terminal.restore()
                    Glibc.exit(0)
                default:
                    continue
                }
            }
        }
    }

    /// Polls once and feeds the view; returns the line to show when something went wrong.
    private static func poll(socketPath: String, into view: inout TopView, at time: Duration) -> String? {
        do {
            let (ok, reply) = try AdminClient.send(command: "show backends json", socketPath: socketPath, timeout: .seconds(2))
            let lines = reply.split(separator: "\n")
            guard ok, lines.count >= 2 else {
                return "switchyard answered: \(lines.first ?? "")"
            }
            let decoded = try JSONDecoder().decode(TopBackendsReply.self, from: Data(lines[1].utf8))
            view.update(decoded.backends, at: time)
            return nil
        } catch let error as AdminSocketError {
            return "cannot reach switchyard: \(error); retrying every second"
        } catch {
            return "cannot read the reply to 'show backends json': \(error)"
        }
    }

    /// `14:03:27`, local time.
    private static func timeOfDay() -> String {
        var now = time(nil)
        var parts = tm()
        localtime_r(&now, &parts)
        func two(_ value: Int32) -> String { value < 10 ? "0\(value)" : "\(value)" }
        return "\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec))"
    }
}
