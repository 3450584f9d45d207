import CSwitchyard
import Glibc
import Logging
import SwitchyardCore

/// The checker thread's state: schedules, cached addresses and probes in flight.
/// Confined to that thread; never shared.
struct HealthProbeLoop: ProbePollLoop {
    struct Scheduled: ScheduledProbe {
        var name: String
        var endpoint: Endpoint
        var inMaintenance: Bool
        var nextStart: ContinuousClock.Instant
        /// Resolved once and cached; nil until the first successful lookup.
        var address: SocketAddress?
        /// The PROXY header version each check starts with (`check-send-proxy`); nil: none.
        var proxyHeader: ProxyProtocolVersion?
        /// Whether checks run inside TLS (`type: tls`, or `check-tls` of the service or backend).
        var usesTLS: Bool
        /// The TLS the backend's traffic gets (`backend-tls`), which its TLS checks use too.
        var backendTLS: BackendTLSSettings? = nil
    }

    enum Phase {
        case connecting
        /// TLS checks: connected (and any PROXY header sent), the TLS handshake runs.
        case handshaking
        /// Writing `bytes` from `offset`; once all are written, `then` goes to the dialog.
        case sending(bytes: [UInt8], offset: Int, then: HealthDialogEvent)
        /// Waiting for bytes or the backend's close, for the dialog.
        case receiving
    }

    struct Probe: PolledProbe {
        let fd: Int32
        var phase: Phase
        var dialog: any HealthDialog
        /// Bytes read in all steps, bounded by `HealthCheckConfig.maximumProbeRead`.
        var bytesRead = 0
        /// The backend closed its side and the dialog was told.
        var closedSeen = false
        let started: ContinuousClock.Instant
        let deadline: ContinuousClock.Instant
        /// The TLS layer once the handshake starts, for TLS checks.
        var tls: HealthProbeTLS?

        var pollEvents: Int16 {
            if let tls { return Int16(tls.pollEvents) }
            switch phase {
            case .connecting, .sending: return Int16(POLLOUT)
            case .receiving, .handshaking: return Int16(POLLIN)
            }
        }
    }

    let checker: HealthChecker
    var config: HealthCheckConfig { checker.config }
    let clock = ContinuousClock()
    var scheduled: [Int: Scheduled] = [:]
    var inFlight: [Int: Probe] = [:]
    var snapshotVersion: UInt64 = 0
    /// The service's `source` addresses: checks connect from them too, in turn (issue 13).
    var sources: [IPAddress] = []
    var nextSource = 0
    /// Backends whose hostname is being resolved on a lookup thread.
    var lookupsInFlight: Set<Int> = []
    var shortage = DescriptorShortage()
    /// TLS checks: the context their sessions are made from, on first use.
    var tlsContext = HealthTLSContext()
    /// The checker's `tlsFilesGeneration` `tlsContext` was made under.
    var tlsGeneration = 0

    let probeKind = (checks: "health checks", probe: "probe")
    let pollFailureLabel = "poll"

    init(checker: HealthChecker) {
        self.checker = checker
    }

    mutating func prepareTurn(now: ContinuousClock.Instant) {
        let generation = checker.tlsFilesGeneration.load(ordering: .relaxed)
        if generation != tlsGeneration {
            // A reload: CA files and client certificates are read again at the next TLS probe.
            tlsGeneration = generation
            tlsContext = HealthTLSContext()
        }
        adoptSnapshot(now: now)
        adoptLookups(now: now)
        startDueProbes(now: now)
    }

    func interval(of entry: Scheduled) -> Duration { config.interval }

    func isPaused(_ entry: Scheduled) -> Bool { entry.inMaintenance }

