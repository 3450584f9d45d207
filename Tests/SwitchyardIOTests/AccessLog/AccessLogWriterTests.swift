import Foundation
import Glibc
import Logging
import Synchronization
import SwitchyardCore
import SwitchyardIO
import Testing

/// A LogHandler that keeps every message, for asserting warnings.
struct CollectingLogHandler: LogHandler {
    let messages: Messages
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace

    final class Messages: Sendable {
        let lines = Mutex<[(Logger.Level, String)]>([])
        var all: [(Logger.Level, String)] { lines.withLock { $0 } }
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        messages.lines.withLock { $0.append((event.level, event.message.description)) }
    }

    static func logger() -> (Logger, Messages) {
        let messages = Messages()
        return (Logger(label: "test.accesslog") { _ in CollectingLogHandler(messages: messages) }, messages)
    }
}

@Suite struct AccessLogWriterTests {
    static func temporaryPath() -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("swy-accesslog-\(getpid())-\(UUID().uuidString).log").path
    }

    static func record(_ index: Int, cause: TerminationCause = .clientClose) -> AccessLogRecord {
        AccessLogRecord(
            acceptedAtNanoseconds: 1_796_127_171_443_000_000 + Int64(index) * 1_000_000,
            client: PeerAddress(ipv4: 127, 0, 0, 1, port: UInt16(40000 + index)),
            listener: "127.0.0.1:7000", service: "default", backend: "127.0.0.1:9001",
            connectNanoseconds: 100_000, durationNanoseconds: 2_000_000,
            bytesFromClient: UInt64(index), bytesToClient: UInt64(index * 2), retries: 0, cause: cause)
    }

    static func contents(_ path: String) -> String {
        (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
    }

    static func waitForLines(_ path: String, _ count: Int) -> Bool {
        timeUntil(.seconds(5)) { contents(path).split(separator: "\n").count >= count } != nil
    }

    @Test(arguments: AccessLogFormat.allCases)
    func writesExactlyOneLinePerRecordInOrder(format: AccessLogFormat) throws {
        let path = Self.temporaryPath()
        defer { unlink(path) }
        let writer = try AccessLogWriter(destination: .file(path), format: format, workers: 2)
        var expected = ""
        for index in 0..<3 {
            #expect(writer.queue(forWorker: 0).enqueue(Self.record(index)))
            expected += format.line(for: Self.record(index))
        }
        for index in 3..<5 {
            #expect(writer.queue(forWorker: 1).enqueue(Self.record(index, cause: .backendReset)))
            expected += format.line(for: Self.record(index, cause: .backendReset))
        }
        try writer.start()
        #expect(Self.waitForLines(path, 5))
        // Records enqueued while the thread runs are written too.
        writer.queue(forWorker: 1).enqueue(Self.record(5, cause: .idleTimeout))
        expected += format.line(for: Self.record(5, cause: .idleTimeout))
        writer.stop()
        #expect(Self.contents(path) == expected)
        #expect(writer.droppedLines == 0)
    }

    @Test func recordsAreDroppedAndCountedWhenTheConsumerIsStalled() throws {
        let path = Self.temporaryPath()
        defer { unlink(path) }
        let (logger, messages) = CollectingLogHandler.logger()
        let writer = try AccessLogWriter(destination: .file(path), format: .text, workers: 1, queueCapacity: 8, logger: logger)
        let queue = writer.queue(forWorker: 0)
        #expect(queue.capacity == 8)
        // The thread is not started: nothing drains, so the ninth record on finds the ring full.
        let accepted = (0..<12).map { queue.enqueue(Self.record($0)) }
        #expect(accepted == Array(repeating: true, count: 8) + Array(repeating: false, count: 4))
        #expect(writer.droppedLines == 4)
        try writer.start()
        #expect(Self.waitForLines(path, 8))
        #expect(timeUntil(.seconds(5)) { messages.all.contains { $0.0 == .warning } } != nil)
        // More drops within the same second: counted, but no second warning yet.
        for index in 0..<20 { queue.enqueue(Self.record(100 + index)) }
        usleep(200_000)
        writer.stop()
        let lines = Self.contents(path).split(separator: "\n")
        #expect(lines.count + Int(writer.droppedLines) == 8 + 4 + 20)
        #expect(lines.prefix(8).map { String($0) + "\n" } == (0..<8).map { AccessLogFormat.text.line(for: Self.record($0)) })
        let warnings = messages.all.filter { $0.0 == .warning }
        #expect(warnings.count == 1)
        #expect(warnings.first?.1 == "access log: 4 lines dropped since the last warning: a worker's queue was full (8 lines)")
    }

    @Test func reopenAfterRenameWritesToTheNewFile() throws {
        let path = Self.temporaryPath()
        let rotated = path + ".1"
        defer { unlink(path); unlink(rotated) }
        let (logger, messages) = CollectingLogHandler.logger()
        let writer = try AccessLogWriter(destination: .file(path), format: .json, workers: 1, logger: logger)
        try writer.start()
        let queue = writer.queue(forWorker: 0)
        for index in 0..<3 { queue.enqueue(Self.record(index)) }
        #expect(Self.waitForLines(path, 3))
        #expect(rename(path, rotated) == 0)
        // Before the reopen, lines still go to the renamed file (the same open file).
        queue.enqueue(Self.record(3))
        #expect(Self.waitForLines(rotated, 4))
        writer.reopen()
        #expect(timeUntil(.seconds(5)) { FileManager.default.fileExists(atPath: path) } != nil)
        for index in 4..<6 { queue.enqueue(Self.record(index)) }
        #expect(Self.waitForLines(path, 2))
        writer.stop()
        #expect(Self.contents(rotated) == (0..<4).map { AccessLogFormat.json.line(for: Self.record($0)) }.joined())
        #expect(Self.contents(path) == (4..<6).map { AccessLogFormat.json.line(for: Self.record($0)) }.joined())
        #expect(messages.all.contains { $0.0 == .notice && $0.1 == "access log: reopened \(path)" })
    }

    @Test func reopenThatFailsKeepsWritingToTheOldFile() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("swy-accesslog-dir-\(getpid())-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let path = directory.appendingPathComponent("access.log").path
        let moved = FileManager.default.temporaryDirectory.appendingPathComponent("swy-accesslog-moved-\(getpid())-\(UUID().uuidString).log").path
        defer { unlink(path); unlink(moved); rmdir(directory.path) }
        let (logger, messages) = CollectingLogHandler.logger()
        let writer = try AccessLogWriter(destination: .file(path), format: .text, workers: 1, logger: logger)
        try writer.start()
        #expect(rename(path, moved) == 0)
        #expect(rmdir(directory.path) == 0)  // the path can no longer be created
        writer.reopen()
        #expect(timeUntil(.seconds(5)) { messages.all.contains { $0.0 == .error } } != nil)
        writer.queue(forWorker: 0).enqueue(Self.record(0))
        #expect(Self.waitForLines(moved, 1))
        writer.stop()
        #expect(messages.all.first { $0.0 == .error }?.1.hasPrefix("access log: cannot open access log \(path): No such file or directory (ENOENT)") == true)
    }

    @Test func aPathThatCannotBeOpenedFailsWithOneLine() {
        #expect {
            _ = try AccessLogWriter(destination: .file("/nonexistent-dir/access.log"), format: .text, workers: 1)
        } throws: { error in
            "\(error)" == "cannot open access log /nonexistent-dir/access.log: No such file or directory (ENOENT)"
        }
    }

    @Test func destinationParsesTheFlagValue() {
        #expect(AccessLogDestination("stderr") == .standardError)
        #expect(AccessLogDestination("/var/log/switchyard.log") == .file("/var/log/switchyard.log"))
    }
}

@Suite struct PublishedFiguresTests {
    @Test func collectSumsTheLatestCopyOfEachWorker() {
        let published = PublishedFigures(workers: 3, initial: ConnectionFigures())
        var worker0 = ConnectionFigures()
        worker0.accepted = 4
        worker0.recordClose(.clientClose, sessionNanoseconds: 1_000_000)
        published.publish(worker: 0, worker0)
        worker0.accepted = 6  // not yet published: the scrape sees the older copy
        var worker2 = ConnectionFigures()
        worker2.accepted = 1
        published.publish(worker: 2) { $0 = worker2 }
        let merged = published.merged()
        #expect(merged.accepted == 5)
        #expect(merged.closed(.clientClose) == 1)
        #expect(merged.sessionDuration.count == 1)
        #expect(published.collect().map(\.accepted) == [4, 0, 1])
    }
}
