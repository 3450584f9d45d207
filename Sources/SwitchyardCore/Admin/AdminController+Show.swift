private enum BackendFiguresJSON {
    static func number(_ value: Double?) -> String {
        guard let value else { return "null" }
        return String(format3: value)
    }
}

/// `show backends`, `show services` and `show stats`, as text tables or JSON.
extension AdminController {
    /// One backend with its figures, as `show backends` and the status page show it.
    struct BackendRow {
        var service: String
        var state: BackendState
        var lastCheck: String
        var active, total, failures, bytesIn, bytesOut: Int
        var figures: BackendFigures
    }

    func rows(of services: [AdminService]) -> [BackendRow] {
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

    func showBackends(service name: String?, json: Bool) -> AdminReply {
        var selected = services()
        if let name {
            selected = selected.filter { $0.name == name }
            if selected.isEmpty { return .failure("unknown service '\(name)'; 'show services' lists them") }
        }
        let rows = rows(of: selected)
        if json {
            let objects = rows.map { JSONText.object(Self.backendJSONFields($0)) }
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

    /// The fields of one backend of `show backends json` (the status page adds its own).
    static func backendJSONFields(_ row: BackendRow) -> [(String, String)] {
        // Health check on another address (issue 13): `check` names it only when it differs.
        let check: [(String, String)] = row.state.spec.checksElsewhere
            ? [("check", JSONText.string(row.state.spec.checkEndpoint.description))] : []
        return [
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
        ] + Self.agentFields(row.state)
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

    /// Each service with its snapshot and its backends' open and total connections.
    func serviceRows() -> [(AdminService, BackendSnapshot, Int, Int)] {
        services().map { service -> (AdminService, BackendSnapshot, Int, Int) in
            let snapshot = service.registry.snapshot()
            let active = snapshot.backends.reduce(0) { $0 + $1.stats.active.load(ordering: .relaxed) }
            let total = snapshot.backends.reduce(0) { $0 + $1.stats.total.load(ordering: .relaxed) }
            return (service, snapshot, active, total)
        }
    }

    /// The fields of one service of `show services json` (the status page adds its own).
    static func serviceJSONFields(_ service: AdminService, _ snapshot: BackendSnapshot, active: Int, total: Int) -> [(String, String)] {
        [
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
        ] + service.details()
    }

    func showServices(json: Bool) -> AdminReply {
        let rows = serviceRows()
        if json {
            let objects = rows.map { service, snapshot, active, total in
                JSONText.object(Self.serviceJSONFields(service, snapshot, active: active, total: total))
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

    func showStats(json: Bool) -> AdminReply {
        let fields = statsFields()
        if json {
            return .success([JSONText.object(fields.map { ($0.0, $0.1) })])
        }
        return .success(fields.map(\.2))
    }

    /// `show stats`: each figure's JSON key, JSON value and text line.
    func statsFields() -> [(String, String, String)] {
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
            ("instance", JSONText.string(stats.instance.rawValue), "instance \(stats.instance.rawValue)"),
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
            + (stats.kernelTLS.isEmpty ? [] : [("kernel_tls", JSONText.string(stats.kernelTLS), "kernel TLS \(stats.kernelTLS)")])
        return fields
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
