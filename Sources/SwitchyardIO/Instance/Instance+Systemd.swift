import Glibc
import SwitchyardCore

// systemd's notification protocol (`Type=notify`, sd_notify(3)), sent through `SystemdNotifier`
// when `NOTIFY_SOCKET` is set: READY=1 once every listener accepts and the admin socket is up
// (with MAINPID= from a process that took over), RELOADING=1 with MONOTONIC_USEC= then READY=1
// around a reload (`reload()`), STOPPING=1 at SIGTERM/SIGINT (never from a process that was
// taken over: the service goes on), and a STATUS= line with the connection counts every few
// seconds (`serve()`).
extension Instance {
    /// How often `serve()` refreshes the STATUS= line.
    static let statusInterval = Duration.seconds(5)

    /// The one-line status `systemctl status` shows.
    func statusText() -> String {
        let open = context.openConnections.load(ordering: .relaxed)
        let total = context.totalConnections.load(ordering: .relaxed)
        if let successor = takeover.successor {
            return "taken over by pid \(successor); \(open) open connection(s) finishing"
        }
        if context.stopAccepting.load(ordering: .relaxed) {
            return "stopping; \(open) open connection(s) finishing"
        }
        let listeners = Self.unique(state.withLock { $0.listeners }.map(\.endpoint.description)).count
        return "\(open) open connection(s), \(total) accepted; \(listeners) listener(s), \(context.workerCount) worker(s)"
    }

    /// Sends STATUS= when the last one is `statusInterval` old (main thread, each `serve()` turn).
    func reportStatusIfDue() {
        systemd.statusIfDue(every: Self.statusInterval) { statusText() }
    }

    /// READY=1 once every worker accepts on every listener (the admin socket is up when this
    /// runs); after a takeover MAINPID= too, so that systemd follows this process.
    func announceReady(takeover session: TakeoverSession?) {
        guard systemd.isEnabled else { return }
        if !waitUntilEveryWorkerAccepts() {
            logger.warning("not every worker accepts on every listener after 5s; telling systemd the service is ready anyway")
        }
        if session != nil {
            systemd.mainProcess(getpid(), ready: true, status: statusText())
        } else {
            systemd.ready(status: statusText())
        }
    }
}
