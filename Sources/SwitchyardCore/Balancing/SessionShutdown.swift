/// What happens to the open sessions of a backend that goes, after HAProxy's
/// `on-marked-down shutdown-sessions`, `on-marked-up shutdown-backup-sessions` and Envoy's
/// `close_connections_on_host_health_failure`.
///
/// The control side never touches a connection: it bumps the backend's `shutdownEpoch` (with the
/// cause) in the next snapshot, and each worker, adopting it, closes its own connections to that
/// backend with a reset and counts them under the cause (`Worker.adoptSnapshotIfNewer`).

/// `on-down`: what a backend marked down (by its health checks, or by its agent's `down`) does
/// to its open sessions.
public enum OnBackendDown: String, CaseIterable, Sendable, CustomStringConvertible {
    /// They go on (the backend may still serve them; they end on their own).
    case none
    /// They are closed with a reset (`backend_down`).
    case shutdownSessions = "shutdown-sessions"

    public var description: String { rawValue }
}

/// `on-up`: what a tier coming back does to the sessions of the tiers after it.
public enum OnBackendUp: String, CaseIterable, Sendable, CustomStringConvertible {
    /// They go on.
    case none
    /// The sessions of a tier that no longer takes new clients, because a tier before it has
    /// the healthy capacity again, are closed with a reset (`backup_preempted`): their clients
    /// reconnect to the better tier.
    case shutdownBackupSessions = "shutdown-backup-sessions"

    public var description: String { rawValue }
}

extension ServiceSettings {
    /// `failover-threshold` (FailoverTiers.swift), `on-down`, `on-up` and `removal-grace`.
    static let failoverKeys: [ServiceKey] = [
        .value("failover-threshold", \.failoverThreshold, parse: { (text) throws(ConfigError) -> Int? in try FailoverTiers.parseThreshold(text) }),
        .value("on-down", \.onDown, parse: { (text) throws(ConfigError) in try parseChoice(text, as: OnBackendDown.self) }),
        .value("on-up", \.onUp, parse: { (text) throws(ConfigError) in try parseChoice(text, as: OnBackendUp.self) }),
        .value("removal-grace", \.removalGrace, parse: { (text) throws(ConfigError) -> Duration? in try parseRemovalGrace(text) }),
    ]

    /// `removal-grace`: a duration above 0.
    public static func parseRemovalGrace(_ text: String) throws(ConfigError) -> Duration {
        try parsePositiveDuration(text, key: "removal-grace")
    }
}

extension BackendState {
    /// Has every worker close this backend's open connections with a reset, counted as `cause`.
    /// The one way sessions are shut down: `shutdown BACKEND`, `on-down`, `on-up` and
    /// `removal-grace` all come here.
    public mutating func shutDownSessions(cause: TerminationCause) {
        shutdownEpoch += 1
        shutdownCause = cause
    }
}

public enum SessionShutdown {
    /// Marks in `next` (the backends about to be published) the backends whose sessions
    /// `settings` wants closed, given the `previous` backends: with `on-down`, those that went
    /// from up to down (the health check's verdict with the agent's, `BackendState.isUp`); with `on-up`, the members of a tier that took clients before and
    /// takes none now although some of it is still healthy (a tier before it is back).
    /// Pure; called by the registry under its lock, on the publishing thread.
    public static func mark(_ next: inout [BackendState], previous: [BackendState], settings: ServiceSettings) {
        guard settings.onDown != .none || settings.onUp != .none else { return }
        if settings.onDown == .shutdownSessions {
            let wasUp = Dictionary(previous.map { ($0.id, $0.isUp) }, uniquingKeysWith: { a, _ in a })
            for index in next.indices where wasUp[next[index].id] == true && !next[index].isUp {
                next[index].shutDownSessions(cause: .backendDown)
            }
        }
        if settings.onUp == .shutdownBackupSessions {
            let before = FailoverTiers(backends: previous, thresholdPercent: settings.failoverThreshold)
            let after = FailoverTiers(backends: next, thresholdPercent: settings.failoverThreshold)
            for tier in after.tiers where tier.share == 0 && tier.weights.healthyWeight > 0 {
                guard let old = before.tiers.first(where: { $0.priority == tier.priority }), old.share > 0 else { continue }
                for index in tier.members { next[index].shutDownSessions(cause: .backupPreempted) }
            }
        }
    }
}
