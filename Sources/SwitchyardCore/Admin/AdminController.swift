/// Applies admin commands to a `BackendRegistry` and formats the replies. Pure: no I/O, no clock
/// of its own (callers pass `now`), so every rule here is unit-tested.
///
/// Thread safety: immutable and `Sendable`; the admin thread calls it, tests call it directly.
public struct AdminController: Sendable {
    public let registry: BackendRegistry
    public let processStats: @Sendable () -> ProcessStats
    /// The text of a backend's latest health check by backend id, if the checker has one.
    public let lastCheckText: @Sendable (Int) -> String?
    /// Turns the host of an added backend into an address (the executable passes a getaddrinfo
    /// lookup; the default accepts IP literals only). Runs on the admin thread.
    public let resolve: @Sendable (Endpoint) throws(ConfigError) -> Endpoint

    public init(
        registry: BackendRegistry,
        processStats: @escaping @Sendable () -> ProcessStats,
        lastCheckText: @escaping @Sendable (Int) -> String? = { _ in nil },
        resolve: @escaping @Sendable (Endpoint) throws(ConfigError) -> Endpoint = AdminController.literalOnly
    ) {
        self.registry = registry
        self.processStats = processStats
        self.lastCheckText = lastCheckText
        self.resolve = resolve
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
    }

