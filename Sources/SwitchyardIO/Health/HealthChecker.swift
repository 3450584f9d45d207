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
/// from any thread; everything in `ProbeLoop` only on the checker thread.
/// Lock order: `records` before the registry's own lock (a transition is published while
/// `records` is held so that two transitions of one backend are published in order).
public final class HealthChecker: Sendable {
    public let registry: BackendRegistry
    public let config: HealthCheckConfig
    fileprivate let logger: Logger
    private let records = Mutex(Records())
    /// How many up backends have a failure run in progress; while 0, a passive success is a
    /// single atomic load with no lock.
    private let failingBackends = Atomic<Int>(0)
    private let control: LoopControl
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
            var loop = ProbeLoop(checker: self)
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

    fileprivate func recordCheckTime(backendID: Int, duration: Duration, success: Bool) {
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
    fileprivate func recordCertificate(backendID: Int, notAfter: Int64?) {
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
    fileprivate func record(_ result: HealthCheckResult, for backendID: Int, name: String) {
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
    fileprivate func resetToUnconfirmed(backendID: Int) {
        records.withLock { records in
            guard let record = records.byID[backendID], record.machine.isUp else { return }
            if record.failing { failingBackends.subtract(1, ordering: .relaxed) }
            records.byID[backendID]?.machine = HealthState(rise: config.rise, fall: config.fall)
        }
    }

    /// Drops the records of backends no longer configured.
    fileprivate func forget(allBut ids: Set<Int>) {
        records.withLock { records in
            for (id, record) in records.byID where !ids.contains(id) {
                if record.failing { failingBackends.subtract(1, ordering: .relaxed) }
                records.byID[id] = nil
            }
        }
    }

    /// A lookup thread's answer; the loop collects it with `takeFinishedLookups()`.
    fileprivate func lookupFinished(id: Int, _ result: Result<SocketAddress, ResolveError>) {
        finishedLookups.withLock { $0[id] = result }
        control.wakeup.signal()
    }

    fileprivate func takeFinishedLookups() -> [Int: Result<SocketAddress, ResolveError>] {
        finishedLookups.withLock { lookups in
            defer { lookups = [:] }
            return lookups
        }
    }

    fileprivate var isStopping: Bool { control.isStopping }
    fileprivate var wakeupDescriptor: Int32 { control.wakeup.fd }
    fileprivate func drainWakeup() { control.wakeup.drain() }
}

/// The checker thread's state: schedules, cached addresses and probes in flight.
/// Confined to that thread; never shared.
private struct ProbeLoop {
    private struct Scheduled {
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
    }

    private enum Phase {
        case connecting
        /// TLS checks: connected (and any PROXY header sent), the TLS handshake runs.
        case handshaking
        /// Writing `bytes` from `offset`; once all are written, `then` goes to the dialog.
        case sending(bytes: [UInt8], offset: Int, then: HealthDialogEvent)
        /// Waiting for bytes or the backend's close, for the dialog.
        case receiving
    }

    private struct Probe {
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
    }

    let checker: HealthChecker
    private var config: HealthCheckConfig { checker.config }
    private let clock = ContinuousClock()
    private var scheduled: [Int: Scheduled] = [:]
    private var probes: [Int: Probe] = [:]
    private var snapshotVersion: UInt64 = 0
    /// The service's `source` addresses: checks connect from them too, in turn (issue 13).
    private var sources: [IPAddress] = []
    private var nextSource = 0
    /// Backends whose hostname is being resolved on a lookup thread.
    private var lookupsInFlight: Set<Int> = []
    /// Probes skipped for want of a descriptor, for the rate-limited warning.
    private var skippedProbes = SkippedProbes()
    /// The errno (EMFILE, ENFILE) of a probe of the current round that found no descriptor: the
    /// round's other probes are skipped without trying. nil while descriptors are to be had.
    private var roundOutOfDescriptors: Int32?
    /// TLS checks: the context their sessions are made from, on first use.
    private var tlsContext = HealthTLSContext()

    init(checker: HealthChecker) {
        self.checker = checker
    }

    mutating func run() {
        var pollSet: [pollfd] = []
        var pollIDs: [Int] = []
        while !checker.isStopping {
            adoptSnapshot(now: clock.now)
            adoptLookups(now: clock.now)
            startDueProbes(now: clock.now)

            pollSet.removeAll(keepingCapacity: true)
            pollIDs.removeAll(keepingCapacity: true)
            pollSet.append(pollfd(fd: checker.wakeupDescriptor, events: Int16(POLLIN), revents: 0))
            for (id, probe) in probes {
                var events: Int32
                switch probe.phase {
                case .connecting, .sending: events = POLLOUT
                case .receiving, .handshaking: events = POLLIN
                }
                if let tls = probe.tls { events = Int32(tls.pollEvents) }
                pollSet.append(pollfd(fd: probe.fd, events: Int16(events), revents: 0))
                pollIDs.append(id)
            }
            let ready = Glibc.poll(&pollSet, nfds_t(pollSet.count), pollTimeout(now: clock.now))
            if ready < 0 {
                let code = Glibc.errno
                if code != EINTR { checker.logger.error("poll: \(errnoText(code))") }
                continue
            }
            if pollSet[0].revents != 0 { checker.drainWakeup() }
            for (slot, id) in pollIDs.enumerated() where pollSet[slot + 1].revents != 0 {
                advance(probe: id, revents: Int32(pollSet[slot + 1].revents))
            }
            expireProbes(now: clock.now)
        }
        for probe in probes.values { closeDescriptor(probe.fd) }
        probes.removeAll()
    }

    /// Reads the registry's snapshot when it changed: schedules new backends (their first checks
    /// spread over one interval), forgets removed ones and notes maintenance.
    private mutating func adoptSnapshot(now: ContinuousClock.Instant) {
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
                if let probe = probes.removeValue(forKey: backend.id) { closeDescriptor(probe.fd) }
                scheduled[backend.id]?.nextStart = now
            }
        }
        let ids = Set(snapshot.backends.map(\.id))
        for id in scheduled.keys where !ids.contains(id) {
            scheduled[id] = nil
            if let probe = probes.removeValue(forKey: id) { closeDescriptor(probe.fd) }
        }
        checker.forget(allBut: ids)
    }

    private mutating func startLookup(id: Int, endpoint: Endpoint) {
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
    private mutating func adoptLookups(now: ContinuousClock.Instant) {
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

    private mutating func startDueProbes(now: ContinuousClock.Instant) {
        roundOutOfDescriptors = nil
        for (id, entry) in scheduled where entry.nextStart <= now && probes[id] == nil {
            // Keep the phase of the schedule; after a long stall start again from now, not in a burst.
            var next = entry.nextStart + config.interval
            if next <= now { next = now + config.interval }
            scheduled[id]?.nextStart = next
            if entry.inMaintenance { continue }
            if let code = roundOutOfDescriptors {
                skipForWantOfDescriptors(code: code, now: now)
            } else {
                startProbe(id: id, now: now)
            }
        }
    }

    /// A probe that could not have a socket: no verdict, and a warning now and then.
    private mutating func skipForWantOfDescriptors(code: Int32, now: ContinuousClock.Instant) {
        roundOutOfDescriptors = code
        guard let count = skippedProbes.skipped(at: now) else { return }
        let interval = skippedProbes.warningInterval.shortDescription
        checker.logger.warning("""
            health checks skipped: socket: \(errnoPhrase(code)) (\(count) probe\(count == 1 ? "" : "s") since the last \
            warning); no backend's state changes; warned at most every \(interval)
            """)
    }

    private mutating func startProbe(id: Int, now: ContinuousClock.Instant) {
        guard var entry = scheduled[id] else { return }
        if entry.address == nil {
            if entry.endpoint.address != nil {
                entry.address = try? SocketAddress.resolve(entry.endpoint)  // An IP literal: no lookup.
                scheduled[id] = entry
            } else {
                // getaddrinfo(3) can block for seconds: run it on a thread of its own so that
                // one slow DNS answer never delays the other backends' checks.
                startLookup(id: id, endpoint: entry.endpoint)
                return
            }
        }
        guard let address = entry.address else { return }
        let fd = socket(address.family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else {
            let code = Glibc.errno
            // Out of descriptors is this process's shortage, not the backend's failure.
            if code == EMFILE || code == ENFILE {
                skipForWantOfDescriptors(code: code, now: now)
            } else {
                finish(id: id, .failure(reason: "socket: \(errnoPhrase(code))"))
            }
            return
        }
        // With `source`, a check leaves from the same addresses as the clients' connects, so a
        // backend (or firewall) that admits only those sees its checks too.
        if !sources.isEmpty, let target = address.ipAddress {
            guard let source = SourceBinding.next(of: sources, reaching: target, turn: &nextSource) else {
                closeDescriptor(fd)
                finish(id: id, .failure(reason: "source has no \(target.isIPv6 ? "IPv6" : "IPv4") address to check \(entry.endpoint) from"))
                return
            }
            let code = SourceBinding.bind(fd, to: source)
            if code != 0 {
                closeDescriptor(fd)
                finish(id: id, .failure(reason: "bind to source \(source): \(errnoPhrase(code))"))
                return
            }
        }
        let result = address.withSockaddr { connect(fd, $0, $1) }
        let code = Glibc.errno
        probes[id] = Probe(
            fd: fd, phase: .connecting, dialog: config.dialog(checking: entry.endpoint), started: now, deadline: now + config.timeout)
        if result == 0 {
            connected(id: id)
        } else if code != EINPROGRESS && code != EINTR {
            finish(id: id, .failure(reason: errnoPhrase(code)))
        }
    }

    /// Handles poll events of one probe.
    private mutating func advance(probe id: Int, revents: Int32) {
        guard let probe = probes[id] else { return }
        if probe.tls != nil {
            advanceTLS(id: id)
            return
        }
        switch probe.phase {
        case .connecting:
            let error = Socket.connectError(probe.fd)
            if error != 0 {
                finish(id: id, .failure(reason: errnoPhrase(error)))
            } else if revents & (POLLERR | POLLHUP) != 0 && revents & POLLOUT == 0 {
                finish(id: id, .failure(reason: "connection failed"))
            } else {
                connected(id: id)
            }
        case .sending:
            write(id: id)
        case .receiving:
            receive(id: id)
        case .handshaking:
            break
        }
    }

    /// The TCP connect completed: the PROXY header first when the backend wants one, then TLS
    /// when the check uses it, then the dialog.
    private mutating func connected(id: Int) {
        guard let probe = probes[id], let entry = scheduled[id] else { return }
        guard let version = entry.proxyHeader else {
            transportReady(id: id)
            return
        }
        // The check's own addresses, as HAProxy's check-send-proxy sends them.
        let header = ProxyHeader.encode(
            version, source: Worker.socketAddress(probe.fd, peer: false), destination: Worker.socketAddress(probe.fd, peer: true))
        probes[id]?.phase = .sending(bytes: header.array, offset: 0, then: .connected)
        write(id: id)
    }

    /// The connection (and its PROXY header) is in place: the TLS handshake, or the dialog.
    private mutating func transportReady(id: Int) {
        guard let entry = scheduled[id] else { return }
        if entry.usesTLS {
            startTLS(id: id, host: entry.endpoint.host)
        } else {
            feed(id: id, .connected)
        }
    }

    /// Tells the probe's dialog what happened and does what it answers.
    private mutating func feed(id: Int, _ event: HealthDialogEvent) {
        guard var probe = probes[id] else { return }
        let action = probe.dialog.advance(event)
        probes[id] = probe
        switch action {
        case let .send(bytes):
            guard !bytes.isEmpty else { return feed(id: id, .sent) }
            probes[id]?.phase = .sending(bytes: bytes, offset: 0, then: .sent)
            if let tls = probe.tls {
                if let failure = tls.send(bytes, fd: probe.fd) { return finish(id: id, .failure(reason: failure)) }
                return advanceTLS(id: id)
            }
            write(id: id)
        case .receive:
            probes[id]?.phase = .receiving
            // A dialog that waits after the close would only be told of the close again.
            if probe.closedSeen { finish(id: id, .failure(reason: "closed by the backend; \(probe.dialog.progress)")) }
        case let .pass(text):
            succeed(id: id, what: text)
        case let .fail(text):
            finish(id: id, .failure(reason: text))
        }
    }

    /// Writes what the `.sending` phase holds, as far as the socket takes it.
    private mutating func write(id: Int) {
        guard let probe = probes[id], case let .sending(bytes, offset, then) = probe.phase else { return }
        let sent = bytes.withUnsafeBytes { raw in
            Glibc.send(probe.fd, raw.baseAddress! + offset, raw.count - offset, Int32(MSG_NOSIGNAL))
        }
        if sent < 0 {
            let code = Glibc.errno
            if code != EAGAIN && code != EINTR {
                let what = then == .connected ? "the PROXY header" : probe.dialog.progress
                finish(id: id, .failure(reason: "send: \(errnoPhrase(code)); \(what)"))
            }
        } else if offset + sent < bytes.count {
            probes[id]?.phase = .sending(bytes: bytes, offset: offset + sent, then: then)
        } else if then == .connected {
            transportReady(id: id)  // The PROXY header is out.
        } else {
            feed(id: id, then)
        }
    }

    /// Reads one chunk for the dialog: at most `HealthCheckConfig.maximumProbeRead` bytes per
    /// probe, so that a backend that floods its check fails it instead of growing our memory.
    private mutating func receive(id: Int) {
        guard let probe = probes[id] else { return }
        var chunk = [UInt8](repeating: 0, count: 4096)
        let count = chunk.withUnsafeMutableBytes { recv(probe.fd, $0.baseAddress, $0.count, 0) }
        if count < 0 {
            let code = Glibc.errno
            if code != EAGAIN && code != EINTR {
                finish(id: id, .failure(reason: "recv: \(errnoPhrase(code)); \(probe.dialog.progress)"))
            }
            return
        }
        if count == 0 {
            probes[id]?.closedSeen = true
            feed(id: id, .closed)
            return
        }
        let total = probe.bytesRead + count
        guard total <= HealthCheckConfig.maximumProbeRead else {
            finish(id: id, .failure(reason: "read over \(HealthCheckConfig.maximumProbeRead) bytes without a verdict; \(probe.dialog.progress)"))
            return
        }
        probes[id]?.bytesRead = total
        feed(id: id, .received(Array(chunk[0..<count])))
    }

    // MARK: TLS checks (issue 22); the TLS layer itself is HealthProbeTLS (HealthChecker+TLS.swift).

    /// Starts the TLS handshake on the probe's connected socket.
    private mutating func startTLS(id: Int, host: String) {
        switch tlsContext.probe(for: config.tls, host: host) {
        case let .failure(error):
            finish(id: id, .failure(reason: "TLS: \(error.message)"))
        case let .success(tls):
            probes[id]?.tls = tls
            probes[id]?.phase = .handshaking
            advanceTLS(id: id)
        }
    }

    /// The socket of a TLS probe is ready: moves bytes, then tells the dialog of the handshake's
    /// end (the whole check for `type: tls`), of its bytes sent, of a reply or of the close.
    private mutating func advanceTLS(id: Int) {
        guard let probe = probes[id], let tls = probe.tls else { return }
        let failure = tls.exchange(fd: probe.fd)
        if case .handshaking = probe.phase, let notAfter = tls.session.certificateNotAfter, tls.isEstablished || failure != nil {
            checker.recordCertificate(backendID: id, notAfter: notAfter)
        }
        if let failure { return finish(id: id, .failure(reason: failure)) }
        switch probe.phase {
        case .handshaking:
            guard tls.isEstablished else { return }
            if config.tls.handshakeOnly {
                return succeed(id: id, what: "TLS handshake (\(tls.handshakeSummary(now: secondsSinceEpoch())))")
            }
            feed(id: id, .connected)
            // A server that speaks first may have sent its banner with the handshake's end.
            if case .receiving = probes[id]?.phase { deliverTLS(id: id) }
        case .sending:
            guard !tls.hasUnsentBytes else { return }
            feed(id: id, .sent)
            if case .receiving = probes[id]?.phase { deliverTLS(id: id) }
        case .receiving:
            deliverTLS(id: id)
        case .connecting:
            break
        }
    }

    /// Gives the dialog what the TLS layer decrypted, then the backend's close if it came.
    private mutating func deliverTLS(id: Int) {
        guard let probe = probes[id], let tls = probe.tls else { return }
        let bytes = tls.takeReceived()
        if !bytes.isEmpty {
            let total = probe.bytesRead + bytes.count
            guard total <= HealthCheckConfig.maximumProbeRead else {
                return finish(id: id, .failure(reason: "read over \(HealthCheckConfig.maximumProbeRead) bytes without a verdict; \(probe.dialog.progress)"))
            }
            probes[id]?.bytesRead = total
            feed(id: id, .received(bytes))
        }
        if tls.peerClosed, let after = probes[id], case .receiving = after.phase, !after.closedSeen {
            probes[id]?.closedSeen = true
            feed(id: id, .closed)
        }
    }

    private mutating func expireProbes(now: ContinuousClock.Instant) {
        for (id, probe) in probes where probe.deadline <= now {
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

    private mutating func succeed(id: Int, what: String) {
        let elapsed = probes[id].map { clock.now - $0.started } ?? .zero
        let micros = elapsed.components.seconds * 1_000_000 + elapsed.components.attoseconds / 1_000_000_000_000
        finish(id: id, .success(detail: "\(what) in \(micros / 1000).\(micros % 1000 / 100)ms"))
    }

    /// Closes the probe's socket and feeds its result in, unless the backend went into
    /// maintenance or away while the probe ran.
    private mutating func finish(id: Int, _ result: HealthCheckResult) {
        let probe = probes.removeValue(forKey: id)
        if let probe { closeDescriptor(probe.fd) }
        guard let entry = scheduled[id], !entry.inMaintenance else { return }
        if let probe {
            let success = if case .success = result { true } else { false }
            checker.recordCheckTime(backendID: id, duration: ContinuousClock.now - probe.started, success: success)
        }
        checker.record(result, for: id, name: entry.name)
    }

    /// Milliseconds until the next probe start or deadline, at least 0, at most 1 s. A published
    /// snapshot wakes the loop through the registry's publish observer.
    private func pollTimeout(now: ContinuousClock.Instant) -> Int32 {
        var next = now + .seconds(1)
        for (id, entry) in scheduled where probes[id] == nil { next = min(next, entry.nextStart) }
        for probe in probes.values { next = min(next, probe.deadline) }
        guard next > now else { return 0 }
        let wait = next - now
        // Round up so that the deadline has passed when poll returns.
        return Int32(min(1000, (wait.nanosecondsClamped + 999_999) / 1_000_000))
    }
}
