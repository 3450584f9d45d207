/// One service as the admin protocol sees it.
public struct AdminService: Sendable {
    public let name: String
    public let registry: BackendRegistry
    /// Its listen addresses, as bound.
    public let listeners: [String]
    /// The text of a backend's latest health check by backend id, if the checker has one.
    public let lastCheckText: @Sendable (Int) -> String?
    /// More `show services json` fields, as (key, JSON value) pairs (DNS discovery's figures).
    public let details: @Sendable () -> [(String, String)]
    /// A backend's measured figures by backend id: connect time and connection rate.
    public let backendDetails: @Sendable (Int) -> BackendFigures

    public init(name: String, registry: BackendRegistry, listeners: [String] = [],
                lastCheckText: @escaping @Sendable (Int) -> String? = { _ in nil },
                details: @escaping @Sendable () -> [(String, String)] = { [] },
                backendDetails: @escaping @Sendable (Int) -> BackendFigures = { _ in BackendFigures() }) {
        self.name = name
        self.registry = registry
        self.listeners = listeners
        self.lastCheckText = lastCheckText
        self.details = details
        self.backendDetails = backendDetails
    }
}

/// What the workers measured of one backend, for `show backends`.
public struct BackendFigures: Sendable, Equatable {
    /// Connect time quantiles in milliseconds; nil before the first connect.
    public var connectP50Milliseconds: Double?
    public var connectP99Milliseconds: Double?
    /// New connections per second over the last second or so.
    public var connectionsPerSecond: Double

    public init(connectP50Milliseconds: Double? = nil, connectP99Milliseconds: Double? = nil, connectionsPerSecond: Double = 0) {
        self.connectP50Milliseconds = connectP50Milliseconds
        self.connectP99Milliseconds = connectP99Milliseconds
        self.connectionsPerSecond = connectionsPerSecond
    }

    static func text(_ value: Double?) -> String {
        guard let value else { return "-" }
        return value < 10 ? String(format3: value) : "\(Int(value.rounded()))"
    }
}

extension String {
    /// A number with 3 decimals, without Foundation.
    init(format3 value: Double) {
        let scaled = Int((value * 1000).rounded())
        let fraction = String(scaled % 1000)
        self = "\(scaled / 1000).\(String(repeating: "0", count: 3 - fraction.count))\(fraction)"
    }
}

private enum BackendFiguresJSON {
    static func number(_ value: Double?) -> String {
        guard let value else { return "null" }
        return String(format3: value)
    }
}

/// Applies admin commands to the services' `BackendRegistry`s and formats the replies. Pure: no
/// I/O, no clock of its own (callers pass `now`), so every rule here is unit-tested.
///
/// Thread safety: immutable and `Sendable`; the admin thread calls it, tests call it directly.
public struct AdminController: Sendable {
    /// The services in force (a reload changes them), sorted by name.
    public let services: @Sendable () -> [AdminService]
    public let processStats: @Sendable () -> ProcessStats
    /// Turns the host of an added backend into an address (the executable passes a getaddrinfo
    /// lookup; the default accepts IP literals only). Runs on the admin thread.
    public let resolve: @Sendable (Endpoint) throws(ConfigError) -> Endpoint
    /// Runs `reload`; the default says there is no file to reload.
    public let reload: @Sendable () -> AdminReply
    /// Told of every change the state file keeps (drain, ready, maint, weight, add, remove),
    /// after it was applied, with the service it applied to.
    public let recordChange: @Sendable (_ service: String, _ command: AdminCommand) -> Void
    /// The busiest sources of the per-client controls (of one service, or all when nil).
    public let sources: @Sendable (_ service: String?) -> [SourceRow]

    public init(
        services: @escaping @Sendable () -> [AdminService],
        processStats: @escaping @Sendable () -> ProcessStats,
        resolve: @escaping @Sendable (Endpoint) throws(ConfigError) -> Endpoint = AdminController.literalOnly,
        reload: @escaping @Sendable () -> AdminReply = {
            .failure("this instance was started without --config: there is no file to reload")
        },
        recordChange: @escaping @Sendable (String, AdminCommand) -> Void = { _, _ in },
        sources: @escaping @Sendable (String?) -> [SourceRow] = { _ in [] }
    ) {
        self.sources = sources
        self.services = services
        self.processStats = processStats
        self.resolve = resolve
        self.reload = reload
        self.recordChange = recordChange
    }

