import Glibc
import NIOCore
import Synchronization
import SwitchyardCore

// The status page (`--status HOST:PORT`): its listener (or the metrics listener's, when both
// have one address), its sampler, and the data it shows, read from the same admin controller
// the admin socket uses.
extension Instance {
    /// The routes of the status page for this instance.
    func statusRoutes(_ global: GlobalSettings) -> StatusRoutes {
        let controller = adminController()
        let csrfToken = Self.randomToken()
        let adminEnabled = global.statusAdmin
        let from = global.statusAdminFrom
        let tokenFile = global.statusAdminTokenFile
        return StatusRoutes(
            document: { [self] since in StatusDocument.json(statusInputs(controller, adminEnabled: adminEnabled, csrfToken: csrfToken), since: since) },
            page: { [self] in StatusPage.html(statusInputs(controller, adminEnabled: adminEnabled, csrfToken: csrfToken)) },
            history: { [self] resolution in statusSampler.snapshot.json(resolution: resolution) },
            action: { [self] request in
                let checked = StatusAction.command(
                    for: request, enabled: adminEnabled, from: from, csrfToken: csrfToken,
                    adminToken: Self.readToken(tokenFile))
                switch checked {
                case let .failure(refusal):
                    logger.notice("status page action refused from \(request.peer?.description ?? "unknown"): \(refusal.message)")
                    return (refusal.status, refusal.message + "\n")
                case let .success(line):
                    // The admin socket's own path: the same parse, rules, reply and state-file record.
                    guard case let .reply(reply) = controller.handle(line: line, now: .now) else {
                        return (500, "unexpected reply\n")
                    }
                    logger.notice("status page action from \(request.peer?.description ?? "unknown"): \(line): \(reply.ok ? "OK" : reply.error ?? "failed")")
                    return (reply.ok ? 200 : 409, reply.wireText)
                }
            })
    }

    private func statusInputs(_ controller: AdminController, adminEnabled: Bool, csrfToken: String) -> StatusInputs {
        let resources = ProcessFigures.current().map {
            StatusInputs.ProcessResources(residentBytes: $0.residentMemoryBytes, openDescriptors: $0.openFileDescriptors,
                                          maximumDescriptors: $0.maxFileDescriptors)
        }
        return StatusInputs(
            controller: controller, recorder: statusSampler.snapshot, serviceFigures: serviceFigures(),
            process: resources, time: secondsSinceEpoch(), now: .now, adminEnabled: adminEnabled, csrfToken: csrfToken)
    }

    /// Each service's connection figures: its listeners' over every worker.
    func serviceFigures() -> [String: ConnectionFigures] {
        let entries = state.withLock { $0.listeners }
        let published = context.figures.collect()
        var figures: [String: ConnectionFigures] = [:]
        for entry in entries {
            for worker in published {
                if let part = worker.listeners[entry.id] { figures[entry.service, default: ConnectionFigures()].merge(part) }
            }
        }
        return figures
    }

    /// One second of every service's and backend's counters for the sampler.
    func sampleStatus() {
        let services = state.withLock { Array($0.services.values) }
        let figures = serviceFigures()
        var connectTimes: [WorkerFigures.BackendKey: LatencyHistogram] = [:]
        for worker in context.figures.collect() {
            for (key, histogram) in worker.backendConnectTime { connectTimes[key, default: LatencyHistogram()].merge(histogram) }
        }
        var counters: [StatusSubject: StatusCounters] = [:]
        for runtime in services {
            let service = figures[runtime.name] ?? ConnectionFigures()
            let errors = service.refused &+ service.rejectedTotal
                &+ [TerminationCause.noBackend, .connectFailure, .queueFull, .queueTimeout].reduce(0) { $0 &+ service.closed($1) }
            counters[StatusSubject(service: runtime.name)] = StatusCounters(
                connections: service.accepted, bytesIn: service.bytesFromClients, bytesOut: service.bytesToClients,
                errors: errors, connectTime: service.connectTime)
            for backend in runtime.registry.snapshot().backends {
                let stats = backend.stats
                counters[StatusSubject(service: runtime.name, backend: backend.spec.endpoint.description)] = StatusCounters(
                    connections: UInt64(max(0, stats.total.load(ordering: .relaxed))),
                    bytesIn: UInt64(max(0, stats.bytesToBackend.load(ordering: .relaxed))),
                    bytesOut: UInt64(max(0, stats.bytesFromBackend.load(ordering: .relaxed))),
                    errors: UInt64(max(0, stats.failures.load(ordering: .relaxed))),
                    connectTime: connectTimes[.init(service: runtime.name, backendID: backend.id)] ?? LatencyHistogram())
            }
        }
        statusSampler.record(time: secondsSinceEpoch(), counters)
    }

    /// The first line of the token file, read at each action so that it can be replaced.
    static func readToken(_ path: String?) -> Result<String, ConfigError> {
        guard let path else { return .failure(ConfigError("no status-admin-token-file")) }
        do {
            guard let text = try readTextFile(path, limit: 4096) else {
                return .failure(ConfigError("status-admin-token-file \(path) does not exist"))
            }
            return .success(StatusAction.token(fromFile: text))
        } catch {
            return .failure(ConfigError("status-admin-token-file \(path): \(error)"))
        }
    }

    /// 128 random bits as hex, from the system's generator.
    static func randomToken() -> String {
        var generator = SystemRandomNumberGenerator()
        return (0..<2).map { _ in
            let text = String(generator.next() as UInt64, radix: 16)
            return String(repeating: "0", count: 16 - text.count) + text
        }.joined()
    }
}
