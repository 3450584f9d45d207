import CSwitchyard
import Glibc
import Logging
import SwitchyardCore

/// Asks the agents of one service's backends (HAProxy's agent check, `agent-port`) what state
/// and weight they want, on one thread of its own, and publishes what they say to the registry
/// as each backend's `agent` verdict; `BackendState.selectable` combines it with the health
/// check and the operator (`AgentVerdict` has the rules).
///
/// Each backend with an `agent-port` has its own schedule (`agent-interval`, first checks spread
/// over one interval) and its own non-blocking socket in one poll(2) set: connect, send
/// `agent-send` if given, read one line of at most `AgentReply.maximumLength` bytes, all within
/// the settings' `timeout`. A check that fails (no connection, timeout, a reply too long or not
/// an agent's) changes nothing but the verdict's `error`, as in HAProxy, where a failed agent is
/// ignored because reachability is the health check's job: the agent's last words stay in force.
/// Failures are logged at most once per `warningInterval` per backend. A check that gets no
/// socket because descriptors ran out (EMFILE, ENFILE) skips the rest of its round, with a
/// rate-limited warning (`SkippedProbes`), like the health checker's.
///
/// Agent checks go on in every state, maintenance included: only the agent can end the
/// `drain` or `maint` it asked for.
///
/// Threads: `start`/`stop` from the owner's thread; everything in `AgentLoop` only on the
/// checker's thread, which is the only one that publishes `agent` verdicts.
public final class AgentChecker: ProbeChecker, Sendable {
    public let registry: BackendRegistry
    let logger: Logger
    let control: LoopControl
    /// A failing agent is logged at most this often (each warning counts the failures since).
    static let warningInterval: Duration = .seconds(30)

    /// Throws if eventfd(2) fails.
    public init(registry: BackendRegistry, logger: Logger = Logger(label: "switchyard.agent")) throws(SystemCallError) {
        self.registry = registry
        self.logger = logger
        self.control = try LoopControl()
        // Schedule an added backend (or a changed agent) promptly, not at the next one-second turn.
        registry.addPublishObserver { [weak self] in self?.control.wakeup.signal() }
    }

    /// Starts the checker thread. Call once.
    public func start() throws(SystemCallError) {
        try control.start(name: "swy-agent") { [self] in
            var loop = AgentLoop(checker: self)
            loop.run()
        }
    }

    /// Ends the checker thread and waits for it; open checks are closed. Safe to call twice.
    public func stop() {
        control.stop()
    }

    /// Sets backend `id`'s agent verdict (nil: it has no agent any more); the registry publishes
    /// only if that changes its state.
    fileprivate func publish(_ verdict: AgentVerdict?, for id: Int) {
        // Never refused: a verdict on a backend that has gone changes nothing.
        _ = try? registry.apply(.agentVerdict(backendID: id, verdict))
    }
}

/// The agent checker thread's state: schedules, verdicts and checks in flight.
/// Confined to that thread; never shared.
private struct AgentLoop: ProbePollLoop {
    struct Scheduled: ScheduledProbe {
        var name: String
        var settings: AgentCheckSettings
        var endpoint: Endpoint
        var nextStart: ContinuousClock.Instant
        /// What the agent has said so far, as last published.
        var verdict: AgentVerdict?
        /// Failed checks since the last warning, for the rate-limited log.
        var failures = SkippedProbes(warningInterval: AgentChecker.warningInterval)
    }

    enum Phase {
        case connecting
        case sending(offset: Int)
        case reading
    }

    struct Check: PolledProbe {
        let fd: Int32
        var phase: Phase
        var reply: [UInt8] = []
        let deadline: ContinuousClock.Instant

        var pollEvents: Int16 { if case .reading = phase { Int16(POLLIN) } else { Int16(POLLOUT) } }
    }

    let checker: AgentChecker
    let clock = ContinuousClock()
    var scheduled: [Int: Scheduled] = [:]
    var inFlight: [Int: Check] = [:]
    private var snapshotVersion: UInt64 = 0
    var shortage = DescriptorShortage()
    let probeKind = (checks: "agent checks", probe: "check")
    let pollFailureLabel = "agent checks: poll"

    init(checker: AgentChecker) {
        self.checker = checker
    }

