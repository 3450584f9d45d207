import Logging
import Synchronization
import SwitchyardCore

/// One service while the instance runs: its backend registry (which workers read snapshots
/// from) and its health checker, restarted when a reload changes the check.
///
/// Thread safety: the instance's control side calls `startHealth`/`stopHealth` (serialised by
/// the instance); any thread may read `lastCheckText`.
final class ServiceRuntime: Sendable {
    let name: String
    let registry: BackendRegistry
    private let checker = Mutex<HealthChecker?>(nil)
    /// Agent checks (issue 22): started once some backend has an `agent-port`.
    private let agents = Mutex<(checker: AgentChecker?, stopped: Bool, watching: Bool)>((nil, false, false))
    private let logger: Logger

    /// `configuration`'s backends must be resolved.
    init(configuration: ServiceConfiguration, logger: Logger) {
        name = configuration.name
        registry = BackendRegistry(
            backends: configuration.backends, algorithm: configuration.balance, service: configuration.name,
            settings: configuration.settings)
        var logger = logger
        logger[metadataKey: "service"] = "\(configuration.name)"
        self.logger = logger
    }

    /// Replaces the health checker with one for `config` (nil: none). Verdicts in force are kept.
    func startHealth(_ config: HealthCheckConfig?) throws(SystemCallError) {
        stopHealth()
        guard let config else {
            registry.setConnectObserver(nil)
            return
        }
        let checker = try HealthChecker(registry: registry, config: config, logger: logger)
        try checker.start()
        self.checker.withLock { $0 = checker }
        // Weak: the registry's snapshot holds this closure, and the checker holds the registry.
        registry.setConnectObserver { [weak checker] id, success, reason in
            checker?.recordConnectResult(backendID: id, success: success, reason: reason)
        }
    }

    func stopHealth() {
        let old = checker.withLock { checker in
            defer { checker = nil }
            return checker
        }
        old?.stop()
    }

    func checkFigures(_ backendID: Int) -> HealthChecker.CheckFigures? {
        checker.withLock { $0 }?.checkFigures(backendID: backendID)
    }

    func lastCheckText(_ backendID: Int) -> String? {
        checker.withLock { $0 }?.lastCheckText(backendID: backendID)
    }

    /// Starts the agent checker once some backend has an `agent-port`, now or after any later
    /// change (a reload, `add`); it then runs until `stopAgents`, asking whichever backends have
    /// agents. Any thread; a failure to start is logged and tried again at the next change.
    func startAgents() {
        let watch = agents.withLock { state in
            defer { state.watching = true }
            return !state.watching
        }
        if watch { registry.addPublishObserver { [weak self] in self?.startAgents() } }
        guard registry.snapshot().backends.contains(where: { $0.spec.agent.isEnabled }) else { return }
        agents.withLock { state in
            guard state.checker == nil, !state.stopped else { return }
            do {
                let checker = try AgentChecker(registry: registry, logger: logger)
                try checker.start()
                state.checker = checker
            } catch {
                logger.error("cannot start agent checks: \(error)")
            }
        }
    }

    /// Stops the agent checker for good (the service is removed or the instance stops).
    func stopAgents() {
        let old = agents.withLock { state in
            defer { (state.checker, state.stopped) = (nil, true) }
            return state.checker
        }
        old?.stop()
    }

    /// Removes backends a reload took out of the configuration once their last connection
    /// has ended; returns their names.
    func sweepRemovedBackends() -> [String] {
        let snapshot = registry.snapshot()
        guard snapshot.backends.contains(where: { $0.removing && $0.stats.active.load(ordering: .relaxed) == 0 }) else {
            return []
        }
        return (try? registry.update { (backends, _) -> [String] in
            let done = backends.filter { $0.removing && $0.stats.active.load(ordering: .relaxed) == 0 }
            backends.removeAll { backend in done.contains { $0.id == backend.id } }
            return done.map { $0.spec.endpoint.description }
        }) ?? []
    }
}
