import CSwitchyard
import Glibc
import Logging
import Synchronization
import SwitchyardCore

// Listeners: binding a listen address once per worker, adopting sockets handed over or passed by
// systemd, the listener ids, and publishing the table to the workers.
extension Instance {
    /// Binds `endpoint` once per worker. Throws a message naming the address.
    func bindListener(_ endpoint: Endpoint, service: ServiceRuntime) throws(ConfigError) -> ListenerEntry {
        let resolved = try resolve(endpoint)
        var descriptors: [Int32] = []
        do {
            try Socket.checkAvailable(resolved)
            var bound = resolved
            for _ in 0..<context.workerCount {
                let (fd, port) = try Socket.listen(on: bound)
                bound.port = port
                descriptors.append(fd)
            }
            return ListenerEntry(id: allocateListenerID(), service: service.name, endpoint: bound,
                                 registry: service.registry, descriptors: descriptors)
        } catch {
            for fd in descriptors { closeDescriptor(fd) }
            if error.errno == EADDRINUSE {
                throw ConfigError("cannot listen: \(error.call): address already in use (another process holds the port)")
            }
            throw ConfigError("cannot listen: \(error)")
        }
    }

    static func closeDescriptors(_ entry: ListenerEntry) {
        for fd in entry.descriptors { closeDescriptor(fd) }
    }

    /// A listener id no other entry of this process has had (ids are never reused, so a worker
    /// can tell a new socket from one it holds).
    func allocateListenerID() -> Int {
        state.withLock { state in
            defer { state.nextListenerID += 1 }
            return state.nextListenerID
        }
    }

    /// Publishes `entries` and waits (bounded) until every worker accepts on them.
    func publishListeners(_ entries: [ListenerEntry]) {
        let (services, tls) = state.withLock { state in
            state.listeners = entries
            return (state.services.mapValues(\.registry), Self.tlsContexts(state.services))
        }
        let version = context.listeners.publish(entries, services: services, tls: tls)
        state.withLock { $0.waker }?.wake()
        _ = waitUntilEveryWorkerAdopts(version, within: .seconds(2))
    }

    /// The TLS contexts of the services that terminate TLS, by name, for the listener table.
    static func tlsContexts(_ services: [String: ServiceRuntime]) -> [String: TLSServerContext] {
        services.compactMapValues { $0.tls.withLock { $0 } }
    }

    /// One `ListenerEntry` per configured listener (or more, when more sockets than workers
    /// were passed): handed-over sockets in a takeover, else systemd's activated sockets, and
    /// sockets bound here for the rest. Throws a message naming the listener; entries made so
    /// far are closed then.
    func makeListeners(_ configuration: Configuration, services: [String: ServiceRuntime],
                       activated: [ActivatedListener], handover: TakeoverSession?) throws(ConfigError) -> [ListenerEntry] {
        var toBind = configuration.listeners.map { listener in
            ActivationMatch.ConfiguredListener(service: listener.service, endpoint: (try? resolve(listener.endpoint)) ?? listener.endpoint)
        }
        var entries: [ListenerEntry] = []
        do throws(ConfigError) {
            if let handover {
                if !activated.isEmpty {
                    logger.warning("closing the \(activated.count) socket(s) systemd passed: in a takeover the listeners come from the running process")
                    for socket in activated { closeDescriptor(socket.descriptor) }
                }
                let match = HandoverMatch(handed: handover.message.listeners, listeners: toBind)
                for kept in match.kept {
                    let received = kept.handed.descriptors.map { handover.take($0) }
                    entries += try adopt(received, bound: kept.handed.bound, as: kept.listener.endpoint,
                                         service: services[kept.listener.service]!, canBindFresh: true)
                }
                handover.closeAfterCommit = match.toClose.flatMap(\.descriptors)
                handover.keptListeners = match.kept.count
                handover.boundListeners = match.toBind.count
                for line in match.summary { logger.notice("takeover: \(line)") }
                toBind = match.toBind
            } else if !activated.isEmpty {
                let match = ActivationMatch(sockets: activated, listeners: toBind)
                let problems = match.problems()
                guard problems.isEmpty else { throw ConfigError(problems.joined(separator: "; ")) }
                for warning in match.sharingWarnings(workers: context.workerCount) { logger.warning("\(warning)") }
                for assignment in match.assignments {
                    entries += try adopt(assignment.sockets.map(\.descriptor), bound: assignment.sockets[0].bound, as: assignment.listener.endpoint,
                                         service: services[assignment.listener.service]!, canBindFresh: false)
                }
                logger.notice("socket activation: \(activated.count) socket(s) from systemd for \(match.assignments.count) listener(s)")
                toBind = []
            }
            for listener in toBind {
                entries.append(try bindListener(listener.endpoint, service: services[listener.service]!))
            }
            return entries
        } catch {
            for entry in entries { Self.closeDescriptors(entry) }
            throw error
        }
    }

    /// Listener entries over sockets this process did not bind, one descriptor per worker
    /// (`WorkerDescriptorPlan`): more workers than sockets get sockets of their own bound next
    /// to them when `canBindFresh` and the kernel allows it (same user, `SO_REUSEPORT`), else
    /// duplicates. Each entry is known by `configured` (the host as written, as for a listener
    /// bound here, so that a reload finds it) with the address and port the sockets have.
    func adopt(_ received: [Int32], bound: Endpoint, as configured: Endpoint, service: ServiceRuntime,
                       canBindFresh: Bool) throws(ConfigError) -> [ListenerEntry] {
        var endpoint = configured
        endpoint.address = bound.address
        endpoint.port = bound.port
        let workers = context.workerCount
        var sets: [[Int32]]
        do {
            sets = try WorkerDescriptors.make(
                WorkerDescriptorPlan.entries(received: received.count, workers: workers, canBindFresh: canBindFresh),
                received: received, address: bound)
        } catch where canBindFresh {
            logger.notice("\(bound): cannot bind sockets next to the \(received.count) received (\(error)); \(workers) workers share them")
            do {
                sets = try WorkerDescriptors.make(
                    WorkerDescriptorPlan.entries(received: received.count, workers: workers, canBindFresh: false),
                    received: received, address: bound)
            } catch {
                throw ConfigError("service \(service.name): cannot share the sockets of \(bound) between workers: \(error)")
            }
        } catch {
            throw ConfigError("service \(service.name): cannot share the sockets of \(bound) between workers: \(error)")
        }
        return sets.map { descriptors in
            ListenerEntry(id: allocateListenerID(), service: service.name, endpoint: endpoint,
                          registry: service.registry, descriptors: descriptors)
        }
    }

    /// Waits (at most 5 s) until every worker has adopted the listener table in force, that
    /// is, accepts on every listener.
    func waitUntilEveryWorkerAccepts() -> Bool {
        waitUntilEveryWorkerAdopts(context.listeners.current.version, within: .seconds(5))
    }

    /// The one wait for the workers: true once every worker has adopted listener table
    /// `version`, false when `limit` passed first. Polls every millisecond: the workers
    /// acknowledge on their next loop turn, which a published table wakes them for.
    func waitUntilEveryWorkerAdopts(_ version: UInt64, within limit: Duration) -> Bool {
        let deadline = ContinuousClock.now + limit
        while !context.listeners.adoptedByAll(version) {
            if ContinuousClock.now >= deadline { return false }
            usleep(1000)
        }
        return true
    }

    /// `values` without repeats, in order.
    static func unique(_ values: [String]) -> [String] {
        var seen = Set<String>()
        return values.filter { seen.insert($0).inserted }
    }
}
