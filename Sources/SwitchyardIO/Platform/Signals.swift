import Glibc

/// The signals the main thread handles: SIGINT and SIGTERM stop, SIGHUP reloads, SIGUSR1
/// reopens the access log, SIGUSR2 starts a successor.
private func handledSignals() -> sigset_t {
    var set = sigset_t()
    sigemptyset(&set)
    for signal in [SIGINT, SIGTERM, SIGHUP, SIGUSR1, SIGUSR2] { sigaddset(&set, signal) }
    return set
}

/// Blocks SIGINT, SIGTERM, SIGHUP, SIGUSR1 and SIGUSR2 in the calling thread (and in every thread it starts
/// afterwards) so that only `waitForSignal` receives them, and ignores SIGPIPE: a peer that
/// goes away must produce EPIPE on the connection, not kill the process.
public func blockTerminationSignals() {
    signal(SIGPIPE, SIG_IGN)
    var set = handledSignals()
    pthread_sigmask(SIG_BLOCK, &set, nil)
}

/// Waits up to `timeout` for SIGINT, SIGTERM, SIGHUP, SIGUSR1 or SIGUSR2 (blocked by `blockTerminationSignals`);
/// returns the signal number, or nil on timeout.
public func waitForSignal(timeout: Duration) -> Int32? {
    var set = handledSignals()
    let nanoseconds = timeout.nanosecondsClamped
    var time = timespec(tv_sec: Int(nanoseconds / 1_000_000_000), tv_nsec: Int(nanoseconds % 1_000_000_000))
    let result = sigtimedwait(&set, nil, &time)
    return result > 0 ? result : nil
}
