import CSwitchyard
import Glibc
import Logging
import Synchronization
import SwitchyardCore

/// What a watch follows.
public enum DNSDiscoveryTarget: Hashable, Sendable, CustomStringConvertible {
    /// `dns: NAME:PORT` (or a hostname in a backend list): the A and AAAA records of `name`;
    /// every address is a backend on `port`.
    case addresses(name: DNSName, port: UInt16)
    /// `dns-srv: _service._tcp.NAME`: the SRV records of `name`; each target's addresses, on the
    /// record's port, with its weight.
    case service(name: DNSName)

    public var description: String {
        switch self {
        case let .addresses(name, port): "\(name):\(port)"
        case let .service(name): "SRV \(name)"
        }
    }
}

/// A watched name's new backend set, handed to the watch's callback.
public struct DNSBackendChange: Hashable, Sendable {
    public var target: DNSDiscoveryTarget
    /// The whole new set, sorted by address then port (the same for any order of the answers).
    public var backends: [DNSBackend]
    /// How it differs from the previous set (everything is `added` the first time).
    public var difference: DNSBackendDifference
}

/// Counters and state of one watch, for logs, the admin socket and metrics.
public struct DNSWatchStatus: Hashable, Sendable {
    public var id: DNSDiscovery.WatchID
    public var target: DNSDiscoveryTarget
    /// DNS messages sent for this watch (every attempt of every question), added up when each
    /// resolution ends.
    public var queries: Int
    /// Resolutions that failed (each kept the last known set).
    public var failures: Int
    public var consecutiveFailures: Int
    /// When the last resolution that gave a set finished (monotonic clock).
    public var lastSuccess: ContinuousClock.Instant?
    /// The same moment as wall-clock seconds since 1970, for metrics and people.
    public var lastSuccessUnixTime: Double?
    /// Why the last failed resolution failed, nil before any failure.
    public var lastFailure: DNSResolutionFailure?
    /// The last known set; nil until the first success.
    public var backends: [DNSBackend]?
    /// When the name is asked next (nil while a resolution is under way).
    public var nextQuery: ContinuousClock.Instant?
}

/// Follows DNS names on a thread of its own (`swy-dns`, off the workers) and reports each new
/// backend set through the watch's callback.
///
/// Each watch is resolved at once, then again when the smallest TTL of its answer expires
/// (clamped by its `DNSRefreshPolicy`: `dns-min-ttl`, `dns-max-ttl`). A failed resolution
/// (timeout, SERVFAIL or another error code, a malformed answer, NXDOMAIN or no address at all)
/// keeps the last known set, is logged and counted, and is retried with exponential back-off.
/// When only one address family's question of a name fails (a server that answers A and
/// REFUSES AAAA), the other family's addresses are used (`DNSAddressLookup`) and the failure is
/// logged once, not every time it recurs.
/// The callback runs only when the set changed, never for an unchanged one.
///
/// Queries go straight to the configured servers over UDP, and over TCP when an answer is
/// truncated (`DNSExchange`); every watch's questions are in flight together in one poll(2) set,
/// so a slow server delays nobody else's answers.
///
/// Threads: any thread may call `watch`, `unwatch` and `status`; `start` and `stop` from the
/// owner's thread. Callbacks run on the discovery thread, one at a time and never under a lock
/// of this class, so a callback may call `status` or `unwatch`. A watch removed by `unwatch`
/// while its callback is being called (or about to be) may see that one call complete after
/// `unwatch` returned; no further call follows.
public final class DNSDiscovery: Sendable {
    public struct WatchID: Hashable, Sendable, Comparable, CustomStringConvertible {
        public let rawValue: Int
        public static func < (left: WatchID, right: WatchID) -> Bool { left.rawValue < right.rawValue }
        public var description: String { "watch \(rawValue)" }
    }

    /// The callback of a watch: the whole new set, whenever it changes.
    public typealias ChangeHandler = @Sendable (DNSBackendChange) -> Void

    /// Questions one resolution keeps in flight at once (an SRV answer may name many targets).
    static let maximumQuestionsInFlight = 16

    public let queryPolicy: DNSQueryPolicy
    fileprivate let logger: Logger
    private let control: LoopControl
    private let shared = Mutex(Shared())

    fileprivate struct Watch: Sendable {
        let target: DNSDiscoveryTarget
        let policy: DNSRefreshPolicy
        let onChange: ChangeHandler
        var status: DNSWatchStatus
    }

