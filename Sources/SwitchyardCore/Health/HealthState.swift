/// The outcome of one active probe or one client connect attempt reported by a worker.
public enum HealthCheckResult: Sendable, Equatable {
    /// The backend answered as expected; `detail` is shown as the last check text.
    case success(detail: String)
    /// The backend did not answer as expected; `reason` is logged and shown as the last check text.
    case failure(reason: String)
}

/// A change of a backend's verdict, returned by `HealthState.record(_:)` at most once per change.
public enum HealthTransition: Sendable, Equatable {
    /// `checks` consecutive successes brought a down backend back.
    case wentUp(checks: Int)
    /// `checks` consecutive failures (the last one for `reason`) took the backend down.
    case wentDown(reason: String, checks: Int)
}

/// The rise/fall machine of one backend, with HAProxy's semantics.
///
/// - A confirmed-up backend goes down after `fall` consecutive failures.
/// - A down backend comes up after `rise` consecutive successes.
/// - A backend starts "up, unconfirmed": it may take traffic before it is checked, but if its very
///   first result is a failure it goes down at once instead of after `fall` of them. HAProxy gets
///   the same effect by starting the health counter at `rise` (see its `check_notify_failure`).
///   The first success confirms it.
///
/// A value type with no locking; the owner serialises calls.
public struct HealthState: Sendable, Equatable {
    public enum Phase: Sendable, Equatable {
        case upUnconfirmed
        case up
        case down
    }

    public let rise: Int
    public let fall: Int
    public private(set) var phase: Phase = .upUnconfirmed
    /// Consecutive successes so far (0 after any failure).
    public private(set) var successRun = 0
    /// Consecutive failures so far (0 after any success).
    public private(set) var failureRun = 0

    /// `rise` and `fall` must be at least 1 (`HealthCheckConfig.validate()` checks user input).
    public init(rise: Int, fall: Int) {
        precondition(rise >= 1 && fall >= 1, "rise and fall must be at least 1")
        self.rise = rise
        self.fall = fall
    }

    /// A machine for a backend already known to be down (a checker restarted by a reload):
    /// it stays down until `rise` checks pass.
    public static func down(rise: Int, fall: Int) -> HealthState {
        var state = HealthState(rise: rise, fall: fall)
        state.phase = .down
        return state
    }

    public var isUp: Bool { phase != .down }

    /// Feeds one result in; returns the transition it causes, or nil when the verdict stands.
    public mutating func record(_ result: HealthCheckResult) -> HealthTransition? {
        switch result {
        case .success:
            failureRun = 0
            successRun = min(successRun + 1, rise)
            switch phase {
            case .upUnconfirmed:
                phase = .up
                return nil
            case .up:
                return nil
            case .down:
                guard successRun >= rise else { return nil }
                phase = .up
                return .wentUp(checks: successRun)
            }
        case let .failure(reason):
            successRun = 0
            failureRun = min(failureRun + 1, fall)
            switch phase {
            case .upUnconfirmed:
                phase = .down
                return .wentDown(reason: reason, checks: failureRun)
            case .up:
                guard failureRun >= fall else { return nil }
                phase = .down
                return .wentDown(reason: reason, checks: failureRun)
            case .down:
                return nil
            }
        }
    }

    /// A client's connect succeeded. It ends a failure run of an up backend but never raises a
    /// down one (only probes do that, so `rise` keeps its meaning) and never confirms one.
    public mutating func recordPassiveSuccess() {
        if phase != .down { failureRun = 0 }
    }
}