    /// Reads the registry's snapshot when it changed: schedules new backends (their first checks
    /// spread over one interval), forgets removed ones and notes maintenance.
    mutating func adoptSnapshot(now: ContinuousClock.Instant) {
        guard let snapshot = checker.registry.snapshotIfNewer(than: snapshotVersion) else { return }
        snapshotVersion = snapshot.version
        sources = snapshot.settings.sourceAddresses
        let added = snapshot.backends.filter { scheduled[$0.id] == nil }
        for (position, backend) in added.enumerated() {
            let offset = config.interval * (Double(position) / Double(added.count))
            scheduled[backend.id] = Scheduled(
                name: backend.spec.endpoint.description, endpoint: backend.spec.checkEndpoint,
                inMaintenance: backend.admin == .maint, nextStart: now + offset, usesTLS: false)
        }
        for backend in snapshot.backends {
            // Checks through PROXY and TLS (issue 22): the backend's keys over the service's; the
            // header is the one the backend's traffic gets (`send-proxy`), v1 if it gets none.
            let sendsHeader = backend.spec.checkSendProxy ?? config.checkSendProxy
            scheduled[backend.id]?.proxyHeader = sendsHeader ? backend.spec.sendProxy ?? snapshot.settings.sendProxy ?? .v1 : nil
            let usesTLS = config.tls.applies(backendCheckTLS: backend.spec.checkTLS)
            if scheduled[backend.id]?.usesTLS == true && !usesTLS { checker.recordCertificate(backendID: backend.id, notAfter: nil) }
            scheduled[backend.id]?.usesTLS = usesTLS
            scheduled[backend.id]?.backendTLS = snapshot.settings.backendTLS(for: backend.spec)
            let inMaintenance = backend.admin == .maint
            if scheduled[backend.id]?.inMaintenance == true && !inMaintenance {
                // Back from maintenance (often a redeploy): distrust it until checked, at once.
                checker.resetToUnconfirmed(backendID: backend.id)
                scheduled[backend.id]?.nextStart = now
            }
            scheduled[backend.id]?.inMaintenance = inMaintenance
            // `check-port`/`check-address` changed by a reload: check the new target from now on.
            if let entry = scheduled[backend.id], entry.endpoint != backend.spec.checkEndpoint {
                scheduled[backend.id]?.endpoint = backend.spec.checkEndpoint
                scheduled[backend.id]?.address = nil
                if let probe = inFlight.removeValue(forKey: backend.id) { closeDescriptor(probe.fd) }
                scheduled[backend.id]?.nextStart = now
            }
        }
        let ids = Set(snapshot.backends.map(\.id))
        for id in scheduled.keys where !ids.contains(id) {
            scheduled[id] = nil
            if let probe = inFlight.removeValue(forKey: id) { closeDescriptor(probe.fd) }
        }
        checker.forget(allBut: ids)
    }

    mutating func startLookup(id: Int, endpoint: Endpoint) {
        guard !lookupsInFlight.contains(id) else { return }
        let checker = self.checker
        do {
            let thread = try ControlThread(name: "swy-resolve") {
                checker.lookupFinished(id: id, Result { () throws(ResolveError) in try SocketAddress.resolve(endpoint) })
            }
            thread.detach()
            lookupsInFlight.insert(id)
        } catch {
            finish(id: id, .failure(reason: "cannot resolve \(endpoint.host): \(error)"))
        }
    }

    /// Caches finished lookups (and checks a newly resolved backend at once) or records their failure.
    mutating func adoptLookups(now: ContinuousClock.Instant) {
        guard !lookupsInFlight.isEmpty else { return }
        for (id, result) in checker.takeFinishedLookups() {
            lookupsInFlight.remove(id)
            guard scheduled[id] != nil else { continue }
            switch result {
            case let .success(address):
                scheduled[id]?.address = address
                scheduled[id]?.nextStart = now
            case let .failure(error):
                finish(id: id, .failure(reason: error.message))
            }
        }
    }

    mutating func expireProbes(now: ContinuousClock.Instant) {
        for (id, probe) in inFlight where probe.deadline <= now {
            let during: String
            switch probe.phase {
            case .connecting: during = "connecting"
            case .handshaking: during = "during the TLS handshake"
            case .sending(_, _, .connected): during = "sending the PROXY header"
            case .sending: during = "sending; \(probe.dialog.progress)"
            case .receiving: during = probe.dialog.progress
            }
            finish(id: id, .failure(reason: "timeout after \(config.timeout.shortDescription): \(during)"))
        }
    }

    mutating func succeed(id: Int, what: String) {
        let elapsed = inFlight[id].map { clock.now - $0.started } ?? .zero
        let micros = elapsed.components.seconds * 1_000_000 + elapsed.components.attoseconds / 1_000_000_000_000
        finish(id: id, .success(detail: "\(what) in \(micros / 1000).\(micros % 1000 / 100)ms"))
    }

    /// Closes the probe's socket and feeds its result in, unless the backend went into
    /// maintenance or away while the probe ran.
    mutating func finish(id: Int, _ result: HealthCheckResult) {
        let probe = inFlight.removeValue(forKey: id)
        if let probe { closeDescriptor(probe.fd) }
        guard let entry = scheduled[id], !entry.inMaintenance else { return }
        if let probe {
            let success = if case .success = result { true } else { false }
            checker.recordCheckTime(backendID: id, duration: ContinuousClock.now - probe.started, success: success)
        }
        checker.record(result, for: id, name: entry.name)
    }
}