    /// One service named `default` over `registry` (the command-line form).
    public init(
        registry: BackendRegistry,
        processStats: @escaping @Sendable () -> ProcessStats,
        lastCheckText: @escaping @Sendable (Int) -> String? = { _ in nil },
        resolve: @escaping @Sendable (Endpoint) throws(ConfigError) -> Endpoint = AdminController.literalOnly
    ) {
        let service = AdminService(name: registry.service, registry: registry, lastCheckText: lastCheckText)
        self.init(services: { [service] }, processStats: processStats, resolve: resolve)
    }

    /// Accepts endpoints whose host is an IP literal, refuses hostnames.
    public static func literalOnly(_ endpoint: Endpoint) throws(ConfigError) -> Endpoint {
        guard endpoint.address != nil else {
            throw ConfigError("cannot resolve '\(endpoint.host)': only IP addresses can be added here")
        }
        return endpoint
    }

    /// What a command produced: a reply now, or a wait the caller must poll with `poll(_:now:)`.
    public enum Outcome: Sendable, Equatable {
        case reply(AdminReply)
        case wait(PendingWait)
        /// A step of a takeover, which the admin socket server carries out on the connection
        /// (it passes descriptors): see `TakeoverStep`.
        case takeover(TakeoverStep)
    }

    /// A `wait BACKEND TIMEOUT` still running.
    public struct PendingWait: Sendable, Equatable {
        public let service: String
        public let backendID: Int
        public let name: String
        public let deadline: ContinuousClock.Instant
        public let timeout: Duration
    }

    /// Parses and runs one line.
    public func handle(line: String, now: ContinuousClock.Instant) -> Outcome {
        do {
            return execute(try AdminCommand(parsing: line), now: now)
        } catch {
            return .reply(.failure(error.message))
        }
    }

    public func execute(_ command: AdminCommand, now: ContinuousClock.Instant) -> Outcome {
        switch command {
        case .help:
            return .reply(.success(AdminCommand.usage))
        case let .showBackends(service, json):
            return .reply(showBackends(service: service, json: json))
        case let .showServices(json):
            return .reply(showServices(json: json))
        case let .showStats(json):
            return .reply(showStats(json: json))
        case let .showSources(service, json):
            return .reply(showSources(service: service, json: json))
        case let .drain(name):
            return .reply(setAdmin(.drain, of: name, command: command))
        case let .ready(name):
            return .reply(setAdmin(.ready, of: name, command: command))
        case let .maint(name):
            return .reply(setAdmin(.maint, of: name, command: command))
        case let .weight(name, weight):
            return .reply(change(name, .setWeight(name.endpoint, weight), command: command) { before, _ in
                "\(name) weight \(before.spec.weight) -> \(weight)"
            })
        case let .add(service, spec):
            return .reply(add(spec, to: service))
        case let .remove(name):
            return .reply(remove(name))
        case let .wait(name, timeout):
            let found: (AdminService, BackendState)
            switch locate(name) {
            case let .success(value): found = value
            case let .failure(reply): return .reply(reply)
            }
            let wait = PendingWait(service: found.0.name, backendID: found.1.id, name: name.description,
                                   deadline: now + timeout, timeout: timeout)
            return poll(wait, now: now).map(Outcome.reply) ?? .wait(wait)
        case let .shutdown(name):
            return .reply(change(name, .shutDownSessions(name.endpoint), command: nil) { _, backend in
                let open = backend.stats.active.load(ordering: .relaxed)
                return "closing \(open) open connection\(open == 1 ? "" : "s") to \(name)"
            })
        case .reload:
            return .reply(reload())
        case let .takeover(step):
            return .takeover(step)
        }
    }

    /// The reply for `wait` once the backend has no open connections, is gone, or the deadline
    /// passed; nil while it should keep waiting.
    public func poll(_ wait: PendingWait, now: ContinuousClock.Instant) -> AdminReply? {
        guard let service = services().first(where: { $0.name == wait.service }),
              let backend = service.registry.snapshot().backend(id: wait.backendID) else {
            return .success(["\(wait.name) was removed"])
        }
        let open = backend.stats.active.load(ordering: .relaxed)
        if open == 0 {
            return .success(["\(wait.name) has no open connections"])
        }
        guard now < wait.deadline else {
            var body: [String] = []
            if backend.admin == .ready && !backend.removing {
                body.append("\(wait.name) is still ready and takes new connections; send 'drain \(wait.name)' first")
            }
            return .failure("\(wait.name) still has \(open) open connection\(open == 1 ? "" : "s") after \(wait.timeout.shortDescription)", body)
        }
        return nil
    }

