import CSwitchyard
import Glibc
import Logging
import Synchronization
import SwitchyardCore

/// Probes every backend on one thread of its own and publishes up/down verdicts to the registry.
///
/// Active checks: a non-blocking TCP connect, then (with `check-send-proxy`) a PROXY header,
/// then the bytes a `HealthDialog` from Core asks to send and read (`config.dialog(checking:)`:
/// the `type`'s protocol, the `steps`, or `send`/`expect`), all within `config.timeout`. The
/// dialog's verdict names the failing step and what was read; at most
/// `HealthCheckConfig.maximumProbeRead` bytes are read per probe. A check connects to the
/// backend's `checkEndpoint`: the backend itself, or the agent its `check-port`/`check-address`
/// name. Every backend has its own
/// schedule and socket in one poll(2) set, so a slow or silent backend never delays another.
/// With `type: tls` or `check-tls` (issue 22) a TLS handshake runs on the connected socket first
/// (`HealthProbeTLS`, HealthChecker+TLS.swift), after any PROXY header, and the dialog's bytes go
/// through it.
/// Passive checks: workers report failed connects with `recordConnectResult`, which feeds the
/// same rise/fall machine, so `fall` failed client connects mark a backend down at once.
/// A probe that gets no socket because descriptors ran out (EMFILE, ENFILE) is no verdict on its
/// backend: the rest of that round is skipped too, with a rate-limited warning (`SkippedProbes`).
///
/// Threads: `start`/`stop` from the owner's thread; `recordConnectResult` and `lastCheckText`
/// from any thread; everything in `HealthProbeLoop` only on the checker thread.
/// Lock order: `records` before the registry's own lock (a transition is published while
/// `records` is held so that two transitions of one backend are published in order).
public final class HealthChecker: ProbeChecker, Sendable {
    public let registry: BackendRegistry
    public let config: HealthCheckConfig
    let logger: Logger
    private let records = Mutex(Records())
    /// How many up backends have a failure run in progress; while 0, a passive success is a
    /// single atomic load with no lock.
    private let failingBackends = Atomic<Int>(0)
    let control: LoopControl
    /// Raised by each reload: the probe loop then makes its TLS contexts again from the files
    /// (a reload that keeps the check's settings does not restart the checker).
    let tlsFilesGeneration = Atomic<Int>(0)
    private let finishedLookups = Mutex<[Int: Result<SocketAddress, ResolveError>]>([:])

    private struct Record {
        var machine: HealthState
        var lastCheck: String?
        var failing: Bool { machine.isUp && machine.failureRun > 0 }
    }

    private struct Records {
        var byID: [Int: Record] = [:]
        var allDownLogged = false
    }

    /// `config` must have passed `validate()`. Throws if eventfd(2) fails.
    public init(registry: BackendRegistry, config: HealthCheckConfig, logger: Logger = Logger(label: "switchyard.health")) throws(SystemCallError) {
        self.registry = registry
        self.config = config
        self.logger = logger
        self.control = try LoopControl()
        // A checker that replaces another (a reload changed the check) starts from the verdicts
        // in force: a down backend stays down until `rise` checks pass.
        records.withLock { records in
            for backend in registry.snapshot().backends where !backend.health.isUp {
                records.byID[backend.id] = Record(
                    machine: .down(rise: config.rise, fall: config.fall), lastCheck: backend.health.lastCheck)
            }
        }
        // Check an added backend promptly instead of at the loop's next one-second turn.
        registry.addPublishObserver { [weak self] in self?.control.wakeup.signal() }
    }

    /// Starts the checker thread. Call once.
    public func start() throws(SystemCallError) {
        try control.start(name: "swy-health") { [self] in
            var loop = HealthProbeLoop(checker: self)
            loop.run()
        }
    }

    /// Ends the checker thread and waits for it; open probes are closed. Safe to call twice.
    public func stop() {
        control.stop()
    }

    /// One backend's active checks, for the metrics: the last one's duration and result, and a
    /// histogram of their round trips.
    public struct CheckFigures: Sendable {
        public var lastSeconds: Double
        public var lastSucceeded: Bool
        public var durations: LatencyHistogram
        /// The `notAfter` (seconds since the Unix epoch) of the certificate of the backend's last
        /// completed TLS handshake; nil without TLS checks (issue 22).
        public var certificateNotAfter: Int64?
    }

    private let checkFigures = Mutex<[Int: CheckFigures]>([:])

    /// The active-check figures of a backend, nil before its first check ended.
    public func checkFigures(backendID: Int) -> CheckFigures? {
        checkFigures.withLock { $0[backendID] }
    }

