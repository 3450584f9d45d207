/// Health probes skipped because the process had no descriptor for their socket, and when to
/// tell the operator.
///
/// A probe whose socket(2) fails with EMFILE or ENFILE says nothing about its backend: the
/// shortage is this process's (or this host's), so the probe round is skipped and no verdict is
/// recorded. Under descriptor pressure every probe of every round would fail that way, so the
/// warning is rate-limited: the first skip warns at once, later ones at most once per
/// `warningInterval`, each warning giving the number skipped since the previous one.
///
/// A value with no locking; the health checker's thread owns it.
public struct SkippedProbes: Sendable {
    public let warningInterval: Duration
    private var lastWarning: ContinuousClock.Instant?
    private var sinceLastWarning = 0

    public init(warningInterval: Duration = .seconds(30)) {
        self.warningInterval = warningInterval
    }

    /// Records one skipped probe at `now`. Returns the number of probes skipped since the last
    /// warning (this one included) when a warning is due, nil when it is not.
    public mutating func skipped(at now: ContinuousClock.Instant) -> Int? {
        sinceLastWarning += 1
        if let lastWarning, now - lastWarning < warningInterval { return nil }
        lastWarning = now
        defer { sinceLastWarning = 0 }
        return sinceLastWarning
    }
}
