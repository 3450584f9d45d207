/// An action on one service's pool of backends, by an operator or by the system: the only way
/// a `BackendRegistry`'s backends change (`BackendRegistry.apply`, one rule per case in
/// `BackendPool.apply`). After HAProxy's `srv_adm_set_drain()`: the admin socket, the state
/// file, reload, DNS discovery, health and agent checks and the instance's timers all produce
/// these values instead of editing backends themselves.
///
/// Backends are named by address (`HOST:PORT` as configured, `Endpoint.description`) where an
/// operator or the configuration names them, and by id where a checker does.
public enum PoolEdit: Sendable, Equatable {
    // Operator actions: the admin socket, and the state file replaying them.

    /// `ready`, `drain` or `maint`. Refused: unknown backend.
    case setAdminState(Endpoint, AdminState)
    /// `weight`: the weight, from then on written explicitly. Refused: unknown backend, a
    /// weight outside 0 to `BackendSpec.maximumWeight`.
    case setWeight(Endpoint, Int)
    /// `add`: a new backend with a fresh id, assumed up and ready. Refused: a backend at that
    /// address exists, or the address is not resolved.
    case add(BackendSpec)
    /// `remove`: takes the backend out at once. Refused: unknown backend, or one with open
    /// connections (they are counted by the workers).
    case removeWhenIdle(Endpoint)
    /// `shutdown`: has the workers close the backend's open connections (`admin_shutdown`).
    /// Refused: unknown backend.
    case shutDownSessions(Endpoint)

    // Reload (`PoolEdit.reload`) and the state file's replay.

    /// Marks the backend `removing`: it takes no new connections and goes once its open ones
    /// have ended (`removeFinished`). No backend at that address: nothing.
    case markRemoving(Endpoint)
    /// Calls off the removal of a backend marked `removing`. Otherwise: nothing.
    case cancelRemoval(Endpoint)
    /// A backend the configuration lists (again): added with a fresh id when absent; when
    /// present (listed again before its connections ended, or added through the admin socket)
    /// its removal is called off and it takes `spec`, keeping health, counters and connections.
    case put(BackendSpec)
    /// A backend whose configured keys changed takes `spec`; it keeps its resolved address
    /// when `spec` has none. No backend at that address: nothing.
    case replaceSpec(BackendSpec)

    // Health and agent checks.

    /// The health checker's verdict on backend `backendID` (gone: nothing).
    case healthVerdict(backendID: Int, HealthVerdict)
    /// What backend `backendID`'s agent said (nil: it has no agent any more; gone: nothing).
    case agentVerdict(backendID: Int, AgentVerdict?)

    // DNS discovery.

    /// The backend listed by hostname as `Endpoint` now resolves to `IPAddress`. Nothing when it
    /// is absent or already there; the result's note says `OLD -> NEW`.
    case moveAddress(Endpoint, to: IPAddress)
    /// The service's `dns`/`dns-srv` name now answers `found`: the discovered part of the pool
    /// becomes that set, by difference. New addresses join (with their SRV weight, else
    /// `defaultWeight`), vanished ones are marked `removing`, those back before they went have
    /// their removal called off, the rest keep health and counters (their weight follows the
    /// answer). Backends from the configuration or the admin socket are never touched. The
    /// result's notes say what changed, one line per backend.
    case setDiscovered([DNSBackend], defaultWeight: Int)

    // Timers of the instance's main loop.

    /// Takes out the backends marked `removing` whose last connection has ended; the result's
    /// notes are their addresses.
    case removeFinished
    /// `removal-grace` ran out for these backends: those still being removed have the workers
    /// close their open connections (`removal_grace`); the result's notes are their names.
    case endRemovalGrace(backendIDs: [Int])
    /// Slow start: ends the ramps that are over, and publishes again while some backend ramps
    /// (its share grows with time).
    case advanceSlowStart
}

extension PoolEdit {
    /// A reload's changes to one service as edits, applied together (`BackendRegistry.apply(_:)`
    /// publishes them at once): added backends are `put`, removed ones drain (`markRemoving`),
    /// changed ones take their new spec. `resolved` is the service's backends from the new
    /// configuration with their hosts resolved; an address missing there is taken as written.
    public static func reload(_ change: ConfigDifference.ServiceChange, resolved: [BackendSpec]) -> [PoolEdit] {
        let resolvedByName = Dictionary(resolved.map { ($0.endpoint.description, $0) }, uniquingKeysWith: { a, _ in a })
        return change.addedBackends.map { .put(resolvedByName[$0.endpoint.description] ?? $0) }
            + change.removedBackends.map { .markRemoving($0) }
            + change.changedBackends.map { .replaceSpec(resolvedByName[$0.new.endpoint.description] ?? $0.new) }
    }
}

/// Why an edit was refused. Nothing was changed. The admin controller words these for the
/// operator (naming the backend as they did); `description` is a plain wording for logs.
public enum PoolEditRefusal: Error, Equatable, Sendable, CustomStringConvertible {
    /// No backend at that address.
    case unknownBackend(Endpoint)
    /// `add`: a backend at that address exists.
    case alreadyPresent(Endpoint)
    /// `add`: the host was not resolved to an address.
    case unresolved(Endpoint)
    /// `remove`: the backend has this many open connections.
    case busy(Endpoint, openConnections: Int)
    /// `weight`: outside 0 to `BackendSpec.maximumWeight`.
    case badWeight(Int)

    public var description: String {
        switch self {
        case let .unknownBackend(endpoint): "unknown backend '\(endpoint)'"
        case let .alreadyPresent(endpoint): "backend '\(endpoint)' already exists"
        case let .unresolved(endpoint): "cannot resolve \(endpoint.host)"
        case let .busy(endpoint, open): "\(endpoint) has \(open) open connection\(open == 1 ? "" : "s")"
        case let .badWeight(weight): "weight \(weight) is not from 0 to \(BackendSpec.maximumWeight)"
        }
    }
}

/// What an applied edit did, for the reply or log line of whoever asked for it.
public struct PoolEditResult: Sendable {
    /// The backend the edit names, as it was before the edit; nil when absent or when the edit
    /// names no single backend.
    public internal(set) var before: BackendState?
    /// The same backend after the edit; nil when absent or taken out.
    public internal(set) var after: BackendState?
    /// What changed, one line per backend, in the words of the log (see each case).
    public internal(set) var notes: [String] = []
    /// Publish even if no backend changed: the snapshot's weights move with time (slow start).
    var republish = false

    init(before: BackendState? = nil, after: BackendState? = nil, notes: [String] = []) {
        self.before = before
        self.after = after
        self.notes = notes
    }
}