    fileprivate struct Shared: Sendable {
        var nextID = 0
        var watches: [WatchID: Watch] = [:]
        /// Bumped on every watch or unwatch, so the loop rereads `watches` only after one.
        var generation = 0
    }

    /// `queryPolicy` must have passed `validate()`. Throws if eventfd(2) fails.
    public init(queryPolicy: DNSQueryPolicy, logger: Logger = Logger(label: "switchyard.dns")) throws(SystemCallError) {
        self.queryPolicy = queryPolicy
        self.logger = logger
        self.control = try LoopControl()
    }

    /// Starts following `target`: it is resolved at once (once `start()` has run), and
    /// `onChange` gets every new set. `policy` must have passed `validate()`.
    @discardableResult
    public func watch(_ target: DNSDiscoveryTarget, policy: DNSRefreshPolicy, onChange: @escaping ChangeHandler) -> WatchID {
        let id = shared.withLock { shared -> WatchID in
            let id = WatchID(rawValue: shared.nextID)
            shared.nextID += 1
            let status = DNSWatchStatus(
                id: id, target: target, queries: 0, failures: 0, consecutiveFailures: 0,
                lastSuccess: nil, lastSuccessUnixTime: nil, lastFailure: nil, backends: nil, nextQuery: nil)
            shared.watches[id] = Watch(target: target, policy: policy, onChange: onChange, status: status)
            shared.generation += 1
            return id
        }
        control.wakeup.signal()
        return id
    }

    /// Stops following the watch; its questions in flight are dropped. Unknown ids are ignored.
    public func unwatch(_ id: WatchID) {
        shared.withLock { shared in
            if shared.watches.removeValue(forKey: id) != nil { shared.generation += 1 }
        }
        control.wakeup.signal()
    }

    /// The status of one watch, nil once unwatched.
    public func status(of id: WatchID) -> DNSWatchStatus? {
        shared.withLock { $0.watches[id]?.status }
    }

    /// Every watch's status, by id.
    public func statuses() -> [DNSWatchStatus] {
        shared.withLock { $0.watches.values.map(\.status) }.sorted { $0.id < $1.id }
    }

    /// Starts the discovery thread. Call once.
    public func start() throws(SystemCallError) {
        try control.start(name: "swy-dns") { [self] in
            var loop = DiscoveryLoop(discovery: self)
            loop.run()
        }
    }

    /// Ends the discovery thread and waits for it; questions in flight are dropped. Safe to call twice.
    public func stop() {
        control.stop()
    }

    // MARK: For the loop

    fileprivate var isStopping: Bool { control.isStopping }
    fileprivate var wakeupDescriptor: Int32 { control.wakeup.fd }
    fileprivate func drainWakeup() { control.wakeup.drain() }

    /// The watches, when they changed since `generation`.
    fileprivate func watchesIfChanged(since generation: Int) -> (Int, [WatchID: (DNSDiscoveryTarget, DNSRefreshPolicy)])? {
        shared.withLock { shared in
            guard shared.generation != generation else { return nil }
            return (shared.generation, shared.watches.mapValues { ($0.target, $0.policy) })
        }
    }

    fileprivate func publish(_ id: WatchID, _ update: (inout DNSWatchStatus) -> Void) {
        shared.withLock { shared in
            if shared.watches[id] != nil { update(&shared.watches[id]!.status) }
        }
    }

    fileprivate func handler(of id: WatchID) -> ChangeHandler? {
        shared.withLock { $0.watches[id]?.onChange }
    }
}

/// One resolution of a watch: its questions (first the name's own, then, for SRV, the targets
/// the answer gave no address for) and their answers. Confined to the discovery thread.
private final class Resolution {
    let target: DNSDiscoveryTarget
    /// Questions not yet asked.
    var pending: [(DNSName, DNSRecordType)]
    var inFlight: [DNSExchange] = []
    /// Answers by question, for the targets' phase.
    var answers: [DNSQuestion: DNSReply] = [:]
    /// A and AAAA questions no server answered, and why.
    var failures: [DNSQuestion: DNSResolutionFailure] = [:]
    /// The SRV answer, once it came.
    var serviceReply: DNSReply?
    var messagesSent = 0

    init(target: DNSDiscoveryTarget) {
        self.target = target
        switch target {
        case let .addresses(name, _): pending = [(name, .a), (name, .aaaa)]
        case let .service(name): pending = [(name, .srv)]
        }
    }

