import Foundation
import Synchronization

/// Runs `body(0..<jobs)` on `parallelism` threads (each takes the next job index when free)
/// and returns a description of every failure, including jobs not finished within `timeout`.
/// Threads of a job that overruns are left to finish on their own; socket timeouts bound them.
func runInParallel(
    jobs: Int,
    parallelism: Int,
    timeout: Double,
    _ body: @escaping @Sendable (Int) throws -> Void
) -> [String] {
    struct Progress {
        var nextJob = 0
        var finishedJobs = 0
        var failures: [String] = []
    }
    let progress = Mutex(Progress())
    for _ in 0..<min(parallelism, jobs) {
        let thread = Thread {
            while true {
                let job: Int? = progress.withLock { state in
                    guard state.nextJob < jobs else { return nil }
                    defer { state.nextJob += 1 }
                    return state.nextJob
                }
                guard let job else { return }
                var failure: String?
                do { try body(job) } catch { failure = "job \(job): \(error)" }
                progress.withLock { state in
                    state.finishedJobs += 1
                    if let failure { state.failures.append(failure) }
                }
            }
        }
        thread.stackSize = 1 << 20
        thread.start()
    }
    let deadline = Date().addingTimeInterval(timeout)
    while true {
        let (finished, failures) = progress.withLock { ($0.finishedJobs, $0.failures) }
        if finished == jobs { return failures }
        if Date() > deadline {
            return failures + ["\(jobs - finished) of \(jobs) jobs did not finish within \(timeout) s"]
        }
        usleep(5_000)
    }
}

/// Polls `condition` every `interval` seconds until it holds (true) or `timeout` passes (false).
func eventually(timeout: Double, interval: Double = 0.02, _ condition: () -> Bool) -> Bool {
    let deadline = Date().addingTimeInterval(timeout)
    while true {
        if condition() { return true }
        if Date() > deadline { return false }
        usleep(useconds_t(interval * 1_000_000))
    }
}

/// Runs `body` on a new thread; `join` waits up to a timeout and returns its error, if any.
final class BackgroundTask: Sendable {
    private let outcome = Mutex<Result<Void, any Error>?>(nil)

    init(_ body: @escaping @Sendable () throws -> Void) {
        let thread = Thread { [self] in
            let result = Result { try body() }
            outcome.withLock { $0 = result }
        }
        thread.stackSize = 1 << 20
        thread.start()
    }

    /// Nil if the task finished without error; otherwise what went wrong.
    func join(timeout: Double) -> String? {
        guard eventually(timeout: timeout, interval: 0.005, { outcome.withLock { $0 != nil } }) else {
            return "did not finish within \(timeout) s"
        }
        return outcome.withLock { result -> String? in
            if case .failure(let error) = result { return "\(error)" }
            return nil
        }
    }
}