    // MARK: - Finding backends

    /// The service and backend `name` refers to, or the error reply: an unknown service or
    /// backend, or a bare `HOST:PORT` that several services have (the reply names them).
    func locate(_ name: BackendName) -> Result<(AdminService, BackendState), AdminReply> {
        let all = services()
        let wanted = name.endpoint.description
        if let serviceName = name.service {
            guard let service = all.first(where: { $0.name == serviceName }) else {
                return .failure(.failure("unknown service '\(serviceName)'; 'show services' lists them"))
            }
            guard let backend = service.registry.snapshot().backends.first(where: { $0.spec.endpoint.description == wanted }) else {
                return .failure(.failure("unknown backend '\(name)'; 'show backends \(serviceName)' lists them"))
            }
            return .success((service, backend))
        }
        let matches = all.compactMap { service in
            service.registry.snapshot().backends.first(where: { $0.spec.endpoint.description == wanted }).map { (service, $0) }
        }
        switch matches.count {
        case 0: return .failure(.failure("unknown backend '\(name)'; 'show backends' lists them"))
        case 1: return .success(matches[0])
        default:
            let candidates = matches.map { "\($0.0.name)/\(wanted)" }.joined(separator: ", ")
            return .failure(.failure("'\(wanted)' is a backend of several services; name one: \(candidates)"))
        }
    }

    // MARK: - Changes

    private func setAdmin(_ admin: AdminState, of name: BackendName, command: AdminCommand) -> AdminReply {
        change(name, .setAdminState(name.endpoint, admin), command: command) { before, backend in
            let open = backend.stats.active.load(ordering: .relaxed)
            switch admin {
            case .drain, .maint:
                return "\(name) \(before.admin.rawValue) -> \(admin.rawValue); \(open) open connection\(open == 1 ? "" : "s") will finish"
            case .ready:
                return "\(name) \(before.admin.rawValue) -> ready" + (backend.health.isUp ? "" : " (but health checks say it is down)")
                    + (backend.effectiveAdmin == .ready ? "" : " (but its agent says \(backend.effectiveAdmin.rawValue))")
            }
        }
    }

    /// Applies `edit` to the service of the backend `name` refers to; `reply` makes the reply
    /// body from the backend before and after. A `command` the state file keeps is passed to
    /// `recordChange` once applied.
    private func change(_ name: BackendName, _ edit: PoolEdit, command: AdminCommand?,
                        reply: (_ before: BackendState, _ after: BackendState) -> String) -> AdminReply {
        let service: AdminService
        switch locate(name) {
        case let .success((found, _)): service = found
        case let .failure(reply): return reply
        }
        do {
            // The edits named here change one backend, which they refuse when it is absent.
            let result = try service.registry.apply(edit)
            if let command { recordChange(service.name, command) }
            return .success([reply(result.before!, result.after!)])
        } catch {
            return .failure(Self.refusal(error, name))
        }
    }

    /// A refused edit in the operator's words, naming the backend as `name` does.
    private static func refusal(_ refusal: PoolEditRefusal, _ name: CustomStringConvertible) -> String {
        switch refusal {
        case .unknownBackend:
            "unknown backend '\(name)'; 'show backends' lists them"
        case .alreadyPresent:
            "backend '\(name)' already exists; use 'weight' or 'ready' to change it"
        case let .busy(_, open):
            "\(name) has \(open) open connection\(open == 1 ? "" : "s"); "
                + "send 'drain \(name)', then 'wait \(name) 60s', then remove it"
        case .unresolved, .badWeight:
            refusal.description
        }
    }