    /// What the A and AAAA questions of `name` gave, combined.
    func addressLookup(of name: DNSName) -> DNSAddressLookup {
        DNSAddressLookup([DNSRecordType.a, .aaaa].compactMap { type in
            let question = DNSQuestion(name: name, type: type)
            if let reply = answers[question] { return (type, DNSFamilyAnswer(reply)) }
            return failures[question].map { (type, .failed($0)) }
        })
    }

    func closeAll() {
        for exchange in inFlight { exchange.closeSocket() }
        inFlight.removeAll()
        pending.removeAll()
    }
}

/// The discovery thread's state. Confined to that thread; never shared.
private struct DiscoveryLoop {
    private struct Entry {
        var target: DNSDiscoveryTarget
        var state: DNSWatchState
        var resolution: Resolution?
        /// The address families that failed in the last resolution while others answered, as
        /// logged; a warning is written only when this changes.
        var familiesFailing: String?
    }

    let discovery: DNSDiscovery
    private let clock = ContinuousClock()
    private var entries: [DNSDiscovery.WatchID: Entry] = [:]
    private var generation = -1

    init(discovery: DNSDiscovery) {
        self.discovery = discovery
    }

    mutating func run() {
        var pollSet: [pollfd] = []
        var pollOwners: [(DNSDiscovery.WatchID, DNSExchange)] = []
        while !discovery.isStopping {
            adoptWatches(now: clock.now)
            startDueResolutions(now: clock.now)

            pollSet.removeAll(keepingCapacity: true)
            pollOwners.removeAll(keepingCapacity: true)
            pollSet.append(pollfd(fd: discovery.wakeupDescriptor, events: Int16(POLLIN), revents: 0))
            for (id, entry) in entries {
                for exchange in entry.resolution?.inFlight ?? [] where exchange.fd >= 0 {
                    pollSet.append(pollfd(fd: exchange.fd, events: exchange.pollEvents, revents: 0))
                    pollOwners.append((id, exchange))
                }
            }
            let ready = Glibc.poll(&pollSet, nfds_t(pollSet.count), pollTimeout(now: clock.now))
            if ready < 0 {
                let code = Glibc.errno
                if code != EINTR { discovery.logger.error("dns poll: \(errnoText(code))") }
                continue
            }
            if pollSet[0].revents != 0 { discovery.drainWakeup() }
            for (slot, (id, exchange)) in pollOwners.enumerated() where pollSet[slot + 1].revents != 0 {
                // An earlier exchange of the same resolution may have failed it and closed this one.
                guard exchange.fd >= 0, entries[id]?.resolution?.inFlight.contains(where: { $0 === exchange }) == true else { continue }
                if let outcome = exchange.handle(revents: pollSet[slot + 1].revents, now: clock.now) {
                    finished(exchange, outcome, of: id, now: clock.now)
                }
            }
            expireExchanges(now: clock.now)
        }
        for entry in entries.values { entry.resolution?.closeAll() }
        entries.removeAll()
    }

    /// Picks up watches added or removed since the last turn.
    private mutating func adoptWatches(now: ContinuousClock.Instant) {
        guard let (current, watches) = discovery.watchesIfChanged(since: generation) else { return }
        generation = current
        for (id, entry) in entries where watches[id] == nil {
            entry.resolution?.closeAll()
            entries[id] = nil
        }
        for (id, (target, policy)) in watches where entries[id] == nil {
            entries[id] = Entry(target: target, state: DNSWatchState(policy: policy, now: now))
        }
    }

    private mutating func startDueResolutions(now: ContinuousClock.Instant) {
        for (id, entry) in entries where entry.resolution == nil && entry.state.nextQuery <= now {
            let resolution = Resolution(target: entry.target)
            entries[id]?.resolution = resolution
            discovery.publish(id) { $0.nextQuery = nil }
            askPending(resolution, of: id, now: now)
        }
    }

    /// Starts pending questions up to the in-flight limit; concludes the resolution when nothing
    /// is left to ask or wait for.
    private mutating func askPending(_ resolution: Resolution, of id: DNSDiscovery.WatchID, now: ContinuousClock.Instant) {
        while resolution.inFlight.count < DNSDiscovery.maximumQuestionsInFlight, !resolution.pending.isEmpty {
            let (name, type) = resolution.pending.removeFirst()
            let exchange = DNSExchange(name: name, type: type, policy: discovery.queryPolicy, now: now)
            resolution.inFlight.append(exchange)
            if let outcome = exchange.start(now: now) {
                finished(exchange, outcome, of: id, now: now)
                // A failure ends the resolution (and empties `pending`).
                guard entries[id]?.resolution === resolution else { return }
            }
        }
        if resolution.inFlight.isEmpty && resolution.pending.isEmpty {
            conclude(resolution, of: id, now: now)
        }
    }

