import CSwitchyard
import Glibc
import Logging
import Synchronization
import SwitchyardCore

// The main thread's signal loop.
extension Instance {
    /// The main thread's loop until SIGTERM or SIGINT: SIGHUP reloads, and backends a reload
    /// removed disappear once their connections have ended. With `withdraw-delay`, SIGTERM
    /// first turns `/healthz` to 503 and the loop goes on accepting for the delay; a second
    /// SIGTERM or SIGINT ends the delay early.
    func serve() {
        var withdrawnAt: ContinuousClock.Instant?
        while true {
            let received = waitForSignal(timeout: .milliseconds(250))
            if takeover.committed { return }
            if let deadline = withdrawnAt, ContinuousClock.now >= deadline {
                stopAcceptingForShutdown("withdraw-delay over")
                return
            }
            switch received {
            case SIGINT?, SIGTERM?:
                let signal = received == SIGINT ? "SIGINT" : "SIGTERM"
                let delay = state.withLock { $0.configuration.global.withdrawDelay }
                if delay > .zero, withdrawnAt == nil {
                    state.withLock { $0.readiness = .stopping }
                    withdrawnAt = .now + delay
                    logger.notice("received \(signal); /healthz answers 503 so routers withdraw this instance; still accepting for \(delay.shortDescription) (withdraw-delay), \(context.openConnections.load(ordering: .relaxed)) connection(s) open")
                    systemd.status("withdrawing: still accepting for \(delay.shortDescription)")
                    continue
                }
                stopAcceptingForShutdown("received \(signal)")
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
            rotateTicketKeysIfDue(state.withLock { $0.configuration })
        }
    }

    /// Stops accepting (every worker) and tells systemd: the start of a graceful stop.
    private func stopAcceptingForShutdown(_ why: String) {
        logger.notice("\(why); no longer accepting, \(context.openConnections.load(ordering: .relaxed)) connection(s) open, grace \(state.withLock { $0.configuration.global.shutdownGrace }.shortDescription)")
        // Under the lock: a handover in progress must not send descriptors workers close.
        reloadLock.withLock { _ in context.stopAccepting.store(true, ordering: .releasing) }
        systemd.stopping(status: statusText())
    }
}