    private func add(_ spec: BackendSpec, to serviceName: String?) -> AdminReply {
        let all = services()
        let service: AdminService
        if let serviceName {
            guard let found = all.first(where: { $0.name == serviceName }) else {
                return .failure("unknown service '\(serviceName)'; 'show services' lists them")
            }
            service = found
        } else if all.count == 1 {
            service = all[0]
        } else {
            return .failure("name the service: add SERVICE/\(spec) (services: \(all.map(\.name).joined(separator: ", ")))")
        }
        let name = spec.endpoint.description
        let shown = serviceName.map { "\($0)/\(name)" } ?? name
        var resolved = spec
        do {
            resolved.endpoint = try resolve(spec.endpoint)
        } catch {
            return .failure(error.message)
        }
        do {
            let id = try service.registry.apply(.add(resolved)).after!.id
            recordChange(service.name, .add(service: service.name, spec))
            return .success(["added \(shown) with weight \(spec.weight) as backend \(id)"])
        } catch {
            return .failure(Self.refusal(error, shown))
        }
    }

    private func remove(_ name: BackendName) -> AdminReply {
        let service: AdminService
        switch locate(name) {
        case let .success((found, _)): service = found
        case let .failure(reply): return reply
        }
        do {
            try service.registry.apply(.removeWhenIdle(name.endpoint))
            recordChange(service.name, .remove(name))
            return .success(["removed \(name)"])
        } catch {
            return .failure(Self.refusal(error, name))
        }
    }

    // MARK: - Show

    private struct BackendRow {
        var service: String
        var state: BackendState
        var lastCheck: String
        var active, total, failures, bytesIn, bytesOut: Int
        var figures: BackendFigures
    }

    private func rows(of services: [AdminService]) -> [BackendRow] {
        services.flatMap { service in
            service.registry.snapshot().backends.map { backend in
                BackendRow(
                    service: service.name,
                    state: backend,
                    lastCheck: service.lastCheckText(backend.id) ?? backend.health.lastCheck,
                    active: backend.stats.active.load(ordering: .relaxed),
                    total: backend.stats.total.load(ordering: .relaxed),
                    failures: backend.stats.failures.load(ordering: .relaxed),
                    bytesIn: backend.stats.bytesToBackend.load(ordering: .relaxed),
                    bytesOut: backend.stats.bytesFromBackend.load(ordering: .relaxed),
                    figures: service.backendDetails(backend.id))
            }
        }
    }

    private func showBackends(service name: String?, json: Bool) -> AdminReply {
        var selected = services()
        if let name {
            selected = selected.filter { $0.name == name }
            if selected.isEmpty { return .failure("unknown service '\(name)'; 'show services' lists them") }
        }
        let rows = rows(of: selected)
        if json {
            let objects = rows.map { row in
                // Health check on another address (issue 13): `check` names it only when it differs.
                let check: [(String, String)] = row.state.spec.checksElsewhere
                    ? [("check", JSONText.string(row.state.spec.checkEndpoint.description))] : []
                return JSONText.object([
                    ("id", "\(row.state.id)"),
                    ("service", JSONText.string(row.service)),
                    ("address", JSONText.string(row.state.spec.endpoint.description)),
                ] + check + [
                    ("weight", "\(row.state.spec.weight)"),
                    ("state", JSONText.string(row.state.effectiveAdmin.rawValue)),
                    ("health", JSONText.string(row.state.health.isUp ? "up" : "down")),
                    ("selectable", "\(row.state.selectable)"),
                    ("removing", "\(row.state.removing)"),
                    ("last_check", JSONText.string(row.lastCheck)),
                    ("active", "\(row.active)"),
                    ("total", "\(row.total)"),
                    ("failures", "\(row.failures)"),
                    ("bytes_to_backend", "\(row.bytesIn)"),
                    ("bytes_from_backend", "\(row.bytesOut)"),
                    ("shutdown_epoch", "\(row.state.shutdownEpoch)"),
                    ("connect_p50_ms", BackendFiguresJSON.number(row.figures.connectP50Milliseconds)),
                    ("connect_p99_ms", BackendFiguresJSON.number(row.figures.connectP99Milliseconds)),
                    ("conn_per_sec", String(format3: row.figures.connectionsPerSecond)),
                    ("backup", "\(row.state.spec.backup)"),
                    ("priority", "\(row.state.spec.priority)"),  // Failover tiers.
                    ("max_connections", row.state.spec.maxConnections.map { "\($0)" } ?? "null"),
                    ("ramping", "\(row.state.rampStartedAt != nil)"),
                ] + Self.agentFields(row.state))
            }
            return .success([JSONText.object([("backends", JSONText.array(objects))])])
        }
        // Agent checks (issue 22): an AGENT column only when some backend has an agent.
        let agents = rows.contains { $0.state.spec.agent.isEnabled }
        let header = ["SERVICE", "ID", "ADDRESS", "WEIGHT", "STATE", "HEALTH", "ACTIVE", "TOTAL", "FAILURES", "TO_BACKEND", "FROM_BACKEND",
                      "CONN/S", "CONNECT_P50_MS", "CONNECT_P99_MS"] + (agents ? ["AGENT"] : []) + ["LAST_CHECK"]
        let table = rows.map { row in
            [row.service, "\(row.state.id)", row.state.spec.endpoint.description, "\(row.state.spec.weight)",
             row.state.effectiveAdmin.rawValue + (row.state.removing ? " (removing)" : ""),
             row.state.health.isUp ? "up" : "down", "\(row.active)", "\(row.total)", "\(row.failures)",
             "\(row.bytesIn)", "\(row.bytesOut)", BackendFigures.text(row.figures.connectionsPerSecond),
             BackendFigures.text(row.figures.connectP50Milliseconds), BackendFigures.text(row.figures.connectP99Milliseconds)]
                + (agents ? [Self.agentColumn(row.state)] : []) + [row.lastCheck]
        }
        if table.isEmpty { return .success(["no backends"]) }
        return .success(Self.aligned([header] + table))
    }