    private mutating func finished(_ exchange: DNSExchange, _ outcome: DNSExchange.Outcome, of id: DNSDiscovery.WatchID, now: ContinuousClock.Instant) {
        guard let resolution = entries[id]?.resolution else { return }
        resolution.inFlight.removeAll { $0 === exchange }
        resolution.messagesSent += exchange.messagesSent
        switch outcome {
        case let .failed(failure) where exchange.type == .a || exchange.type == .aaaa:
            // One family failing does not discard the other's addresses; `conclude` decides.
            resolution.failures[DNSQuestion(name: exchange.name, type: exchange.type)] = describe(failure, exchange)
            askPending(resolution, of: id, now: now)
        case let .failed(failure):
            // A failed SRV question fails the whole resolution: half an answer is not a set.
            for other in resolution.inFlight { resolution.messagesSent += other.messagesSent }
            resolution.closeAll()
            record(.failed(describe(failure, exchange)), for: id, resolution: resolution, now: now)
        case let .answered(reply):
            let question = DNSQuestion(name: exchange.name, type: exchange.type)
            if exchange.type == .srv, case .service = resolution.target {
                resolution.serviceReply = reply
                resolution.pending += targetsToAsk(reply)
            } else {
                resolution.answers[question] = reply
            }
            askPending(resolution, of: id, now: now)
        }
    }

    /// The failure with the question named, for the log and the status.
    private func describe(_ failure: DNSResolutionFailure, _ exchange: DNSExchange) -> DNSResolutionFailure {
        switch failure {
        case .timeout: .timeout
        case let .serverFailure(code): .serverFailure(code)
        case let .malformed(text): .malformed("\(exchange.name) \(exchange.type): \(text)")
        case let .empty(text): .empty(text)
        case let .system(text): .system("\(exchange.name) \(exchange.type): \(text)")
        }
    }

    /// The A and AAAA questions for SRV targets of the lowest priority that the additional
    /// section gave no address for.
    private func targetsToAsk(_ reply: DNSReply) -> [(DNSName, DNSRecordType)] {
        let offered = reply.services.filter { $0.target != .root }
        guard let priority = offered.map(\.priority).min() else { return [] }
        var seen: Set<DNSName> = []
        var questions: [(DNSName, DNSRecordType)] = []
        for record in offered where record.priority == priority && seen.insert(record.target).inserted {
            if reply.additionalAddresses(of: record.target) == nil {
                questions += [(record.target, .a), (record.target, .aaaa)]
            }
        }
        return questions
    }

    /// Every question is answered: build the set.
    private mutating func conclude(_ resolution: Resolution, of id: DNSDiscovery.WatchID, now: ContinuousClock.Instant) {
        var ttl = UInt32.max
        var failure: DNSResolutionFailure?
        var familiesFailing: [String] = []
        func addresses(of name: DNSName) -> [IPAddress] {
            switch resolution.addressLookup(of: name) {
            case let .failed(reason):
                // Every family of the name failed: so does the resolution, as before.
                failure = failure ?? reason
                return []
            case let .found(found, minimumTTL, _, failedFamilies):
                if let minimumTTL { ttl = min(ttl, minimumTTL) }
                for (type, reason) in failedFamilies.sorted(by: { $0.key.rawValue < $1.key.rawValue }) {
                    familiesFailing.append("\(name) \(type): \(reason)")
                }
                return found
            }
        }
        let backends: [DNSBackend]
        let emptyReason: String
        switch resolution.target {
        case let .addresses(name, port):
            backends = DNSBackendSet.addresses(addresses(of: name), port: port)
            let nameError = if case .found(_, _, nameError: true, _) = resolution.addressLookup(of: name) { true } else { false }
            emptyReason = nameError ? "NXDOMAIN" : "no A or AAAA records"
        case .service:
            guard let reply = resolution.serviceReply else { return }
            if let minimum = reply.minimumTTL { ttl = min(ttl, minimum) }
            let resolved = reply.services.map { record -> (record: DNSServiceRecord, addresses: [IPAddress]) in
                if let glue = reply.additionalAddresses(of: record.target) {
                    ttl = min(ttl, glue.minimumTTL)
                    return (record, glue.addresses)
                }
                return (record, addresses(of: record.target))
            }
            backends = DNSBackendSet.services(resolved)
            emptyReason = reply.outcome == .nameError ? "NXDOMAIN"
                : reply.services.isEmpty ? "no SRV records" : "no address for any SRV target"
        }
        if let failure {
            record(.failed(failure), for: id, resolution: resolution, now: now)
            return
        }
        noteFamiliesFailing(familiesFailing, of: id)
        let resolutionResult: DNSResolution = backends.isEmpty
            ? .failed(.empty(emptyReason))
            : .resolved(backends, minimumTTL: ttl == .max ? 0 : ttl)
        record(resolutionResult, for: id, resolution: resolution, now: now)
    }

