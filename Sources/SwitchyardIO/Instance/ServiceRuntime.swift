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
    /// When each backend being removed was first seen so, by id, and whether `removal-grace`
    /// already closed its sessions.
    private let removals = Mutex<[Int: (since: ContinuousClock.Instant, closed: Bool)]>([:])
    /// The TLS context new handshakes use when the service terminates TLS (made again by
    /// each reload, which re-reads the certificates).
    let tls = Mutex<TLSServerContext?>(nil)

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

    /// A reload kept the check: its TLS files are read again at the next TLS probe.
    func reloadHealthTLSFiles() {
        checker.withLock { $0 }?.tlsFilesGeneration.add(1, ordering: .relaxed)
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

    /// Removes backends a reload (or DNS) took out of the configuration once their last
    /// connection has ended; returns their names. Past the service's `removal-grace`, asks the
    /// workers to close the sessions still open (`removal_grace`). Called a few times a second
    /// by the instance's main loop, which bounds how late the grace is enforced.
    func sweepRemovedBackends(now: ContinuousClock.Instant = .now) -> [String] {
        enforceRemovalGrace(registry.snapshot(), now: now)
        return (try? registry.apply(.removeFinished))?.notes ?? []
    }

    private func enforceRemovalGrace(_ snapshot: BackendSnapshot, now: ContinuousClock.Instant) {
        let grace = snapshot.settings.removalGrace
        let overdue = removals.withLock { removals -> [Int] in
            let removing = snapshot.backends.filter(\.removing)
            removals = removals.filter { id, _ in removing.contains { $0.id == id } }
            var overdue: [Int] = []
            for backend in removing {
                let entry = removals[backend.id] ?? (since: now, closed: false)
                removals[backend.id] = entry
                guard let grace, !entry.closed, now - entry.since >= grace, backend.stats.active.load(ordering: .relaxed) > 0 else { continue }
                removals[backend.id]?.closed = true
                overdue.append(backend.id)
            }
            return overdue
        }
        guard !overdue.isEmpty, let grace else { return }
        let names = (try? registry.apply(.endRemovalGrace(backendIDs: overdue)))?.notes ?? []
        for name in names {
            logger.notice("\(name) was removed \(grace.shortDescription) ago: closing its open connections (removal_grace)")
        }
    }
}
