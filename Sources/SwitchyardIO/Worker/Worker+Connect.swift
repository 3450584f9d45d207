import CSwitchyard
import Glibc
import SwitchyardCore

// Choosing a backend and connecting to it, with failover.

/// A connection's backend: the one being connected to or relayed to, and the ones tried before.
struct BackendAttempt {
    /// Stable id of that backend; -1 while none holds an `active` count.
    var id = -1
    var stats: BackendStats?
    /// For log lines only; copying it retains a string, it does not allocate.
    var endpoint: Endpoint?
    /// `HOST:PORT` of the backend, shared with the snapshot (never built per connection).
    var name: String?
    /// The backend's shutdown epoch when the connect started (`shutdown BACKEND` closes older ones).
    var shutdownEpoch = 0
    /// Backends (by stable id) already tried for this client.
    var tried: [Int] = []
    /// The address handed to connect; lives here until the connect completes.
    var address = sockaddr_storage()
    /// `LatencyClock.now()` when the latest connect started.
    var connectStartedAt: UInt64 = 0
    /// While a connect is in flight and not yet cancelled: when the worker's tick cancels it
    /// (monotonic milliseconds). Only the tick cancels a connect of a connection that is not
    /// closing, so such a connect ending in -ECANCELED timed out.
    var connectDeadline: Int64?
    /// The backend went away before any byte moved; waiting for its operations to end before
    /// connecting the client to another backend (Worker+Redispatch.swift).
    var redispatching = false
    /// It was redispatched at least once (with no backend left, it is reset rather than closed).
    var wasRedispatched = false

    /// Back to no backend, keeping the storage of `tried`.
    mutating func reset() {
        tried.removeAll(keepingCapacity: true)  // in place: emptied before it is shared
        let kept = tried
        self = BackendAttempt()
        tried = kept
    }
}

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
            guard let index = moved.firstIndex(where: { $0.backend.id == connection.backend.id }) else { continue }
            connection.accounting.causeOverride = moved[index].backend.shutdownCause
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
        for id in connection.backend.tried {
            if let index = snapshot.backends.firstIndex(where: { $0.id == id }) { tried.insert(index) }
        }
        // Clients already wait: a newcomer queues behind them rather than take a slot first.
        if snapshot.hasConnectionLimits && connection.backend.tried.isEmpty && picker.registry.queue.count > 0 {
            enqueue(connection, picker)
            return
        }
        switch choose(picker, snapshot, excluding: tried, clientKey: connection.clientKey) {
        case let .backend(index, limited):
            startConnect(connection, snapshot.backends[index], limited: limited, settings: snapshot.settings)
        case .allFull:
            enqueue(connection, picker)
        case .none:
            if connection.backend.tried.isEmpty {
                logger.debug("no backend is selectable; closing client")
            } else {
                warnOccasionally("nobackend", "no backend accepted a client after \(connection.backend.tried.count) attempt(s); closing it")
            }
            // A client whose backend went away after the connect is reset, not closed: it may
            // already believe it reached a server.
            perform(connection.machine.close(connection.backend.wasRedispatched ? .backendError : .noBackend), on: connection)
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
        connection.backend.tried.append(backend.id)
        connection.listener?.figures.connectAttempts &+= 1
        if connection.backend.tried.count > 1 { connection.listener?.figures.connectRetries &+= 1 }
        connection.backend.connectStartedAt = LatencyClock.now()
        connection.backend.id = backend.id
        connection.backend.stats = backend.stats
        connection.serviceQueue.backendLimited = limited
        guard let address = backend.spec.endpoint.address else {
            releaseBackendSlot(connection)
            connection.backend.id = -1
            connectFailed(connection, backend: backend, reason: "address not resolved")
            return
        }
        guard chooseBackendTLS(connection, backend, settings: settings) else {  // TLS to backends
            releaseBackendSlot(connection)
            connection.backend.id = -1
            connectFailed(connection, backend: backend, reason: "no backend-tls context for its settings")
            return
        }
        let fd = Socket.openStream(family: SocketAddress.family(of: address))
        if fd < 0 {
            let code = -fd
            releaseBackendSlot(connection)
            warnOccasionally("socket", "cannot open a backend socket: \(Errno.describe(code)); closing client")
            perform(connection.machine.close(.noBackend), on: connection)
            return
        }
        Socket.configureStream(fd)
        guard bindSourceAddress(fd, connection: connection, backend: backend, address: address, settings: settings) else { return }
        if let timeout = settings.backendTimeout { _ = Socket.setDeadPeerTimeout(fd, timeout) }
        connection.backendFD = fd
        connection.backend.endpoint = backend.spec.endpoint
        connection.backend.name = backend.name
        connection.proxyHeader.sendVersion = backend.spec.sendProxy ?? settings.sendProxy
        connection.backend.shutdownEpoch = backend.shutdownEpoch
        backend.stats.total.add(1, ordering: .relaxed)
        let length = SocketAddress.fill(&connection.backend.address, address: address, port: backend.spec.endpoint.port)
        withUnsafePointer(to: &connection.backend.address) { storage in
            storage.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
                _ = submit(.connect(socket: fd, address: pointer, length: length), for: connection, kind: .connect)
            }
        }
        connection.backend.connectDeadline = now + settings.connectTimeout.milliseconds
    }

    func handleConnect(_ connection: Connection, result: Int32) {
        connection.backend.connectDeadline = nil
        guard !connection.machine.isClosing else { return }
        // The PROXY header goes first; failing to send it fails this backend like a connect.
        let result = result == 0 && connection.proxyHeader.sendVersion != nil ? sendProxyHeader(connection) : result
        if result == 0 {
            // With backend-tls its handshake comes first (Worker+BackendTLS.swift).
            if let context = connection.tls.backendContext {
                startBackendTLS(connection, context)
            } else {
                backendConnected(connection)
            }
            return
        }
        let timeout = connection.service?.snapshot.settings.connectTimeout ?? .zero
        let reason = result == -ECANCELED ? "connect timed out after \(timeout.shortDescription)"
            : Errno.describeResult(result)
        closeDescriptor(connection.backendFD)
        connection.backendFD = -1
        recordConnectFailed(connection, backend: connection.backend.stats)
        connection.backend.name = nil
        if let stats = connection.backend.stats {
            stats.total.subtract(1, ordering: .relaxed)
            stats.failures.add(1, ordering: .relaxed)
        }
        let id = connection.backend.id
        releaseBackendSlot(connection)
        connection.backend.id = -1
        // No free local port is this host's shortage, not the backend's failure (SourceAddresses.swift).
        if !recordSourcePortExhaustion(connection, result: result) {
            connection.service?.snapshot.connectObserver?(id, false, reason)
            warnOccasionally("connect-\(id)", "backend \(connection.backend.endpoint?.description ?? "?"): \(reason); trying another")
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