    mutating func prepareTurn(now: ContinuousClock.Instant) {
        adoptSnapshot(now: now)
        startDueProbes(now: now)
    }

    func interval(of entry: Scheduled) -> Duration { entry.settings.effectiveInterval }

    /// Reads the registry's snapshot when it changed: schedules backends that gained an agent
    /// (first checks spread over one interval), moves changed ones (checked at once) and drops
    /// those that lost theirs or went away, clearing a verdict they leave behind.
    private mutating func adoptSnapshot(now: ContinuousClock.Instant) {
        guard let snapshot = checker.registry.snapshotIfNewer(than: snapshotVersion) else { return }
        snapshotVersion = snapshot.version
        let withAgents = snapshot.backends.filter { $0.spec.agent.isEnabled }
        let added = withAgents.filter { scheduled[$0.id] == nil }
        for (position, backend) in added.enumerated() {
            let offset = backend.spec.agent.effectiveInterval * (Double(position) / Double(added.count))
            scheduled[backend.id] = Scheduled(
                name: backend.name, settings: backend.spec.agent, endpoint: backend.spec.agent.endpoint(of: backend.spec.endpoint)!,
                nextStart: now + offset, verdict: backend.agent)
        }
        for backend in withAgents {
            guard let entry = scheduled[backend.id], entry.settings != backend.spec.agent else { continue }
            // A reload changed the agent: ask the new one from now on, at once.
            scheduled[backend.id]?.settings = backend.spec.agent
            scheduled[backend.id]?.endpoint = backend.spec.agent.endpoint(of: backend.spec.endpoint)!
            scheduled[backend.id]?.nextStart = now
            if let check = inFlight.removeValue(forKey: backend.id) { closeDescriptor(check.fd) }
        }
        let keep = Set(withAgents.map(\.id))
        for id in scheduled.keys where !keep.contains(id) {
            scheduled[id] = nil
            if let check = inFlight.removeValue(forKey: id) { closeDescriptor(check.fd) }
        }
        // A backend without an agent keeps no agent verdict (its agent was configured away).
        for backend in snapshot.backends where backend.agent != nil && !backend.spec.agent.isEnabled {
            checker.publish(nil, for: backend.id)
        }
    }

    mutating func startProbe(id: Int, entry: Scheduled, now: ContinuousClock.Instant) {
        // Backends are resolved when configured, and `agent-address` is an IP address: no lookup here.
        guard entry.endpoint.address != nil, let address = try? SocketAddress.resolve(entry.endpoint) else {
            finish(id: id, .failure("\(entry.endpoint.host) is not resolved"))
            return
        }
        let deadline = now + entry.settings.timeout
        switch Socket.startConnect(to: address) {
        case let .noSocket(code) where code == EMFILE || code == ENFILE:
            // Out of descriptors is this process's shortage, not the agent's failure.
            skipForWantOfDescriptors(code: code, now: now)
        case let .noSocket(code):
            finish(id: id, .failure("socket: \(errnoPhrase(code))"))
        case let .failed(code):
            finish(id: id, .failure("connect: \(errnoPhrase(code))"))
        case let .inProgress(fd):
            inFlight[id] = Check(fd: fd, phase: .connecting, deadline: deadline)
        case let .connected(fd):
            inFlight[id] = Check(fd: fd, phase: .connecting, deadline: deadline)
            connected(id: id)
        }
    }

    /// Handles poll events of one check.
    mutating func advance(id: Int, revents: Int32) {
        guard let check = inFlight[id] else { return }
        switch check.phase {
        case .connecting:
            let error = Socket.connectError(check.fd)
            if error != 0 {
                finish(id: id, .failure("connect: \(errnoPhrase(error))"))
            } else if revents & (POLLERR | POLLHUP) != 0 && revents & POLLOUT == 0 {
                finish(id: id, .failure("connect: connection failed"))
            } else {
                connected(id: id)
            }
        case let .sending(offset):
            send(id: id, from: offset)
        case .reading:
            receive(id: id)
        }
    }

    private mutating func connected(id: Int) {
        if scheduled[id]?.settings.send != nil {
            send(id: id, from: 0)
        } else {
            inFlight[id]?.phase = .reading
        }
    }

