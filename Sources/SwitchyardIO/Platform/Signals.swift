import Glibc

/// Blocks SIGINT, SIGTERM, SIGHUP, SIGUSR1 and SIGUSR2 in the calling thread (and in every thread it starts
/// afterwards) so that only `waitForSignal` receives them, and ignores SIGPIPE: a peer that
/// goes away must produce EPIPE on the connection, not kill the process.
public func blockTerminationSignals() {
    signal(SIGPIPE, SIG_IGN)
    var set = sigset_t()
    sigemptyset(&set)
    sigaddset(&set, SIGINT)
    sigaddset(&set, SIGTERM)
    sigaddset(&set, SIGHUP)
    sigaddset(&set, SIGUSR1)
    sigaddset(&set, SIGUSR2)
    pthread_sigmask(SIG_BLOCK, &set, nil)
}

/// Waits up to `timeout` for SIGINT, SIGTERM, SIGHUP, SIGUSR1 or SIGUSR2 (blocked by `blockTerminationSignals`);
/// returns the signal number, or nil on timeout.
public func waitForSignal(timeout: Duration) -> Int32? {
    var set = sigset_t()
    sigemptyset(&set)
    sigaddset(&set, SIGINT)
    sigaddset(&set, SIGTERM)
    sigaddset(&set, SIGHUP)
    sigaddset(&set, SIGUSR1)
    sigaddset(&set, SIGUSR2)
    let nanoseconds = timeout.nanosecondsClamped
    var time = timespec(tv_sec: Int(nanoseconds / 1_000_000_000), tv_nsec: Int(nanoseconds % 1_000_000_000))
    let result = sigtimedwait(&set, nil, &time)
    return result > 0 ? result : nil
}