    func recordCheckTime(backendID: Int, duration: Duration, success: Bool) {
        let nanoseconds = duration.nanosecondsClamped
        checkFigures.withLock { figures in
            var entry = figures[backendID] ?? CheckFigures(lastSeconds: 0, lastSucceeded: false, durations: LatencyHistogram())
            entry.lastSeconds = Double(nanoseconds) / 1e9
            entry.lastSucceeded = success
            entry.durations.record(nanoseconds: nanoseconds)
            figures[backendID] = entry
        }
    }

    /// TLS checks (issue 22): a completed handshake's certificate expiry, for the metrics; nil
    /// forgets it (the backend's checks no longer use TLS).
    func recordCertificate(backendID: Int, notAfter: Int64?) {
        checkFigures.withLock { figures in
            var entry = figures[backendID] ?? CheckFigures(lastSeconds: 0, lastSucceeded: false, durations: LatencyHistogram())
            entry.certificateNotAfter = notAfter
            figures[backendID] = entry
        }
    }

    /// The text of the backend's latest check (active or passive), nil before the first one.
    public func lastCheckText(backendID: Int) -> String? {
        records.withLock { $0.byID[backendID]?.lastCheck }
    }

    /// Any thread (workers): the outcome of a client connect to the backend.
    /// Failures count like failed checks; a success only ends a failure run, cheaply: one atomic
    /// load and no lock unless some backend is failing.
    public func recordConnectResult(backendID: Int, success: Bool, reason: String) {
        if success {
            guard failingBackends.load(ordering: .relaxed) > 0 else { return }
            records.withLock { records in
                guard var record = records.byID[backendID], record.failing else { return }
                record.machine.recordPassiveSuccess()
                records.byID[backendID] = record
                failingBackends.subtract(1, ordering: .relaxed)
            }
            return
        }
        guard let backend = registry.snapshot().backends.first(where: { $0.id == backendID }),
              backend.admin != .maint else { return }
        record(.failure(reason: "client connect failed: \(reason)"), for: backend.id, name: backend.spec.endpoint.description)
    }

    /// Feeds one result into the backend's machine and publishes a transition.
    func record(_ result: HealthCheckResult, for backendID: Int, name: String) {
        records.withLock { records in
            var record = records.byID[backendID] ?? Record(machine: HealthState(rise: config.rise, fall: config.fall))
            let wasFailing = records.byID[backendID]?.failing ?? false
            let transition = record.machine.record(result)
            switch result {
            case let .success(detail): record.lastCheck = detail
            case let .failure(reason): record.lastCheck = reason
            }
            records.byID[backendID] = record
            if record.failing != wasFailing {
                failingBackends.add(record.failing ? 1 : -1, ordering: .relaxed)
            }
            guard let transition else { return }
            let verdict = HealthVerdict(isUp: record.machine.isUp, lastCheck: record.lastCheck ?? "")
            // Never refused: a verdict on a backend that has gone changes nothing.
            _ = try? registry.apply(.healthVerdict(backendID: backendID, verdict))
            switch transition {
            case let .wentDown(reason, checks):
                logger.warning("\(name) is down: \(reason) (\(checks) check\(checks == 1 ? "" : "s"))")
            case let .wentUp(checks):
                logger.notice("\(name) is up (\(checks) check\(checks == 1 ? "" : "s"))")
            }
            let backends = registry.snapshot().backends
            let allDown = !backends.isEmpty && !backends.contains { $0.health.isUp }
            if allDown && !records.allDownLogged {
                logger.error("all backends are down; new clients are closed")
                records.allDownLogged = true
            } else if !allDown && records.allDownLogged {
                logger.notice("\(name) is back; new clients are served again")
                records.allDownLogged = false
            }
        }
    }

    /// An up backend leaving maintenance starts again as "up, unconfirmed", like a new one: its
    /// first failed check (or client connect) marks it down at once. A down one stays down until
    /// `rise` checks pass.
    func resetToUnconfirmed(backendID: Int) {
        records.withLock { records in
            guard let record = records.byID[backendID], record.machine.isUp else { return }
            if record.failing { failingBackends.subtract(1, ordering: .relaxed) }
            records.byID[backendID]?.machine = HealthState(rise: config.rise, fall: config.fall)
        }
    }

    /// Drops the records of backends no longer configured.
    func forget(allBut ids: Set<Int>) {
        records.withLock { records in
            for (id, record) in records.byID where !ids.contains(id) {
                if record.failing { failingBackends.subtract(1, ordering: .relaxed) }
                records.byID[id] = nil
            }
        }
    }

    /// A lookup thread's answer; the loop collects it with `takeFinishedLookups()`.
    func lookupFinished(id: Int, _ result: Result<SocketAddress, ResolveError>) {
        finishedLookups.withLock { $0[id] = result }
        control.wakeup.signal()
    }

    func takeFinishedLookups() -> [Int: Result<SocketAddress, ResolveError>] {
        finishedLookups.withLock { lookups in
            defer { lookups = [:] }
            return lookups
        }
    }

}
