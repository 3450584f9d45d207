import CSwitchyard
import Glibc
import Logging
import Synchronization
import SwitchyardCore

// The main thread's signal loop.
extension Instance {
    /// The main thread's loop until SIGTERM or SIGINT: SIGHUP reloads, and backends a reload
    /// removed disappear once their connections have ended.
    func serve() {
        while true {
            let received = waitForSignal(timeout: .milliseconds(250))
            if takeover.committed { return }
            switch received {
            case SIGINT?, SIGTERM?:
                let signal = received == SIGINT ? "SIGINT" : "SIGTERM"
                logger.notice("received \(signal); no longer accepting, \(context.openConnections.load(ordering: .relaxed)) connection(s) open, grace \(state.withLock { $0.configuration.global.shutdownGrace }.shortDescription)")
                // Under the lock: a handover in progress must not send descriptors workers close.
                reloadLock.withLock { _ in context.stopAccepting.store(true, ordering: .releasing) }
                systemd.stopping(status: statusText())
                return
            case SIGUSR1?:
                context.accessLog?.reopen()
                logger.notice("SIGUSR1: access log reopened")
            case SIGUSR2?:
                startSuccessor()
            case SIGHUP?:
                let reply = reload()
                if reply.ok {
                    logger.notice("reload on SIGHUP: \(reply.body.joined(separator: "; "))")
                } else {
                    logger.error("reload on SIGHUP refused: \(reply.error ?? "")")
                }
            default:
                break
            }
            sampleRates()
            for runtime in state.withLock({ Array($0.services.values) }) {
                _ = try? runtime.registry.apply(.advanceSlowStart)
                for name in runtime.sweepRemovedBackends() {
                    logger.notice("\(runtime.name)/\(name) removed: its last connection ended")
                }
            }
            reapSuccessor()
            reportStatusIfDue()
        }
    }
}