    /// A `wait BACKEND TIMEOUT` still running.
    public struct PendingWait: Sendable, Equatable {
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
        case let .showBackends(json):
            return .reply(showBackends(json: json))
        case let .showStats(json):
            return .reply(showStats(json: json))
        case let .drain(endpoint):
            return .reply(setAdmin(.drain, of: endpoint))
        case let .ready(endpoint):
            return .reply(setAdmin(.ready, of: endpoint))
        case let .maint(endpoint):
            return .reply(setAdmin(.maint, of: endpoint))
        case let .weight(endpoint, weight):
            return .reply(change(endpoint) { backend in
                let old = backend.spec.weight
                backend.spec.weight = weight
                backend.spec.weightGiven = true
                return "\(endpoint) weight \(old) -> \(weight)"
            })
        case let .add(spec):
            return .reply(add(spec))
        case let .remove(endpoint):
            return .reply(remove(endpoint))
        case let .wait(endpoint, timeout):
            guard let backend = registry.snapshot().backends.first(where: { $0.spec.endpoint.description == endpoint.description }) else {
                return .reply(unknown(endpoint))
            }
            let wait = PendingWait(backendID: backend.id, name: endpoint.description, deadline: now + timeout, timeout: timeout)
            return poll(wait, now: now).map(Outcome.reply) ?? .wait(wait)
        case let .shutdown(endpoint):
            return .reply(change(endpoint) { backend in
                backend.shutdownEpoch += 1
                let open = backend.stats.active.load(ordering: .relaxed)
                return "closing \(open) open connection\(open == 1 ? "" : "s") to \(endpoint)"
            })
        }
    }

    /// The reply for `wait` once the backend has no open connections, is gone, or the deadline
    /// passed; nil while it should keep waiting.
    public func poll(_ wait: PendingWait, now: ContinuousClock.Instant) -> AdminReply? {
        guard let backend = registry.snapshot().backends.first(where: { $0.id == wait.backendID }) else {
            return .success(["\(wait.name) was removed"])
        }
        let open = backend.stats.active.load(ordering: .relaxed)
        if open == 0 {
            return .success(["\(wait.name) has no open connections"])
        }
        guard now < wait.deadline else {
            var body: [String] = []
            if backend.admin == .ready {
                body.append("\(wait.name) is still ready and takes new connections; send 'drain \(wait.name)' first")
            }
            return .failure("\(wait.name) still has \(open) open connection\(open == 1 ? "" : "s") after \(wait.timeout.shortDescription)", body)
        }
        return nil
    }

    // MARK: - Changes

    private func setAdmin(_ admin: AdminState, of endpoint: Endpoint) -> AdminReply {
        change(endpoint) { backend in
            let old = backend.admin
            backend.admin = admin
            let open = backend.stats.active.load(ordering: .relaxed)
            switch admin {
            case .drain, .maint:
                return "\(endpoint) \(old.rawValue) -> \(admin.rawValue); \(open) open connection\(open == 1 ? "" : "s") will finish"
            case .ready:
                return "\(endpoint) \(old.rawValue) -> ready" + (backend.health.isUp ? "" : " (but health checks say it is down)")
            }
        }
    }

    /// Runs `edit` on the backend named `endpoint`; its return is the reply body.
    private func change(_ endpoint: Endpoint, _ edit: @escaping (inout BackendState) -> String) -> AdminReply {
        let name = endpoint.description
        do {
            let line = try registry.update { (backends, _) throws(RegistryError) -> String in
                guard let index = backends.firstIndex(where: { $0.spec.endpoint.description == name }) else {
                    throw RegistryError("unknown backend '\(name)'; 'show backends' lists them")
                }
                return edit(&backends[index])
            }
            return .success([line])
        } catch {
            return .failure(error.message)
        }
    }

    private func add(_ spec: BackendSpec) -> AdminReply {
        let name = spec.endpoint.description
        var spec = spec
        do {
            spec.endpoint = try resolve(spec.endpoint)
        } catch {
            return .failure(error.message)
        }
        do {
            let id = try registry.update { (backends, makeID) throws(RegistryError) -> Int in
                guard !backends.contains(where: { $0.spec.endpoint.description == name }) else {
                    throw RegistryError("backend '\(name)' already exists; use 'weight' or 'ready' to change it")
                }
                let id = makeID()
                backends.append(BackendState(id: id, spec: spec))
                return id
            }
            return .success(["added \(name) with weight \(spec.weight) as backend \(id)"])
        } catch {
            return .failure(error.message)
        }
    }

    private func remove(_ endpoint: Endpoint) -> AdminReply {
        let name = endpoint.description
        do {
            try registry.update { (backends, _) throws(RegistryError) in
                guard let index = backends.firstIndex(where: { $0.spec.endpoint.description == name }) else {
                    throw RegistryError("unknown backend '\(name)'; 'show backends' lists them")
                }
                let open = backends[index].stats.active.load(ordering: .relaxed)
                guard open == 0 else {
                    throw RegistryError(
                        "\(name) has \(open) open connection\(open == 1 ? "" : "s"); "
                            + "send 'drain \(name)', then 'wait \(name) 60s', then remove it")
                }
                backends.remove(at: index)
            }
            return .success(["removed \(name)"])
        } catch {
            return .failure(error.message)
        }
    }

    private func unknown(_ endpoint: Endpoint) -> AdminReply {
        .failure("unknown backend '\(endpoint.description)'; 'show backends' lists them")
    }

    // MARK: - Show

    private struct BackendRow {
        var state: BackendState
        var lastCheck: String
        var active, total, failures, bytesIn, bytesOut: Int
    }

    private func rows() -> [BackendRow] {
        registry.snapshot().backends.map { backend in
            BackendRow(
                state: backend,
                lastCheck: lastCheckText(backend.id) ?? backend.health.lastCheck,
                active: backend.stats.active.load(ordering: .relaxed),
                total: backend.stats.total.load(ordering: .relaxed),
                failures: backend.stats.failures.load(ordering: .relaxed),
                bytesIn: backend.stats.bytesToBackend.load(ordering: .relaxed),
                bytesOut: backend.stats.bytesFromBackend.load(ordering: .relaxed))
        }
    }

    private func showBackends(json: Bool) -> AdminReply {
        let rows = rows()
        if json {
            let objects = rows.map { row in
                JSONText.object([
                    ("id", "\(row.state.id)"),
                    ("backend", JSONText.string(row.state.spec.endpoint.description)),
                    ("weight", "\(row.state.spec.weight)"),
                    ("admin", JSONText.string(row.state.admin.rawValue)),
                    ("health", JSONText.string(row.state.health.isUp ? "up" : "down")),
                    ("selectable", "\(row.state.selectable)"),
                    ("last_check", JSONText.string(row.lastCheck)),
                    ("active", "\(row.active)"),
                    ("total", "\(row.total)"),
                    ("failures", "\(row.failures)"),
                    ("bytes_to_backend", "\(row.bytesIn)"),
                    ("bytes_from_backend", "\(row.bytesOut)"),
                    ("shutdown_epoch", "\(row.state.shutdownEpoch)"),
                ])
            }
            return .success([JSONText.object([("backends", JSONText.array(objects))])])
        }
        let header = ["ID", "BACKEND", "WEIGHT", "ADMIN", "HEALTH", "ACTIVE", "TOTAL", "FAILURES", "TO_BACKEND", "FROM_BACKEND", "LAST_CHECK"]
        let table = rows.map { row in
            ["\(row.state.id)", row.state.spec.endpoint.description, "\(row.state.spec.weight)", row.state.admin.rawValue,
             row.state.health.isUp ? "up" : "down", "\(row.active)", "\(row.total)", "\(row.failures)",
             "\(row.bytesIn)", "\(row.bytesOut)", row.lastCheck]
        }
        if table.isEmpty { return .success(["no backends"]) }
        return .success(Self.aligned([header] + table))
    }

    private func showStats(json: Bool) -> AdminReply {
        let stats = processStats()
        let backends = registry.snapshot().backends
        let up = backends.filter { $0.health.isUp }.count
        let selectable = backends.filter { $0.selectable }.count
        let fields: [(String, String, String)] = [
            ("uptime_seconds", "\(stats.uptime.components.seconds)", "uptime \(stats.uptime.components.seconds)s"),
            ("workers", "\(stats.workers)", "workers \(stats.workers)"),
            ("relay", JSONText.string(stats.relayMode), "relay \(stats.relayMode)"),
            ("balance", JSONText.string(stats.balance), "balance \(stats.balance)"),
            ("open_connections", "\(stats.openConnections)", "open connections \(stats.openConnections)"),
            ("total_connections", "\(stats.totalConnections)", "total connections \(stats.totalConnections)"),
            ("bytes_from_clients", "\(stats.bytesFromClients)", "bytes from clients \(stats.bytesFromClients)"),
            ("bytes_to_clients", "\(stats.bytesToClients)", "bytes to clients \(stats.bytesToClients)"),
            ("backends", "\(backends.count)", "backends \(backends.count)"),
            ("backends_up", "\(up)", "backends up \(up)"),
            ("backends_selectable", "\(selectable)", "backends taking new connections \(selectable)"),
        ]
        if json {
            return .success([JSONText.object(fields.map { ($0.0, $0.1) })])
        }
        return .success(fields.map(\.2))
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
