/// Why a client connection ended: the `cause` label of `switchyard_connections_closed_total` and
/// the last field of an access-log line. Every accepted connection ends with exactly one cause.
///
/// The raw values are the label values and never change (dashboards and alerts match on them).
public enum TerminationCause: Int, CaseIterable, Sendable, CustomStringConvertible {
    /// The client ended its side first (FIN) and both directions finished cleanly.
    case clientClose = 0
    /// The backend ended its side first (FIN) and both directions finished cleanly.
    case backendClose
    /// An error or reset on the client socket.
    case clientReset
    /// An error or reset on the backend socket after it was connected.
    case backendReset
    /// Every backend offered for this client refused or timed out.
    case connectFailure
    /// No backend was selectable (all down, draining, in maintenance or of weight 0).
    case noBackend
    /// No byte moved in either direction for `--idle-timeout`.
    case idleTimeout
    /// The operator closed it (`shutdown BACKEND` on the admin socket).
    case adminShutdown
    /// The process was stopping and the shutdown grace ran out.
    case gracefulStop
    /// Closed at accept because `--max-connections` were already open. Counted in
    /// `switchyard_connections_refused_total`, not in the closed family.
    case refused
    /// Every selectable backend was at its `max-connections` and the service's queue was full
    /// (or `queue-size` is 0).
    case queueFull
    /// Waited `queue-timeout` in the queue without a backend slot coming free.
    case queueTimeout
    /// Refused by a per-client control (`ClientControls`): `deny` lists the client, `allow` does
    /// not, its source holds `max-connections-per-source`, or it exceeded
    /// `connection-rate-per-source`. Counted in `switchyard_connections_rejected_total`, not in
    /// the closed family.
    case rejectedDeny
    case rejectedNotAllowed
    case rejectedSourceLimit
    case rejectedSourceRate
    // What happens to sessions when a backend goes (SessionShutdown.swift): each is a reset.
    /// Its backend was marked down by health checks and the service has `on-down: shutdown-sessions`.
    case backendDown
    /// It was on a tier that no longer takes clients because a tier before it came back, and
    /// the service has `on-up: shutdown-backup-sessions`.
    case backupPreempted
    /// Its backend was removed (reload, DNS) and `removal-grace` ran out before it ended.
    case removalGrace

    /// The label value: `client_close`, `backend_close`, ...
    public var label: String {
        switch self {
        case .clientClose: "client_close"
        case .backendClose: "backend_close"
        case .clientReset: "client_reset"
        case .backendReset: "backend_reset"
        case .connectFailure: "connect_failure"
        case .noBackend: "no_backend"
        case .idleTimeout: "idle_timeout"
        case .adminShutdown: "admin_shutdown"
        case .gracefulStop: "graceful_stop"
        case .refused: "refused"
        case .queueFull: "queue_full"
        case .queueTimeout: "queue_timeout"
        case .backendDown: "backend_down"
        case .backupPreempted: "backup_preempted"
        case .removalGrace: "removal_grace"
        case .rejectedDeny, .rejectedNotAllowed, .rejectedSourceLimit, .rejectedSourceRate:
            "rejected_\(rejectionReason!.label)"
        }
    }

    public var description: String { label }

    /// The cause for a label value; nil for anything else.
    public init?(label: String) {
        guard let cause = Self.allCases.first(where: { $0.label == label }) else { return nil }
        self = cause
    }

    /// The per-client control that refused the connection; nil for every other cause.
    public var rejectionReason: RejectionReason? {
        switch self {
        case .rejectedDeny: .deny
        case .rejectedNotAllowed: .notAllowed
        case .rejectedSourceLimit: .sourceLimit
        case .rejectedSourceRate: .sourceRate
        default: nil
        }
    }

    /// The causes of connections that were served (accepted, neither refused nor rejected), as
    /// exported in `switchyard_connections_closed_total`.
    public static let servedCases: [TerminationCause] = allCases.filter { $0 != .refused && $0.rejectionReason == nil }
}
