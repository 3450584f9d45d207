import Foundation
import Glibc
import Synchronization

/// Long-lived connections through the proxy to `.identify` backends, each on its own thread
/// echoing generated chunks back and forth (every chunk compared byte for byte) until told to
/// finish, then half-closing and expecting the echo side to end cleanly.
///
/// Thread ownership: `init` and `finish` on the test's thread; each stream on its own thread.
final class LongStreams: Sendable {
    struct Outcome: CustomStringConvertible {
        var rounds = 0
        var bytes = 0
        var roundsAfterMark = 0
        var failure: String?

        var description: String { "\(rounds) rounds (\(roundsAfterMark) after the mark), \(bytes) bytes\(failure.map { ", failed: \($0)" } ?? "")" }
    }

    private let stop = StopSignal()
    private let mark = StopSignal()
    private let outcomes: Board
    private let tasks: [BackgroundTask]

    /// Opens `count` connections through `proxy` (each has read its backend's name before this
    /// returns), then starts streaming `chunk` bytes per round, pausing `pause` seconds between rounds.
    init(count: Int, through proxy: TCPEndpoint, chunk: Int = 16 << 10, pause: Double = 0.01) throws {
        var connections: [TCPConnection] = []
        for _ in 0..<count {
            let connection = try TCPConnection(to: proxy, timeout: 5)
            _ = try connection.receiveLine(timeout: 5)
            connections.append(connection)
        }
        let outcomes = Board(count: count)
        self.outcomes = outcomes
        let stop = self.stop
        let mark = self.mark
        tasks = connections.enumerated().map { index, connection in
            BackgroundTask {
                var generator = DeterministicBytes(seed: UInt64(1000 + index))
                let deadline = Date().addingTimeInterval(50)
                do {
                    while !stop.isRaised && Date() < deadline {
                        let bytes = generator.next(chunk)
                        try connection.roundTrip(bytes, timeout: 10)
                        outcomes.state.withLock {
                            $0[index].rounds += 1
                            $0[index].bytes += bytes.count
                            if mark.isRaised { $0[index].roundsAfterMark += 1 }
                        }
                        usleep(useconds_t(pause * 1_000_000))
                    }
                    try connection.shutdownWrite()
                    let end = connection.readToEnd(timeout: 10)
                    guard end.end == .endOfFile, end.checksum == Checksum() else {
                        throw HarnessError("after the half-close: \(end.end) with \(end.checksum) more")
                    }
                } catch {
                    outcomes.state.withLock { $0[index].failure = "\(error)" }
                }
                connection.close()
            }
        }
    }

    private final class Board: Sendable {
        let state: Mutex<[Outcome]>
        init(count: Int) { state = Mutex([Outcome](repeating: Outcome(), count: count)) }
    }

    /// Counts later rounds as after the mark (the takeover's commit).
    func setMark() { mark.raise() }

    /// The fewest rounds any stream made after the mark.
    var fewestRoundsAfterMark: Int { outcomes.state.withLock { $0.map(\.roundsAfterMark).min() ?? 0 } }

    /// Ends every stream (half-close, then EOF back) and returns how each went.
    func finish() -> [Outcome] {
        stop.raise()
        let joined = tasks.map { $0.join(timeout: 20) }
        return zip(outcomes.state.withLock { $0 }, joined).map { outcome, joinFailure in
            var result = outcome
            if let joinFailure { result.failure = result.failure ?? joinFailure }
            return result
        }
    }
}

extension AdminConnection {
    /// `show stats json` on this connection, as an object.
    func stats() throws -> [String: Any] {
        try command("show stats json").jsonObject()
    }
}

extension AdminSocket {
    /// `show stats json` on a new connection, as an object.
    func stats() throws -> [String: Any] {
        try send("show stats json").jsonObject()
    }
}
