import CSwitchyard
import Glibc
import Logging
import Synchronization
import SwitchyardCore

/// Starts the workers and coordinates shutdown.
///
/// Thread ownership: created and driven by the main thread; workers run on their own threads and
/// communicate through `WorkerContext` and their wake-up eventfds.
public final class WorkerGroup {
    private let context: WorkerContext
    private let workerCount: Int
    private var wakeFDs: [Int32] = []
    private var threads: [ControlThread] = []
    private let status = WorkerStatus()

    public init(context: WorkerContext) {
        self.context = context
        self.workerCount = context.workerCount
    }

    deinit {
        // Closed only here: the control threads may still wake workers until they are stopped.
        for fd in wakeFDs { closeDescriptor(fd) }
    }

    /// Raises the soft descriptor limit to the hard one; returns the new soft limit.
    public static func raiseDescriptorLimit() -> Int {
        var limit = rlimit()
        guard systemCallResult({ Int(getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)) }) == 0 else { return 1024 }
        if limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max
            _ = systemCallResult { Int(setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)) }
            _ = systemCallResult { Int(getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)) }
        }
        return Int(clamping: limit.rlim_cur)
    }

    /// Starts the workers and waits until each has its ring; they take their listeners from
    /// `context.listeners`. Throws a message fit for one startup error line.
    public func start() throws(ConfigError) {
        do {
            try probeIOUring()
        } catch {
            throw ConfigError("io_uring is unavailable: \(error) (is kernel.io_uring_disabled set, or a seccomp filter in place?)")
        }
        for _ in 0..<workerCount {
            do {
                wakeFDs.append(try systemCall("eventfd") { eventfd(0, Int32(EFD_CLOEXEC)) })
            } catch {
                throw ConfigError("cannot start workers: \(error)")
            }
        }
        context.workerWakeFDs.withLock { [wakeFDs] in $0 = wakeFDs }
        for worker in 0..<workerCount {
            let wake = wakeFDs[worker]
            let context = self.context
            let status = self.status
            do {
                threads.append(try ControlThread(name: "swy-worker-\(worker)") {
                    WorkerGroup.runWorker(index: worker, context: context, wakeFD: wake, status: status)
                })
            } catch {
                throw ConfigError("cannot start workers: \(error)")
            }
        }
        let deadline = ContinuousClock.now + .seconds(10)
        while status.ready.load(ordering: .acquiring) + status.finished.load(ordering: .acquiring) < workerCount
            && ContinuousClock.now < deadline {
            usleep(1000)
        }
        if let failure = status.failure.withLock({ $0 }) {
            context.stopAccepting.store(true, ordering: .releasing)
            wakeAll()
            throw ConfigError("cannot start a worker: \(failure)")
        }
    }

    private static func runWorker(index: Int, context: WorkerContext, wakeFD: Int32, status: WorkerStatus) {
        defer { status.finished.add(1, ordering: .releasing) }
        let worker: Worker
        do {
            worker = try Worker(index: index, context: context, wakeFD: wakeFD)
        } catch {
            status.failure.withLock { $0 = $0 ?? "\(error)" }
            return
        }
        status.ready.add(1, ordering: .releasing)
        do {
            try worker.run()
        } catch {
            context.logger.critical("worker \(index) stopped: \(error)")
            exit(1)
        }
    }

    /// Wakes every worker so that it looks at the server state and the registry now.
    public func wakeAll() {
        waker.wake()
    }

    /// A handle any thread may use to wake the workers (valid once `start` returned, until the
    /// workers exit).
    public var waker: WorkerWaker { WorkerWaker(fds: wakeFDs) }

    /// Stops accepting, gives open connections `grace` to finish (a SIGINT or SIGTERM during it
    /// ends it early), closes the rest and returns once every worker has exited.
    public func stop(grace: Duration) {
        context.stopAccepting.store(true, ordering: .releasing)
        wakeAll()
        let deadline = ContinuousClock.now + grace
        while status.finished.load(ordering: .acquiring) < workerCount {
            if ContinuousClock.now >= deadline { break }
            if let signal = waitForSignal(timeout: .milliseconds(20)), signal == SIGINT || signal == SIGTERM {
                context.logger.notice("second signal: closing open connections now")
                break
            }
        }
        if status.finished.load(ordering: .acquiring) < workerCount {
            let open = context.openConnections.load(ordering: .relaxed)
            if open > 0 { context.logger.notice("closing \(open) connection(s) still open") }
            context.closeEverything.store(true, ordering: .releasing)
            wakeAll()
        }
        // Every worker closes its connections within a loop turn or two; should one not return,
        // exit anyway rather than hang a service manager's stop.
        let hardDeadline = ContinuousClock.now + .seconds(5)
        while status.finished.load(ordering: .acquiring) < workerCount && ContinuousClock.now < hardDeadline {
            usleep(10_000)
        }
        if status.finished.load(ordering: .acquiring) < workerCount {
            context.logger.error("a worker did not stop within 5s of closing its connections; exiting anyway")
            return
        }
        for thread in threads { thread.join() }
        context.logger.notice("stopped")
    }
}

/// How far the workers got: started their ring, or finished (or failed to start).
private final class WorkerStatus: Sendable {
    let ready = Atomic<Int>(0)
    let finished = Atomic<Int>(0)
    let failure = Mutex<String?>(nil)
}

/// Wakes workers through their eventfds; safe from any thread.
public struct WorkerWaker: Sendable {
    let fds: [Int32]

    public func wake() {
        for fd in fds { Descriptor.signalEvent(fd) }
    }
}
