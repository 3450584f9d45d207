/// What the status page shows, gathered once per request: the admin controller's views (the
/// same rows `show stats`, `show services` and `show backends` print), the recorder's rates and
/// history, and the figures only the executable can read.
public struct StatusInputs: Sendable {
    public var controller: AdminController
    public var recorder: StatusRecorder
    /// Each service's connection figures summed over its listeners and the workers.
    public var serviceFigures: [String: ConnectionFigures]
    /// Resident memory and descriptors; nil when /proc could not be read.
    public var process: ProcessResources?
    /// Seconds since the epoch.
    public var time: Int64
    public var now: ContinuousClock.Instant
    /// `status-admin`: the page offers actions.
    public var adminEnabled: Bool
    /// This process's anti-CSRF token, which actions must echo.
    public var csrfToken: String

    public init(controller: AdminController, recorder: StatusRecorder, serviceFigures: [String: ConnectionFigures],
                process: ProcessResources?, time: Int64, now: ContinuousClock.Instant, adminEnabled: Bool, csrfToken: String) {
        self.controller = controller
        self.recorder = recorder
        self.serviceFigures = serviceFigures
        self.process = process
        self.time = time
        self.now = now
        self.adminEnabled = adminEnabled
        self.csrfToken = csrfToken
    }

    public struct ProcessResources: Sendable, Equatable {
        public var residentBytes: UInt64
        public var openDescriptors: Int
        public var maximumDescriptors: Int
        public init(residentBytes: UInt64, openDescriptors: Int, maximumDescriptors: Int) {
            self.residentBytes = residentBytes
            self.openDescriptors = openDescriptors
            self.maximumDescriptors = maximumDescriptors
        }
    }
}

/// One service as the page shows it.
struct StatusServiceView {
    let service: AdminService
    let snapshot: BackendSnapshot
    let active: Int
    let total: Int
    let backends: [AdminController.BackendRow]
    let figures: ConnectionFigures

    /// Connections the service refused or could not serve, by reason (the label values of
    /// `switchyard_connections_closed_total` and friends).
    var refusals: [(String, UInt64)] {
        [("max_connections", figures.refused)]
            + RejectionReason.allCases.map { ($0.label, figures.rejected($0)) }
            + [TerminationCause.noBackend, .connectFailure, .queueFull, .queueTimeout].map { ($0.label, figures.closed($0)) }
    }

    /// The weight balancers give the backend now: its agent's share, scaled by its slow-start
    /// ramp.
    func effectiveWeight(_ backend: BackendState, at now: ContinuousClock.Instant) -> Int {
        let progress = backend.rampProgress(window: snapshot.settings.slowStart(of: backend.spec), at: now)
        return Int((Double(backend.effectiveWeight) * progress).rounded(.up))
    }
}

/// `/status.json`: the page's data.
///
/// ```
/// {"schema_version":1, "time":EPOCH_SECONDS,
///  "process":{...show stats json..., "rss_bytes":N, "open_fds":N, "max_fds":N},
///  "admin":{"enabled":BOOL, "csrf_token":TEXT},
///  "fields":["conn_per_sec",...],
///  "services":[{...show services json..., "rates":{FIELD:NUMBER,...}|null,
///               "refusals":{"max_connections":N,...},
///               "backends":[{...show backends json..., "effective_weight":N, "rates":{...}|null}]}],
///  "history":{...}}   (only with ?since=EPOCH_SECONDS: the 1-second points after it)
/// ```
public enum StatusDocument {
    public static let schemaVersion = 1

    static func views(_ inputs: StatusInputs) -> [StatusServiceView] {
        let controller = inputs.controller
        return controller.serviceRows().map { service, snapshot, active, total in
            StatusServiceView(service: service, snapshot: snapshot, active: active, total: total,
                              backends: controller.rows(of: [service]),
                              figures: inputs.serviceFigures[service.name] ?? ConnectionFigures())
        }
    }

    public static func json(_ inputs: StatusInputs, since: Int64? = nil) -> String {
        var process = inputs.controller.statsFields().map { ($0.0, $0.1) }
        if let resources = inputs.process {
            process += [("rss_bytes", "\(resources.residentBytes)"), ("open_fds", "\(resources.openDescriptors)"),
                        ("max_fds", "\(resources.maximumDescriptors)")]
        }
        let services = views(inputs).map { view in
            let backends = view.backends.map { row in
                JSONText.object(AdminController.backendJSONFields(row) + [
                    ("effective_weight", "\(view.effectiveWeight(row.state, at: inputs.now))"),
                    ("rates", rates(inputs.recorder, StatusSubject(service: view.service.name, backend: row.state.spec.endpoint.description))),
                ])
            }
            return JSONText.object(
                AdminController.serviceJSONFields(view.service, view.snapshot, active: view.active, total: view.total) + [
                    ("rates", rates(inputs.recorder, StatusSubject(service: view.service.name))),
                    ("refusals", JSONText.object(view.refusals.map { ($0.0, "\($0.1)") })),
                    ("backends", JSONText.array(backends)),
                ])
        }
        var fields: [(String, String)] = [
            ("schema_version", "\(schemaVersion)"),
            ("time", "\(inputs.time)"),
            ("process", JSONText.object(process)),
            ("admin", JSONText.object([("enabled", "\(inputs.adminEnabled)"),
                                       ("csrf_token", JSONText.string(inputs.csrfToken))])),
            ("fields", JSONText.array(StatusRecorder.fields.map(JSONText.string))),
            ("services", JSONText.array(services)),
        ]
        if let since { fields.append(("history", inputs.recorder.json(resolution: 1, since: since))) }
        return JSONText.object(fields)
    }

    /// A subject's latest rates as an object of `StatusRecorder.fields`; null before two samples.
    static func rates(_ recorder: StatusRecorder, _ subject: StatusSubject) -> String {
        guard let point = recorder.latest[subject] else { return "null" }
        return JSONText.object(zip(StatusRecorder.fields, point).map { ($0, SeriesHistory.number($1)) })
    }
}
