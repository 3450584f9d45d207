import CSwitchyard
import Glibc
import SwitchyardCore

// Choosing a backend and connecting to it, with failover.
extension Worker {
    /// Adopts every service's newer snapshot.
    func adoptSnapshotsIfNewer() {
        for picker in pickers.values { adoptSnapshotIfNewer(picker) }
    }

    func adoptSnapshotIfNewer(_ picker: ServicePicker) {
        guard let previous = picker.adoptIfNewer() else { return }
        let newer = picker.snapshot
        if previous.settings != newer.settings { updateTickInterval() }
        // Sessions shut down (`shutdown BACKEND`, `on-down`, `on-up`, `removal-grace`): close
        // this worker's connections to every backend whose epoch moved, with its cause, in one
        // pass over the connections.
        // Backends are compared by id: pairwise when the pool kept its order (one pass, as after
        // a health flap or a slow-start step), else through a table of the old epochs (a pool
        // change, rare): never a search of the old pool per backend.
        var moved: [(backend: BackendState, closed: Int)] = []
        if previous.backends.count == newer.backends.count && zip(previous.backends, newer.backends).allSatisfy({ $0.id == $1.id }) {
            for (old, backend) in zip(previous.backends, newer.backends) where old.shutdownEpoch != backend.shutdownEpoch {
                moved.append((backend, 0))
            }
        } else {
            let epochs = Dictionary(previous.backends.map { ($0.id, $0.shutdownEpoch) }, uniquingKeysWith: { first, _ in first })
            for backend in newer.backends where epochs[backend.id].map({ $0 != backend.shutdownEpoch }) == true {
                moved.append((backend, 0))
            }
        }
        guard !moved.isEmpty else { return }
        for connection in connections where connection.inUse && connection.service === picker && !connection.machine.isClosing {
            guard let index = moved.firstIndex(where: { $0.backend.id == connection.backendID }) else { continue }
            connection.causeOverride = moved[index].backend.shutdownCause
            perform(connection.machine.close(.administrative), on: connection)
            moved[index].closed += 1
        }
        for (backend, closed) in moved where closed > 0 {
            logger.notice("\(picker.registry.service)/\(backend.name): closed \(closed) connection(s) with a reset (\(backend.shutdownCause))")
        }
    }

    /// Picks a backend not yet tried for this client and starts connecting; queues the client
    /// when every selectable backend is at its `max-connections`; closes it when none is left.
    func connectNext(_ connection: Connection) {
        guard let picker = connection.service else { return }
        adoptSnapshotIfNewer(picker)
        let snapshot = picker.snapshot
        var tried = TriedBackends()
        for id in connection.triedBackendIDs {
            if let index = snapshot.backends.firstIndex(where: { $0.id == id }) { tried.insert(index) }
        }
        // Clients already wait: a newcomer queues behind them rather than take a slot first.
        if snapshot.hasConnectionLimits && connection.triedBackendIDs.isEmpty && picker.registry.queue.count > 0 {
            enqueue(connection, picker)
            return
        }
        switch choose(picker, snapshot, excluding: tried, clientKey: connection.clientKey) {
        case let .backend(index, limited):
            startConnect(connection, snapshot.backends[index], limited: limited, settings: snapshot.settings)
        case .allFull:
            enqueue(connection, picker)
        case .none:
            if connection.triedBackendIDs.isEmpty {
                logger.debug("no backend is selectable; closing client")
            } else {
                warnOccasionally("nobackend", "no backend accepted a client after \(connection.triedBackendIDs.count) attempt(s); closing it")
            }
            // A client whose backend went away after the connect is reset, not closed: it may
            // already believe it reached a server.
            perform(connection.machine.close(connection.wasRedispatched ? .backendError : .noBackend), on: connection)
        }
    }

    enum Choice {
        /// This index of the snapshot's backends, already counted in its `active` (`limited`:
        /// against its `max-connections`).
        case backend(Int, limited: Bool)
        /// Every backend that could take the client is at its limit: it waits.
        case allFull
        case none
    }

    /// The pick of the tier's balancer for the tier the client falls in (failover tiers), skipping
    /// backends at their limit; the other tiers, in order, only when no backend of that one can
    /// take the client (none selectable, or every one already tried). A tier whose backends are
    /// full queues the client rather than send it on.
    func choose(_ picker: ServicePicker, _ snapshot: BackendSnapshot, excluding tried: TriedBackends, clientKey: UInt64) -> Choice {
        guard let first = picker.tierChooser.next(clientKey: clientKey) else { return .none }
        var sawFull = false
        if let choice = pickCounting(&picker.tierBalancers[first], snapshot, excluding: tried, clientKey: clientKey, sawFull: &sawFull) {
            return choice
        }
        for tier in picker.tierBalancers.indices where tier != first && !sawFull {
            if let choice = pickCounting(&picker.tierBalancers[tier], snapshot, excluding: tried, clientKey: clientKey, sawFull: &sawFull) {
                return choice
            }
        }
        return sawFull ? .allFull : .none
    }

