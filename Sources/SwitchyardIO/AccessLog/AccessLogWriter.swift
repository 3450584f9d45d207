import CSwitchyard
import Glibc
import Logging
import SwitchyardCore
import Synchronization

/// Where access-log lines go (`--access-log stderr|PATH`).
public enum AccessLogDestination: Sendable, Equatable, CustomStringConvertible {
    case standardError
    /// Appended to; created with mode 0644 when missing; reopened by `AccessLogWriter.reopen()`.
    case file(String)

    /// `stderr` or a path, as the flag takes it.
    public init(_ text: String) {
        self = text == "stderr" ? .standardError : .file(text)
    }

    public var description: String {
        switch self {
        case .standardError: "stderr"
        case let .file(path): path
        }
    }
}

/// Why the access log could not be opened, as one line.
public struct AccessLogError: Error, Sendable, CustomStringConvertible {
    public var description: String
}

/// The access-log thread (`swy-accesslog`): drains every worker's `AccessLogQueue`, formats the
/// records and writes them, one `write(2)` per batch.
///
/// Workers never wait for it: each has its own bounded queue, and a record that finds its queue
/// full is dropped and counted (`droppedLines`, the `switchyard_access_log_dropped_lines_total`
/// metric), with a warning at most once a second. The thread wakes every `flushInterval` (50 ms
/// by default), so a queue of 4096 records absorbs bursts of about 80,000 closes a second per
/// worker before anything is dropped, and a stalled disk or a full stderr pipe costs lines,
/// never latency.
///
/// `reopen()` is logrotate's SIGUSR1 convention: the file is opened again by path on the next
/// turn, so lines go to the new file once the old one was renamed. If the path cannot be opened
/// then, the error is logged and lines keep going to the old file.
///
/// Thread safety: `queue(forWorker:)` hands each worker its queue; `start`, `reopen`, `stop`
/// and `droppedLines` from any thread.
public final class AccessLogWriter: Sendable {
    public let destination: AccessLogDestination
    public let format: AccessLogFormat
    private let queues: [AccessLogQueue]
    private let flushInterval: Duration
    private let logger: Logger
    private let control: LoopControl
    private let descriptor: Atomic<Int32>
    private let reopenRequested = Atomic<Bool>(false)
    private let started = Atomic<Bool>(false)
    private let stopped = Atomic<Bool>(false)
    /// When a write last failed, so that a full disk is reported once a second, not per batch.
    private let lastWriteError = Mutex<ContinuousClock.Instant?>(nil)

    /// Opens the destination at once (so a bad path fails at startup) and prepares one queue of
    /// `queueCapacity` records per worker. Call `start()` to begin writing.
    public init(
        destination: AccessLogDestination, format: AccessLogFormat, workers: Int, queueCapacity: Int = 4096,
        flushInterval: Duration = .milliseconds(50), logger: Logger = Logger(label: "switchyard.accesslog")
    ) throws(AccessLogError) {
        self.destination = destination
        self.format = format
        self.flushInterval = flushInterval
        self.logger = logger
        queues = (0..<max(workers, 1)).map { _ in AccessLogQueue(capacity: queueCapacity) }
        descriptor = Atomic(try Self.open(destination))
        do {
            control = try LoopControl()
        } catch {
            throw AccessLogError(description: "access log: \(error)")
        }
    }

    deinit { stop() }

    /// The queue worker `index` enqueues into (0-based, one per worker).
    public func queue(forWorker index: Int) -> AccessLogQueue {
        queues[index]
    }

    /// Lines dropped so far because a worker's queue was full.
    public var droppedLines: UInt64 {
        queues.reduce(0) { $0 &+ $1.droppedCount }
    }

    /// Starts the thread. Call once.
    public func start() throws(SystemCallError) {
        guard !started.exchange(true, ordering: .acquiringAndReleasing) else { return }
        try control.start(name: "swy-accesslog") { [self] in run() }
    }

    /// Reopens the file by path on the thread's next turn (SIGUSR1). Nothing for stderr.
    public func reopen() {
        reopenRequested.store(true, ordering: .releasing)
        control.wakeup.signal()
    }