    /// Logs when the set of address families failing beside answering ones changes.
    private mutating func noteFamiliesFailing(_ failing: [String], of id: DNSDiscovery.WatchID) {
        guard let entry = entries[id] else { return }
        let text = failing.isEmpty ? nil : failing.joined(separator: "; ")
        guard text != entry.familiesFailing else { return }
        entries[id]?.familiesFailing = text
        if let text {
            discovery.logger.warning("dns \(entry.target): \(text); using the addresses of the family that answered")
        } else {
            discovery.logger.notice("dns \(entry.target): every address family answers again")
        }
    }

    /// Feeds the result into the watch's state, publishes the status, logs, and calls back when
    /// the set changed.
    private mutating func record(_ result: DNSResolution, for id: DNSDiscovery.WatchID, resolution: Resolution, now: ContinuousClock.Instant) {
        guard var entry = entries[id], entry.resolution === resolution else { return }
        let hadFailures = entry.state.consecutiveFailures
        let event = entry.state.record(result, at: now)
        entry.resolution = nil
        entries[id] = entry
        let state = entry.state
        let sent = resolution.messagesSent
        let wallClock = state.lastSuccess == now ? Self.unixTime() : nil
        discovery.publish(id) { status in
            status.queries += sent
            status.failures = state.failures
            status.consecutiveFailures = state.consecutiveFailures
            status.lastSuccess = state.lastSuccess
            if let wallClock { status.lastSuccessUnixTime = wallClock }
            status.lastFailure = state.lastFailure
            status.backends = state.backends
            status.nextQuery = state.nextQuery
        }
        let logger = discovery.logger
        let target = entry.target
        switch event {
        case let .failed(failure, keeping, retryIn):
            let kept = state.backends == nil ? "no backends known yet" : "keeping \(keeping) backend\(keeping == 1 ? "" : "s")"
            logger.warning("dns \(target): \(failure); \(kept); next try in \(retryIn.shortDescription)")
        case .unchanged:
            if hadFailures > 0 { logger.notice("dns \(target): answered again after \(hadFailures) failure\(hadFailures == 1 ? "" : "s"); backends unchanged") }
        case let .changed(backends, difference):
            let listed = backends.prefix(8).map(\.description).joined(separator: " ")
            let more = backends.count > 8 ? " and \(backends.count - 8) more" : ""
            logger.notice("dns \(target): \(backends.count) backend\(backends.count == 1 ? "" : "s") (\(difference.summary)): \(listed)\(more)")
            discovery.handler(of: id)?(DNSBackendChange(target: target, backends: backends, difference: difference))
        }
    }

    /// Ends attempts past their deadline.
    private mutating func expireExchanges(now: ContinuousClock.Instant) {
        for (id, entry) in entries {
            guard let resolution = entry.resolution else { continue }
            for exchange in resolution.inFlight where exchange.deadline <= now {
                guard entries[id]?.resolution === resolution else { break }
                if let outcome = exchange.expire(now: now) {
                    finished(exchange, outcome, of: id, now: now)
                }
            }
        }
    }

    /// Milliseconds until the next due resolution or attempt deadline, 0 to 1000.
    private func pollTimeout(now: ContinuousClock.Instant) -> Int32 {
        var next = now + .seconds(1)
        for entry in entries.values {
            if let resolution = entry.resolution {
                for exchange in resolution.inFlight { next = min(next, exchange.deadline) }
            } else {
                next = min(next, entry.state.nextQuery)
            }
        }
        guard next > now else { return 0 }
        // Round up so that the deadline has passed when poll returns.
        return Int32(min(1000, ((next - now).nanosecondsClamped + 999_999) / 1_000_000))
    }

    /// Seconds since 1970 (CLOCK_REALTIME).
    private static func unixTime() -> Double {
        var time = timespec()
        clock_gettime(CLOCK_REALTIME, &time)
        return Double(time.tv_sec) + Double(time.tv_nsec) / 1e9
    }
}
