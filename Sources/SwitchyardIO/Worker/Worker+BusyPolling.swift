import Glibc
import SwitchyardCore

// `busy-polling`: before sleeping in io_uring_enter, spin for a short window that adapts to the
// gaps between completions (BusyPollingPolicy), so that a completion arriving a few microseconds
// after the queue ran dry is handled by a worker that is still awake: no sleep, no wake-up.
extension Worker {
    /// Submits what this loop turn queued and returns once completions are ready to drain.
    ///
    /// Without busy polling: one `io_uring_enter` that submits and sleeps until a completion.
    /// With it, while the window is open: one enter that submits and runs waiting completions
    /// without sleeping (none when nothing is queued or waiting); if no completion came, a spin
    /// that reads the rings' shared memory (the CQ tail and `IORING_SQ_TASKRUN`) until the window
    /// closes, entering only when the kernel has something; then, if still nothing, the sleeping
    /// enter. The wait's length adapts the window.
    func submitAndAwaitCompletions() throws(SystemCallError) {
        guard var policy = busyPolling else {
            try ring.submitAndWait()
            return
        }
        defer { busyPolling = policy }
        let began = Worker.monotonicNanoseconds()
        if policy.window > 0 {
            if ring.hasQueuedEntries || ring.hasPendingWork {
                try ring.submitWithoutWaiting()
                if ring.hasCompletions { return }
            }
            let deadline = began + policy.window
            while Worker.monotonicNanoseconds() < deadline {
                guard ring.hasPendingWork else { continue }
                try ring.submitWithoutWaiting()
                if ring.hasCompletions { return }
            }
        }
        try ring.submitAndWait()
        policy.waited(nanoseconds: Worker.monotonicNanoseconds() - began)
    }

    /// CLOCK_MONOTONIC in nanoseconds (vDSO: no system call).
    static func monotonicNanoseconds() -> Int64 {
        var time = Glibc.timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return Int64(time.tv_sec) * 1_000_000_000 + Int64(time.tv_nsec)
    }
}
