/// Whether this instance asks a router for new flows, apart from its backends' health: what
/// `/healthz` answers and `switchyard_instance_ready` shows. An instance behind ECMP is taken
/// out by turning this off and waiting until its route is withdrawn; it keeps accepting and
/// relaying meanwhile, because the router may send it new flows until the withdrawal has
/// propagated.
public enum InstanceReadiness: String, Sendable, Equatable, CaseIterable {
    /// `/healthz` answers as the backends allow (200 while some backend is selectable).
    case ready
    /// `instance drain`: 503 until `instance ready`; kept across reload, handed over by takeover.
    case drained
    /// SIGTERM with `withdraw-delay`: 503 while the delay runs, then the instance stops accepting.
    case stopping

    /// The `/healthz` answer: 200 `ok`, or 503 with a line saying why.
    public func healthz(anyBackendSelectable: Bool) -> (ok: Bool, body: String) {
        switch self {
        case .drained: (false, "instance drained by the operator ('instance ready' ends it)\n")
        case .stopping: (false, "instance stopping: withdrawing before it stops accepting\n")
        case .ready: anyBackendSelectable ? (true, "ok\n") : (false, "no backend is selectable\n")
        }
    }
}

/// `instance drain` and `instance ready`.
public enum InstanceReadinessChange: String, Sendable, Equatable {
    case drain, ready

    /// The readiness the change asks for.
    public var readiness: InstanceReadiness { self == .drain ? .drained : .ready }
}