    /// Writes every queued line, closes the file and ends the thread. Safe to call twice.
    public func stop() {
        guard !stopped.exchange(true, ordering: .acquiringAndReleasing) else { return }
        if started.load(ordering: .acquiring) {
            control.stop()
        } else {
            var buffer: [UInt8] = []
            flush(into: &buffer)
        }
        let fd = descriptor.exchange(-1, ordering: .acquiringAndReleasing)
        if fd > 2 { closeDescriptor(fd) }
    }

    private static func open(_ destination: AccessLogDestination) throws(AccessLogError) -> Int32 {
        switch destination {
        case .standardError:
            return 2
        case let .file(path):
            let fd = Descriptor.open(path, O_WRONLY | O_CREAT | O_APPEND, mode: 0o644)
            guard fd >= 0 else {
                throw AccessLogError(description: "cannot open access log \(path): \(Errno.describe(-fd))")
            }
            return fd
        }
    }

    /// The thread: wait for the interval (or a wake-up), reopen if asked, drain and write.
    private func run() {
        var buffer: [UInt8] = []
        buffer.reserveCapacity(64 * 1024)
        let clock = ContinuousClock()
        var lastWarning = clock.now - .seconds(2)
        var droppedAtLastWarning: UInt64 = 0
        let timeout = Int32(clamping: max(flushInterval.nanosecondsClamped / 1_000_000, 1))
        while !control.isStopping {
            var poller = pollfd(fd: control.wakeup.fd, events: Int16(POLLIN), revents: 0)
            if Descriptor.poll(&poller, timeout: timeout) > 0 { control.wakeup.drain() }
            if reopenRequested.exchange(false, ordering: .acquiringAndReleasing) { reopenFile() }
            flush(into: &buffer)
            let dropped = droppedLines
            if dropped != droppedAtLastWarning && clock.now - lastWarning >= .seconds(1) {
                logger.warning("access log: \(dropped - droppedAtLastWarning) lines dropped since the last warning: a worker's queue was full (\(queues[0].capacity) lines)")
                droppedAtLastWarning = dropped
                lastWarning = clock.now
            }
        }
        flush(into: &buffer)
    }

    private func reopenFile() {
        guard case let .file(path) = destination else { return }
        let fresh: Int32
        do {
            fresh = try Self.open(destination)
        } catch {
            logger.error("access log: \(error); still writing to the file opened before")
            return
        }
        let old = descriptor.exchange(fresh, ordering: .acquiringAndReleasing)
        if old > 2 { closeDescriptor(old) }
        logger.notice("access log: reopened \(path)")
    }

    /// Drains every queue and writes the lines with as few `write(2)` calls as the buffer allows.
    private func flush(into buffer: inout [UInt8]) {
        for queue in queues {
            queue.drain { record in
                format.append(record, to: &buffer)
                if buffer.count >= 60 * 1024 { writeOut(&buffer) }
            }
        }
        writeOut(&buffer)
    }

    /// Writes `buffer` whole (retrying short writes and EINTR) and empties it. A failed write
    /// loses the batch and is logged.
    private func writeOut(_ buffer: inout [UInt8]) {
        guard !buffer.isEmpty else { return }
        defer { buffer.removeAll(keepingCapacity: true) }
        let fd = descriptor.load(ordering: .acquiring)
        guard fd >= 0 else { return }
        var offset = 0
        while offset < buffer.count {
            let count = buffer.withUnsafeBytes { Descriptor.write(fd, UnsafeRawBufferPointer(rebasing: $0[offset...])) }
            if count > 0 {
                offset += count
            } else {
                let code = Int32(-count)
                let now = ContinuousClock.now
                let report = lastWriteError.withLock { last -> Bool in
                    if let last, now - last < .seconds(1) { return false }
                    last = now
                    return true
                }
                if report {
                    logger.error("access log: write to \(destination) failed: \(Errno.describe(code)); \(buffer.count - offset) bytes lost")
                }
                return
            }
        }
    }
}