    /// Agent checks (issue 22): where the agent is and what it said, for `show backends json`;
    /// nothing for a backend without one. The `agent_*` values are null before its first answer;
    /// `effective_weight` is the weight balancers use (the agent's `N%` of `weight`).
    private static func agentFields(_ backend: BackendState) -> [(String, String)] {
        guard let endpoint = backend.spec.agent.endpoint(of: backend.spec.endpoint) else { return [] }
        let verdict = backend.agent
        let null = "null"
        return [
            ("agent", JSONText.string(endpoint.description)),
            ("agent_state", verdict.map { JSONText.string($0.adminState.rawValue) } ?? null),
            ("agent_health", verdict?.health.map { JSONText.string($0.rawValue) } ?? null),
            ("agent_weight", verdict?.weightPercent.map { "\($0)" } ?? null),
            ("agent_text", verdict?.text.map(JSONText.string) ?? null),
            ("agent_error", verdict?.error.map(JSONText.string) ?? null),
            ("effective_weight", "\(backend.effectiveWeight)"),
        ]
    }

    /// The AGENT column: what the agent said (`drain 50% up # text`), `-` without an agent.
    private static func agentColumn(_ backend: BackendState) -> String {
        guard backend.spec.agent.isEnabled else { return "-" }
        return backend.agent?.summary ?? "no answer yet"
    }

    private func showServices(json: Bool) -> AdminReply {
        let rows = services().map { service -> (AdminService, BackendSnapshot, Int, Int) in
            let snapshot = service.registry.snapshot()
            let active = snapshot.backends.reduce(0) { $0 + $1.stats.active.load(ordering: .relaxed) }
            let total = snapshot.backends.reduce(0) { $0 + $1.stats.total.load(ordering: .relaxed) }
            return (service, snapshot, active, total)
        }
        if json {
            let objects = rows.map { service, snapshot, active, total in
                JSONText.object([
                    ("name", JSONText.string(service.name)),
                    ("listen", JSONText.array(service.listeners.map(JSONText.string))),
                    ("balance", JSONText.string(snapshot.algorithm.rawValue)),
                    ("backends", "\(snapshot.backends.count)"),
                    ("backends_up", "\(snapshot.backends.filter { $0.health.isUp }.count)"),
                    ("backends_selectable", "\(snapshot.backends.filter(\.selectable).count)"),
                    ("active", "\(active)"),
                    ("total", "\(total)"),
                    ("queued", "\(service.registry.queue.count)"),
                    ("tiers", Self.tiersJSON(snapshot)),  // Failover tiers.
                ] + service.details())
            }
            return .success([JSONText.object([("services", JSONText.array(objects))])])
        }
        let header = ["SERVICE", "LISTEN", "BALANCE", "BACKENDS", "UP", "SELECTABLE", "ACTIVE", "TOTAL", "TIERS"]
        let table = rows.map { service, snapshot, active, total in
            [service.name, service.listeners.joined(separator: ","), snapshot.algorithm.rawValue, "\(snapshot.backends.count)",
             "\(snapshot.backends.filter { $0.health.isUp }.count)", "\(snapshot.backends.filter(\.selectable).count)",
             "\(active)", "\(total)", snapshot.failover.summary]
        }
        if table.isEmpty { return .success(["no services"]) }
        return .success(Self.aligned([header] + table))
    }

