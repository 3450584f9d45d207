import CSwitchyard
import Glibc

private final class ThreadBody {
    let body: () -> Void
    init(_ body: @escaping () -> Void) { self.body = body }
}

/// Starts a joinable POSIX thread running `body`, named `name` (at most 15 characters show).
///
/// Started from an ordinary function: Swift 6 closures created in top-level code crashed when
/// the thread started (see shared/IO_URING.md).
public func startThread(name: String, _ body: @escaping @Sendable () -> Void) -> pthread_t {
    let threadName = String(name.prefix(15))
    let box = Unmanaged.passRetained(ThreadBody {
        _ = swy_set_thread_name(threadName)
        body()
    }).toOpaque()
    var thread = pthread_t()
    let result = pthread_create(&thread, nil, { argument in
        let box = Unmanaged<ThreadBody>.fromOpaque(argument!).takeRetainedValue()
        box.body()
        return nil
    }, box)
    precondition(result == 0, "pthread_create: \(String(cString: strerror(result)))")
    return thread
}

/// Blocks SIGINT, SIGTERM and SIGHUP in the calling thread (and in every thread it starts
/// afterwards) so that only `waitForSignal` receives them, and ignores SIGPIPE: a peer that
/// goes away must produce EPIPE on the connection, not kill the process.
public func blockTerminationSignals() {
    signal(SIGPIPE, SIG_IGN)
    var set = sigset_t()
    sigemptyset(&set)
    sigaddset(&set, SIGINT)
    sigaddset(&set, SIGTERM)
    sigaddset(&set, SIGHUP)
    pthread_sigmask(SIG_BLOCK, &set, nil)
}

/// Waits up to `timeout` for SIGINT, SIGTERM or SIGHUP (blocked by `blockTerminationSignals`);
/// returns the signal number, or nil on timeout.
public func waitForSignal(timeout: Duration) -> Int32? {
    var set = sigset_t()
    sigemptyset(&set)
    sigaddset(&set, SIGINT)
    sigaddset(&set, SIGTERM)
    sigaddset(&set, SIGHUP)
    let nanoseconds = timeout.nanosecondsClamped
    var time = timespec(tv_sec: Int(nanoseconds / 1_000_000_000), tv_nsec: Int(nanoseconds % 1_000_000_000))
    let result = sigtimedwait(&set, nil, &time)
    return result > 0 ? result : nil
}
