import Logging
import SwitchyardCore

// The instance's own readiness, apart from its backends' health (issue 26): `instance drain`
// turns `/healthz` to 503 and `switchyard_instance_ready` to 0 so that a router (a BGP speaker
// polling /healthz) withdraws this instance, while it keeps accepting and relaying, because
// the router may send new flows until the withdrawal has propagated. `instance ready` undoes
// it. The state survives reload (nothing there touches it) and goes to a process taking over
// (`HandoverMessage.instanceDrained`); it is not kept in the state file, so a restarted
// instance comes up ready.
extension Instance {
    /// `instance drain` / `instance ready` (admin thread).
    func changeReadiness(_ change: InstanceReadinessChange) -> AdminReply {
        reloadLock.withLock { _ -> AdminReply in
            if let pid = takeover.pendingPeer {
                return .failure("refused: pid \(pid) is taking over; send it to that process once it has")
            }
            let (before, after) = state.withLock { state -> (InstanceReadiness, InstanceReadiness) in
                let before = state.readiness
                if before != .stopping { state.readiness = change.readiness }
                return (before, state.readiness)
            }
            if before == .stopping {
                return .failure("this instance is stopping (withdraw-delay); its readiness no longer changes")
            }
            if before == after {
                return .success(["instance already \(after.rawValue)"])
            }
            switch after {
            case .drained:
                logger.notice("instance drained: /healthz answers 503 so routers withdraw this instance; still accepting and relaying")
                return .success(["instance drained: /healthz answers 503; still accepting and relaying (\(context.openConnections.load(ordering: .relaxed)) open)"])
            default:
                logger.notice("instance ready: /healthz answers as the backends allow")
                return .success(["instance ready: /healthz answers as the backends allow"])
            }
        }
    }

    /// Whether `instance drain` is in force (for a handover).
    var isDrained: Bool { state.withLock { $0.readiness } == .drained }
}