    private mutating func send(id: Int, from offset: Int) {
        guard let check = inFlight[id], let payload = scheduled[id]?.settings.send else { return }
        let sent = payload.withUnsafeBytes { Socket.send(check.fd, UnsafeRawBufferPointer(rebasing: $0[offset...])) }
        if sent < 0 {
            let code = Int32(-sent)
            if code == EAGAIN {
                inFlight[id]?.phase = .sending(offset: offset)
            } else {
                finish(id: id, .failure("send: \(errnoPhrase(code))"))
            }
        } else if offset + sent < payload.count {
            inFlight[id]?.phase = .sending(offset: offset + sent)
        } else {
            inFlight[id]?.phase = .reading
        }
    }

    /// Reads what has come; one line (to `\n`, or to the end of the stream) is the reply. At
    /// most `AgentReply.maximumLength` bytes are ever kept.
    private mutating func receive(id: Int) {
        guard var check = inFlight[id] else { return }
        var chunk = [UInt8](repeating: 0, count: AgentReply.maximumLength + 1 - check.reply.count)
        let count = chunk.withUnsafeMutableBytes { Socket.receive(check.fd, into: $0) }
        if count < 0 {
            let code = Int32(-count)
            if code != EAGAIN { finish(id: id, .failure("recv: \(errnoPhrase(code))")) }
            return
        }
        check.reply += chunk[0..<count]
        inFlight[id] = check
        if let newline = check.reply.firstIndex(of: 0x0A) {
            finish(id: id, Self.parsed(check.reply[...newline]))
        } else if check.reply.count > AgentReply.maximumLength {
            finish(id: id, .failure("reply longer than \(AgentReply.maximumLength) bytes"))
        } else if count == 0 {
            finish(id: id, check.reply.isEmpty ? .failure("connection closed without a reply") : Self.parsed(check.reply[...]))
        }
    }

    private static func parsed(_ line: ArraySlice<UInt8>) -> Result<AgentReply, AgentFailure> {
        do {
            return .success(try AgentReply.parse(line))
        } catch {
            return .failure(AgentFailure(error.message))
        }
    }

    mutating func expireProbes(now: ContinuousClock.Instant) {
        for (id, check) in inFlight where check.deadline <= now {
            let during = switch check.phase {
            case .connecting: "connecting"
            case .sending: "sending"
            case .reading: check.reply.isEmpty ? "waiting for a reply" : "waiting for the end of the line"
            }
            let timeout = scheduled[id]?.settings.timeout.shortDescription ?? "?"
            finish(id: id, .failure("timeout after \(timeout) \(during)"))
        }
    }

    /// Closes the check's socket and takes its outcome in: a reply updates the verdict, a
    /// failure only its `error`; a verdict that changed is published and logged.
    private mutating func finish(id: Int, _ outcome: Result<AgentReply, AgentFailure>) {
        if let check = inFlight.removeValue(forKey: id) { closeDescriptor(check.fd) }
        guard var entry = scheduled[id] else { return }
        let old = entry.verdict
        var verdict = old ?? AgentVerdict()
        switch outcome {
        case let .success(reply):
            verdict.apply(reply)
            if old?.error != nil { checker.logger.notice("\(entry.name): its agent at \(entry.endpoint) answers again") }
            let before = old ?? AgentVerdict()
            if verdict.adminState != before.adminState || verdict.health != before.health || verdict.weightPercent != before.weightPercent {
                checker.logger.notice("\(entry.name): agent says \(verdict.summary)")
            }
        case let .failure(failure):
            verdict.error = failure.reason
            if let count = entry.failures.skipped(at: clock.now) {
                checker.logger.warning("""
                    \(entry.name): agent check of \(entry.endpoint) failed: \(failure.reason) (\(count) failure\(count == 1 ? "" : "s") \
                    since the last warning); its last answer stays in force; warned at most every \
                    \(AgentChecker.warningInterval.shortDescription)
                    """)
            }
        }
        entry.verdict = verdict
        scheduled[id] = entry
        if verdict != old { checker.publish(verdict, for: id) }
    }
}

/// Why an agent check gave no reply to go by.
private struct AgentFailure: Error, ExpressibleByStringInterpolation {
    var reason: String
    init(_ reason: String) { self.reason = reason }
    init(stringLiteral value: String) { reason = value }
}
