import CSwitchyard
import Glibc
import Logging
import Synchronization
import SwitchyardCore

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
struct DNSDiscoveryLoop {
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
            let ready = Descriptor.poll(&pollSet, timeout: pollTimeout(now: clock.now))
            if ready < 0 {
                if ready != -EINTR { discovery.logger.error("dns poll: \(errnoText(-ready))") }
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