    /// Failover tiers in `show services json`: each tier with its backends, weights and share.
    private static func tiersJSON(_ snapshot: BackendSnapshot) -> String {
        JSONText.array(snapshot.failover.tiers.map { tier in
            JSONText.object([
                ("tier", JSONText.string(tier.name)),
                ("priority", tier.priority.map { "\($0)" } ?? "null"),
                ("backends", "\(tier.members.count)"),
                ("selectable", "\(tier.members.filter { snapshot.backends[$0].selectable }.count)"),
                ("healthy_weight", "\(tier.weights.healthyWeight)"),
                ("weight", "\(tier.weights.totalWeight)"),
                ("share", String(format3: tier.share)),
                ("taking_clients", "\(tier.share > 0)"),
            ])
        })
    }

    private func showStats(json: Bool) -> AdminReply {
        let stats = processStats()
        let all = services()
        let backends = all.flatMap { $0.registry.snapshot().backends }
        let up = backends.filter { $0.health.isUp }.count
        let selectable = backends.filter { $0.selectable }.count
        let fields: [(String, String, String)] = [
            ("pid", "\(stats.pid)", "pid \(stats.pid)"),
            ("uptime_seconds", "\(stats.uptime.components.seconds)", "uptime \(stats.uptime.components.seconds)s"),
            ("workers", "\(stats.workers)", "workers \(stats.workers)"),
            ("relay", JSONText.string(stats.relayMode), "relay \(stats.relayMode)"),
            ("balance", JSONText.string(stats.balance), "balance \(stats.balance)"),
            ("services", "\(all.count)", "services \(all.count)"),
            ("accepting", "\(stats.accepting)", "accepting \(stats.accepting ? "yes" : "no")"),
            ("open_connections", "\(stats.openConnections)", "open connections \(stats.openConnections)"),
            ("total_connections", "\(stats.totalConnections)", "total connections \(stats.totalConnections)"),
            ("bytes_from_clients", "\(stats.bytesFromClients)", "bytes from clients \(stats.bytesFromClients)"),
            ("bytes_to_clients", "\(stats.bytesToClients)", "bytes to clients \(stats.bytesToClients)"),
            ("backends", "\(backends.count)", "backends \(backends.count)"),
            ("backends_up", "\(up)", "backends up \(up)"),
            ("backends_selectable", "\(selectable)", "backends taking new connections \(selectable)"),
            ("version", JSONText.string(stats.version), "version \(stats.version)"),
            ("commit", JSONText.string(stats.commit), "commit \(stats.commit)"),
            ("source_port_exhausted", "\(stats.sourcePortExhausted)", "connects without a free local port \(stats.sourcePortExhausted)"),
        ] + Self.proxyHeaderErrorFields(stats)
        if json {
            return .success([JSONText.object(fields.map { ($0.0, $0.1) })])
        }
        return .success(fields.map(\.2))
    }

    // PROXY protocol.
    /// `proxy_header_errors` of `show stats`, when some service accepts PROXY headers:
    /// `{"missing":0,"malformed":0,"oversized":0,"timeout":0,"untrusted":0}`.
    private static func proxyHeaderErrorFields(_ stats: ProcessStats) -> [(String, String, String)] {
        guard stats.proxyHeaderErrors.count == ProxyHeaderFailure.allCases.count else { return [] }
        let counts = ProxyHeaderFailure.allCases.map { ($0.label, "\(stats.proxyHeaderErrors[$0.rawValue])") }
        return [("proxy_header_errors", JSONText.object(counts),
                 "proxy header errors " + counts.map { "\($0.0) \($0.1)" }.joined(separator: " "))]
    }

    /// Left-aligned columns separated by two spaces; the last column is not padded.
    static func aligned(_ rows: [[String]]) -> [String] {
        guard let columns = rows.first?.count else { return [] }
        let widths = (0..<columns).map { column in rows.map { $0[column].count }.max() ?? 0 }
        return rows.map { row in
            row.enumerated().map { column, cell in
                column == columns - 1 ? cell : cell + String(repeating: " ", count: widths[column] - cell.count)
            }.joined(separator: "  ")
        }
    }
}
