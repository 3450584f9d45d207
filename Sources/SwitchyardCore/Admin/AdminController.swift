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
    /// Carries out `instance drain` and `instance ready`; the default says this process has no
    /// readiness of its own to change.
    public let changeReadiness: @Sendable (InstanceReadinessChange) -> AdminReply
    /// The certificates terminating services present (`show certificates`).
    public let certificates: @Sendable () -> [CertificateRow]

    public init(
        services: @escaping @Sendable () -> [AdminService],
        processStats: @escaping @Sendable () -> ProcessStats,
        resolve: @escaping @Sendable (Endpoint) throws(ConfigError) -> Endpoint = AdminController.literalOnly,
        reload: @escaping @Sendable () -> AdminReply = {
            .failure("this instance was started without --config: there is no file to reload")
        },
        recordChange: @escaping @Sendable (String, AdminCommand) -> Void = { _, _ in },
        sources: @escaping @Sendable (String?) -> [SourceRow] = { _ in [] },
        changeReadiness: @escaping @Sendable (InstanceReadinessChange) -> AdminReply = { _ in
            .failure("this process has no instance readiness to change")
        },
        certificates: @escaping @Sendable () -> [CertificateRow] = { [] }
    ) {
        self.certificates = certificates
        self.sources = sources
        self.changeReadiness = changeReadiness
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
        case let .showCertificates(json):
            return .reply(showCertificates(json: json))
        case let .drain(name):
            return .reply(setAdmin(.drain, of: name, command: command))
        case let .ready(name):
            return .reply(setAdmin(.ready, of: name, command: command))
        case let .maint(name):
            return .reply(setAdmin(.maint, of: name, command: command))
        case let .weight(name, weight):
            return .reply(setWeight(weight, of: name, command: command))
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
            return .reply(shutDownSessions(of: name))
        case .reload:
            return .reply(reload())
        case let .instance(change):
            return .reply(changeReadiness(change))
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
}