    /// Asks `balancer` until it offers a backend with room, and counts the connection there.
    private func pickCounting(_ balancer: inout any Balancer, _ snapshot: BackendSnapshot, excluding tried: TriedBackends,
                              clientKey: UInt64, sawFull: inout Bool) -> Choice? {
        var excluded = tried
        while let index = balancer.pick(clientKey: clientKey, excluding: excluded) {
            let backend = snapshot.backends[index]
            guard let limit = backend.spec.maxConnections else {
                backend.stats.active.add(1, ordering: .relaxed)
                return .backend(index, limited: false)
            }
            if backend.stats.reserve(limit: limit) { return .backend(index, limited: true) }
            sawFull = true
            excluded.insert(index)
        }
        return nil
    }

    /// Connects `connection` to `backend`, whose `active` already counts it.
    func startConnect(_ connection: Connection, _ backend: BackendState, limited: Bool, settings: ServiceSettings) {
        connection.triedBackendIDs.append(backend.id)
        connection.listener?.figures.connectAttempts &+= 1
        if connection.triedBackendIDs.count > 1 { connection.listener?.figures.connectRetries &+= 1 }
        connection.connectStartedAt = LatencyClock.now()
        connection.backendID = backend.id
        connection.backendStats = backend.stats
        connection.backendLimited = limited
        guard let address = backend.spec.endpoint.address else {
            releaseBackendSlot(connection)
            connection.backendID = -1
            connectFailed(connection, backend: backend, reason: "address not resolved")
            return
        }
        let fd = socket(SocketAddress.family(of: address), Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        if fd < 0 {
            let code = swy_errno()
            releaseBackendSlot(connection)
            warnOccasionally("socket", "cannot open a backend socket: \(Errno.describe(code)); closing client")
            perform(connection.machine.close(.noBackend), on: connection)
            return
        }
        Socket.configureStream(fd)
        guard bindSourceAddress(fd, connection: connection, backend: backend, address: address, settings: settings) else { return }
        if let timeout = settings.backendTimeout { _ = Socket.setDeadPeerTimeout(fd, timeout) }
        connection.backendFD = fd
        connection.backendEndpoint = backend.spec.endpoint
        connection.backendName = backend.name
        connection.sendProxy = backend.spec.sendProxy ?? settings.sendProxy // PROXY protocol
        connection.shutdownEpoch = backend.shutdownEpoch
        backend.stats.total.add(1, ordering: .relaxed)
        let length = SocketAddress.fill(&connection.backendAddress, address: address, port: backend.spec.endpoint.port)
        withUnsafePointer(to: &connection.backendAddress) { storage in
            storage.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
                _ = submit(.connect(socket: fd, address: pointer, length: length), for: connection, kind: .connect)
            }
        }
        connection.connectDeadline = now + settings.connectTimeout.milliseconds
    }

    func handleConnect(_ connection: Connection, result: Int32) {
        connection.connectDeadline = nil
        guard !connection.machine.isClosing else { return }
        // PROXY protocol: the header goes first; failing to send it fails this backend like a connect.
        let result = result == 0 && connection.sendProxy != nil ? sendProxyHeader(connection) : result
        if result == 0 {
            recordConnected(connection, backend: connection.backendStats)
            connection.service?.snapshot.connectObserver?(connection.backendID, true, "")
            perform(connection.machine.connected(), on: connection)
            return
        }
        let timeout = connection.service?.snapshot.settings.connectTimeout ?? .zero
        let reason = result == -ECANCELED ? "connect timed out after \(timeout.shortDescription)"
            : Errno.describeResult(result)
        close(connection.backendFD)
        connection.backendFD = -1
        recordConnectFailed(connection, backend: connection.backendStats)
        connection.backendName = nil
        if let stats = connection.backendStats {
            stats.total.subtract(1, ordering: .relaxed)
            stats.failures.add(1, ordering: .relaxed)
        }
        let id = connection.backendID
        releaseBackendSlot(connection)
        connection.backendID = -1
        // No free local port is this host's shortage, not the backend's failure (SourceAddresses.swift).
        if !recordSourcePortExhaustion(connection, result: result) {
            connection.service?.snapshot.connectObserver?(id, false, reason)
            warnOccasionally("connect-\(id)", "backend \(connection.backendEndpoint?.description ?? "?"): \(reason); trying another")
        }
        perform(connection.machine.connectFailed(canRetry: true), on: connection)
    }

    func connectFailed(_ connection: Connection, backend: BackendState, reason: String) {
        backend.stats.failures.add(1, ordering: .relaxed)
        connection.listener?.figures.connectFailures &+= 1
        connection.service?.snapshot.connectObserver?(backend.id, false, reason)
        warnOccasionally("connect-\(backend.id)", "backend \(backend.spec.endpoint): \(reason); trying another")
        perform(connection.machine.connectFailed(canRetry: true), on: connection)
    }
}
