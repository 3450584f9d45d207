import CSwitchyard
import Glibc
import Logging
import SwitchyardCore

/// One worker: one thread, one ring, its own `SO_REUSEPORT` listeners, its own connections.
///
/// Thread ownership: every member is touched only by the worker's thread, which creates the
/// ring, runs `run()` and destroys everything when it returns. Other threads reach a worker only
/// through `ServerContext` atomics, the backend registry, and its wake-up eventfd.
final class Worker {
    typealias Direction = ConnectionStateMachine.Direction

    private let index: Int
    private let context: ServerContext
    private let configuration: RelayConfiguration
    private var logger: Logger
    private let ring: Ring
    private let buffers: ProvidedBuffers
    private let pipes: PipePool
    private var listeners: [Int32]
    private var listenerOpen: [Bool]
    /// Whether a multishot accept is armed on each listener (not while backing off).
    private var acceptArmed: [Bool]
    private let wakeFD: Int32

    private var connections: [Connection] = []
    private var freeSlots: [UInt32] = []
    private var openHere = 0
    /// Directions waiting for a provided buffer, oldest first: (slot, generation, direction).
    private var starved: [(UInt32, UInt32, Direction)] = []
    private var starvedHead = 0

    private var snapshot: BackendSnapshot
    private var balancer: any Balancer
    private var needsClientKey: Bool

    /// Milliseconds on the monotonic clock, refreshed once per loop turn.
    private var now: Int64 = 0
    private var stopping = false
    private var acceptBackoffArmed = false
    private var lastWarning: [String: Int64] = [:]

    // Memory the kernel reads from or writes to while operations are in flight.
    private let tickInterval: UnsafeMutablePointer<__kernel_timespec>
    private let backoffInterval: UnsafeMutablePointer<__kernel_timespec>
    private let wakeBuffer: UnsafeMutablePointer<UInt64>

    /// Builds the worker on its own thread. `listeners` are bound, listening sockets it now owns.
    init(index: Int, context: ServerContext, listeners: [Int32], wakeFD: Int32) throws(SystemCallError) {
        self.index = index
        self.context = context
        configuration = context.configuration
        logger = context.logger
        logger[metadataKey: "worker"] = "\(index)"
        ring = try Ring(entries: 4096, completionFactor: 4)
        buffers = try ProvidedBuffers(
            ring: ring, group: 0, count: configuration.buffersPerWorker, size: configuration.bufferSize)
        pipes = PipePool(pipeSize: configuration.pipeSize, limit: configuration.pipesPerWorker)
        self.listeners = listeners
        listenerOpen = Array(repeating: true, count: listeners.count)
        acceptArmed = Array(repeating: false, count: listeners.count)
        self.wakeFD = wakeFD
        snapshot = context.registry.snapshot()
        balancer = snapshot.balancer
        needsClientKey = type(of: snapshot.balancer).needsClientKey

        // The tick also enforces connect deadlines (a linked timeout per connect would cost an
        // extra submission, completion and kernel timer on every connection).
        let tick: Duration = min(.seconds(1), (configuration.idleTimeout ?? .seconds(4)) / 4, configuration.connectTimeout / 4)
        tickInterval = .allocate(capacity: 1)
        tickInterval.initialize(to: Worker.timespec(max(tick, .milliseconds(10))))
        backoffInterval = .allocate(capacity: 1)
        backoffInterval.initialize(to: Worker.timespec(.milliseconds(100)))
        wakeBuffer = .allocate(capacity: 1)
        wakeBuffer.initialize(to: 0)
    }

    deinit {
        for connection in connections where connection.inUse {
            if connection.clientFD >= 0 { close(connection.clientFD) }
            if connection.backendFD >= 0 { close(connection.backendFD) }
        }
        for (fd, open) in zip(listeners, listenerOpen) where open { close(fd) }
        tickInterval.deallocate()
        backoffInterval.deallocate()
        wakeBuffer.deallocate()
    }

    private static func timespec(_ duration: Duration) -> __kernel_timespec {
        let nanoseconds = duration.nanosecondsClamped
        return __kernel_timespec(tv_sec: nanoseconds / 1_000_000_000, tv_nsec: nanoseconds % 1_000_000_000)
    }

    // MARK: The loop

    /// Runs until the server stops and every connection of this worker has closed.
    func run() throws(SystemCallError) {
        refreshClock()
        for listener in listeners.indices { armAccept(listener) }
        ring.submit(.read(fd: wakeFD, buffer: wakeBuffer, length: 8), userData: UserData(slot: 0, generation: 0, kind: .wake).packed)
        ring.submit(.timeout(tickInterval), userData: UserData(slot: 0, generation: 0, kind: .tick).packed)

        while true {
            try ring.submitAndWait()
            refreshClock()
            ring.drainCompletions { userData, result, flags in
                self.dispatch(userData: userData, result: result, flags: flags)
            }
            if stopping && openHere == 0 && !listenerOpen.contains(true) { break }
        }
        flushCounters()
    }

    private func refreshClock() {
        var time = Glibc.timespec()
        clock_gettime(CLOCK_MONOTONIC_COARSE, &time)
        now = Int64(time.tv_sec) * 1000 + Int64(time.tv_nsec) / 1_000_000
    }

    private func dispatch(userData packed: UInt64, result: Int32, flags: UInt32) {
        guard let userData = UserData(packed: packed) else { return }
        switch userData.kind {
        case .accept:
            handleAccept(listener: Int(userData.slot), result: result, flags: flags)
            return
        case .acceptBackoff:
            acceptBackoffArmed = false
            if !stopping {
                for listener in listeners.indices where listenerOpen[listener] { armAccept(listener) }
            }
            return
        case .wake:
            handleWake(result: result)
            return
        case .tick:
            handleTick()
            return
        default:
            break
        }

        let connection = connections[Int(userData.slot)]
        guard connection.inUse, connection.generation == userData.generation else {
            // Cannot happen while slots are released only after their last completion; keep the
            // buffer accounting right regardless.
            if flags & IORING_CQE_F_BUFFER != 0 {
                buffers.took(UInt16(flags >> IORING_CQE_BUFFER_SHIFT))
                buffers.recycle(UInt16(flags >> IORING_CQE_BUFFER_SHIFT))
            }
            return
        }

        switch userData.kind {
        case .connect: handleConnect(connection, result: result)
        case .cancel: break
        case .receiveFromClient: handleReceive(connection, .clientToBackend, result: result, flags: flags)
        case .receiveFromBackend: handleReceive(connection, .backendToClient, result: result, flags: flags)
        case .sendToBackend: handleSend(connection, .clientToBackend, result: result)
        case .sendToClient: handleSend(connection, .backendToClient, result: result)
        case .clientReadable: handleReadiness(connection, .clientToBackend, readable: true, result: result)
        case .backendReadable: handleReadiness(connection, .backendToClient, readable: true, result: result)
        case .backendWritable: handleReadiness(connection, .clientToBackend, readable: false, result: result)
        case .clientWritable: handleReadiness(connection, .backendToClient, readable: false, result: result)
        case .accept, .acceptBackoff, .wake, .tick: break
        }
        // A multishot operation completes for good only with the completion that lacks F_MORE.
        if flags & IORING_CQE_F_MORE == 0 && connection.machine.operationCompleted() { release(connection) }
    }

    private func submit(_ operation: RingOperation, for connection: Connection, kind: RingOperationKind) {
        ring.submit(operation, userData: connection.userData(kind))
        connection.machine.operationSubmitted()
    }

    // MARK: Accepting

    private func armAccept(_ listener: Int) {
        acceptArmed[listener] = true
        ring.submit(.acceptMultishot(listener: listeners[listener]),
                    userData: UserData(slot: UInt32(listener), generation: 0, kind: .accept).packed)
    }

    private func handleAccept(listener: Int, result: Int32, flags: UInt32) {
        if flags & IORING_CQE_F_MORE == 0 {
            // The multishot accept ended: re-arm it, after a pause if descriptors ran out.
            acceptArmed[listener] = false
            if stopping {
                closeListener(listener)
            } else if [EMFILE, ENFILE, ENOBUFS, ENOMEM].contains(-result) {
                if !acceptBackoffArmed {
                    acceptBackoffArmed = true
                    ring.submit(.timeout(backoffInterval), userData: UserData(slot: 0, generation: 0, kind: .acceptBackoff).packed)
                }
            } else {
                armAccept(listener)
            }
        }
        guard result >= 0 else {
            if result != -ECANCELED && result != -EINVAL {
                warnOccasionally("accept", "accept failed: \(Errno.describeResult(result)); retrying in 100ms")
            }
            return
        }
        let clientFD = result
        if stopping {
            close(clientFD)
            return
        }
        let open = context.openConnections.add(1, ordering: .relaxed).newValue
        if open > configuration.maxConnections {
            context.openConnections.subtract(1, ordering: .relaxed)
            close(clientFD)
            warnOccasionally("maxconn", "--max-connections \(configuration.maxConnections) reached; closing new clients")
            return
        }
        context.totalConnections.add(1, ordering: .relaxed)
        let connection = takeSlot()
        connection.begin(clientFD: clientFD, now: now)
        openHere += 1
        if needsClientKey {
            connection.clientKey = Socket.peerAddressKey(clientFD)
        }
        connectNext(connection)
    }

    private func closeListener(_ listener: Int) {
        guard listenerOpen[listener] else { return }
        close(listeners[listener])
        listenerOpen[listener] = false
    }

    private func takeSlot() -> Connection {
        if let slot = freeSlots.popLast() { return connections[Int(slot)] }
        let connection = Connection(slot: UInt32(connections.count))
        connections.append(connection)
        return connection
    }

    // MARK: Connecting

    private func adoptSnapshotIfNewer() {
        guard let newer = context.registry.snapshotIfNewer(than: snapshot.version) else { return }
        let previous = snapshot
        snapshot = newer
        balancer = newer.balancer
        needsClientKey = type(of: newer.balancer).needsClientKey
        // `shutdown BACKEND`: close the connections of every backend whose epoch moved.
        var closing: Set<Int> = []
        for backend in newer.backends {
            if let old = previous.backends.first(where: { $0.id == backend.id }), old.shutdownEpoch != backend.shutdownEpoch {
                closing.insert(backend.id)
            }
        }
        if !closing.isEmpty {
            for connection in connections where connection.inUse && closing.contains(connection.backendID) {
                perform(connection.machine.close(.administrative), on: connection)
            }
        }
    }

    /// Picks a backend not yet tried for this client and starts connecting; closes the client
    /// when none is left.
    private func connectNext(_ connection: Connection) {
        adoptSnapshotIfNewer()
        var tried = TriedBackends()
        for id in connection.triedBackendIDs {
            if let index = snapshot.backends.firstIndex(where: { $0.id == id }) { tried.insert(index) }
        }
        guard let index = balancer.pick(clientKey: connection.clientKey, excluding: tried) else {
            if connection.triedBackendIDs.isEmpty {
                logger.debug("no backend is selectable; closing client")
            } else {
                warnOccasionally("nobackend", "no backend accepted a client after \(connection.triedBackendIDs.count) attempt(s); closing it")
            }
            perform(connection.machine.close(.noBackend), on: connection)
            return
        }
        let backend = snapshot.backends[index]
        connection.triedBackendIDs.append(backend.id)
        guard let address = backend.spec.endpoint.address else {
            connectFailed(connection, backend: backend, reason: "address not resolved")
            return
        }
        let fd = socket(SocketAddress.family(of: address), Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        if fd < 0 {
            let code = swy_errno()
            warnOccasionally("socket", "cannot open a backend socket: \(Errno.describe(code)); closing client")
            perform(connection.machine.close(.noBackend), on: connection)
            return
        }
        Socket.configureStream(fd)
        connection.backendFD = fd
        connection.backendID = backend.id
        connection.backendEndpoint = backend.spec.endpoint
        connection.shutdownEpoch = backend.shutdownEpoch
        connection.backendStats = backend.stats
        backend.stats.active.add(1, ordering: .relaxed)
        backend.stats.total.add(1, ordering: .relaxed)
        let length = SocketAddress.fill(&connection.backendAddress, address: address, port: backend.spec.endpoint.port)
        withUnsafePointer(to: &connection.backendAddress) { storage in
            storage.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
                submit(.connect(socket: fd, address: pointer, length: length), for: connection, kind: .connect)
            }
        }
        connection.connectDeadline = now + configuration.connectTimeout.milliseconds
    }

    private func handleConnect(_ connection: Connection, result: Int32) {
        connection.connectDeadline = nil
        guard !connection.machine.isClosing else { return }
        if result == 0 {
            context.connectObserver?(connection.backendID, true, "")
            perform(connection.machine.connected(), on: connection)
            return
        }
        let reason = result == -ECANCELED ? "connect timed out after \(configuration.connectTimeout.shortDescription)"
            : Errno.describeResult(result)
        close(connection.backendFD)
        connection.backendFD = -1
        if let stats = connection.backendStats {
            stats.active.subtract(1, ordering: .relaxed)
            stats.total.subtract(1, ordering: .relaxed)
            stats.failures.add(1, ordering: .relaxed)
        }
        connection.backendStats = nil
        let id = connection.backendID
        connection.backendID = -1
        context.connectObserver?(id, false, reason)
        warnOccasionally("connect-\(id)", "backend \(connection.backendEndpoint?.description ?? "?"): \(reason); trying another")
        perform(connection.machine.connectFailed(canRetry: true), on: connection)
    }

    private func connectFailed(_ connection: Connection, backend: BackendState, reason: String) {
        backend.stats.failures.add(1, ordering: .relaxed)
        context.connectObserver?(backend.id, false, reason)
        warnOccasionally("connect-\(backend.id)", "backend \(backend.spec.endpoint): \(reason); trying another")
        perform(connection.machine.connectFailed(canRetry: true), on: connection)
    }

    // MARK: Actions

    private func perform(_ action: ConnectionStateMachine.Action, on connection: Connection) {
        switch action {
        case .none:
            break
        case .startRelay:
            for direction in Direction.allCases {
                if configuration.mode == .splice && startSplicing(connection, direction) { continue }
                armReceive(connection, direction)
            }
        case .retryConnect:
            connectNext(connection)
        case let .forwardEnd(direction):
            // shutdown(2) on a real descriptor is cheap; IORING_OP_SHUTDOWN would go to io-wq.
            _ = shutdown(connection.endpoints(direction).destination, Int32(SHUT_WR))
            perform(connection.machine.endWasForwarded(direction), on: connection)
        case let .close(reason):
            beginClose(connection, reason: reason)
        }
    }

    private func beginClose(_ connection: Connection, reason: ConnectionStateMachine.CloseReason) {
        logger.trace("closing connection", metadata: ["slot": "\(connection.slot)", "reason": "\(reason)"])
        if reason.resetsPeers {
            if connection.clientFD >= 0 { Socket.setResetOnClose(connection.clientFD) }
            if connection.backendFD >= 0 { Socket.setResetOnClose(connection.backendFD) }
        }
        if reason == .backendError {
            connection.backendStats?.failures.add(1, ordering: .relaxed)
        }
        // Only operations that may wait indefinitely need a cancel; the completion being handled
        // right now and sends that already finished do not (a cancel that finds nothing still
        // costs a submission, a completion and a search of the ring's tables).
        let armed = connection.armedOperations
        if armed.client { submit(.cancelAll(fd: connection.clientFD), for: connection, kind: .cancel) }
        if armed.backend { submit(.cancelAll(fd: connection.backendFD), for: connection, kind: .cancel) }
        if connection.machine.releaseIfQuiet() { release(connection) }
    }

    /// Frees a closed slot: every operation on it has completed.
    private func release(_ connection: Connection) {
        for direction in Direction.allCases {
            connection.withDirection(direction) { state in
                if let id = state.buffer {
                    buffers.recycle(id)
                    state.buffer = nil
                }
                if let pipe = state.pipe {
                    pipes.give(pipe, empty: state.pipeBytes == 0)
                    state.pipe = nil
                }
            }
        }
        flushCounters(connection)
        if connection.clientFD >= 0 { close(connection.clientFD) }
        if connection.backendFD >= 0 { close(connection.backendFD) }
        connection.clientFD = -1
        connection.backendFD = -1
        connection.backendStats?.active.subtract(1, ordering: .relaxed)
        connection.backendStats = nil
        connection.inUse = false
        connection.generation = UserData.nextGeneration(after: connection.generation)
        freeSlots.append(connection.slot)
        openHere -= 1
        context.openConnections.subtract(1, ordering: .relaxed)
        feedStarved()
    }

    private func flushCounters(_ connection: Connection) {
        let up = connection.directions.0.unflushedBytes
        let down = connection.directions.1.unflushedBytes
        guard up != 0 || down != 0 else { return }
        connection.directions.0.unflushedBytes = 0
        connection.directions.1.unflushedBytes = 0
        if let stats = connection.backendStats {
            stats.bytesToBackend.add(up, ordering: .relaxed)
            stats.bytesFromBackend.add(down, ordering: .relaxed)
        }
        context.bytesToBackends.add(up, ordering: .relaxed)
        context.bytesToClients.add(down, ordering: .relaxed)
    }

    private func flushCounters() {
        for connection in connections where connection.inUse { flushCounters(connection) }
    }

    // MARK: Copy relay
    //
    // Each direction has one multishot receive armed on its source. Every completion carries a
    // provided buffer; the direction sends one buffer at a time, in order, and queues the others.
    // When `queueLimit` buffers are queued (a slow destination), the receive is cancelled and
    // re-armed once the queue has drained, so a direction never holds more than a handful of
    // buffers and a slow reader cannot take the pool from everyone else.

    /// Buffers a direction may queue behind the one it is sending before its receive is paused.
    private static let queueLimit = 4

    private func armReceive(_ connection: Connection, _ direction: Direction) {
        let source = connection.endpoints(direction).source
        connection.withDirection(direction) { state in
            state.receiving = true
            state.receiveCancelled = false
        }
        submit(.receiveMultishot(socket: source, group: buffers.group), for: connection, kind: direction.receiveKind)
    }

    /// Asks the kernel to end `direction`'s multishot receive; its last completion says when.
    private func pauseReceive(_ connection: Connection, _ direction: Direction) {
        let armed = connection.withDirection(direction) { state -> Bool in
            guard state.receiving && !state.receiveCancelled else { return false }
            state.receiveCancelled = true
            return true
        }
        if armed {
            submit(.cancel(userData: connection.userData(direction.receiveKind)), for: connection, kind: .cancel)
        }
    }

    private func handleReceive(_ connection: Connection, _ direction: Direction, result: Int32, flags: UInt32) {
        var bufferID: UInt16?
        if flags & IORING_CQE_F_BUFFER != 0 {
            let id = UInt16(flags >> IORING_CQE_BUFFER_SHIFT)
            buffers.took(id)
            bufferID = id
        }
        let ended = flags & IORING_CQE_F_MORE == 0
        if ended { connection.withDirection(direction) { $0.receiving = false } }
        guard !connection.machine.isClosing else {
            if let bufferID { buffers.recycle(bufferID) }
            return
        }
        if result > 0, let bufferID {
            connection.lastActivity = now
            let full = Int(result) == buffers.size
            let (startSend, queued, fullReads) = connection.withDirection(direction) { state in
                state.unflushedBytes += Int(result)
                state.fullReads = full ? state.fullReads + 1 : 0
                if state.buffer == nil {
                    state.buffer = bufferID
                    state.sent = 0
                    state.received = Int(result)
                    return (true, 0, state.fullReads)
                }
                state.queue.append(QueuedBuffer(id: bufferID, length: Int(result)))
                return (false, state.queue.count, state.fullReads)
            }
            if startSend { submitSend(connection, direction) }
            if queued >= Self.queueLimit
                || (configuration.mode == .auto && fullReads >= configuration.spliceAfterFullReads) {
                pauseReceive(connection, direction)
            }
        } else if result == 0 {
            if let bufferID { buffers.recycle(bufferID) }
            let queued = connection.direction(direction).bytesQueued
            perform(connection.machine.endOfStream(direction, bytesQueued: queued), on: connection)
        } else if result == -ENOBUFS {
            connection.withDirection(direction) { $0.starved = true }
            starved.append((connection.slot, connection.generation, direction))
        } else if result == -ECANCELED {
            if let bufferID { buffers.recycle(bufferID) }
            resumeIfQuiet(connection, direction)
        } else {
            if let bufferID { buffers.recycle(bufferID) }
            logger.debug("receive failed", metadata: ["slot": "\(connection.slot)", "error": "\(Errno.describeResult(result))"])
            perform(connection.machine.failed(clientSide: direction.sourceIsClient), on: connection)
        }
    }

    private func submitSend(_ connection: Connection, _ direction: Direction) {
        let state = connection.direction(direction)
        guard let id = state.buffer else { return }
        connection.withDirection(direction) { $0.sending = true }
        submit(.send(socket: connection.endpoints(direction).destination,
                     bytes: UnsafeRawPointer(buffers.address(of: id) + state.sent),
                     length: UInt32(state.received - state.sent)),
               for: connection, kind: direction.sendKind)
    }

    private func handleSend(_ connection: Connection, _ direction: Direction, result: Int32) {
        var finished = false
        var bufferToRecycle: UInt16?
        connection.withDirection(direction) { state in
            state.sending = false
            if result > 0 { state.sent += Int(result) }
            if result <= 0 || state.sent >= state.received || connection.machine.isClosing {
                bufferToRecycle = state.buffer
                state.buffer = nil
                finished = true
            }
        }
        if let bufferToRecycle {
            buffers.recycle(bufferToRecycle)
            feedStarved()
        }
        guard !connection.machine.isClosing else { return }
        if result <= 0 {
            logger.debug("send failed", metadata: ["slot": "\(connection.slot)", "error": "\(Errno.describeResult(result))"])
            perform(connection.machine.failed(clientSide: !direction.sourceIsClient), on: connection)
            return
        }
        guard finished else {
            submitSend(connection, direction)
            return
        }
        connection.lastActivity = now
        let next = connection.withDirection(direction) { state -> Bool in
            guard !state.queue.isEmpty else { return false }
            let queued = state.queue.removeFirst()
            state.buffer = queued.id
            state.sent = 0
            state.received = queued.length
            return true
        }
        if next {
            submitSend(connection, direction)
            return
        }
        if connection.machine.sourceEnded(direction) {
            perform(connection.machine.drained(direction), on: connection)
            return
        }
        resumeIfQuiet(connection, direction)
    }

    /// Once a direction has nothing in flight and nothing queued: moves it to a pipe if it
    /// streams (auto mode), else re-arms its receive if that was paused or ended.
    private func resumeIfQuiet(_ connection: Connection, _ direction: Direction) {
        let state = connection.direction(direction)
        guard !state.receiving, !state.sending, state.buffer == nil, state.queue.isEmpty, !state.starved,
              !connection.machine.sourceEnded(direction), !connection.machine.isClosing else { return }
        if configuration.mode == .auto && state.fullReads >= configuration.spliceAfterFullReads {
            if startSplicing(connection, direction) { return }
            // No pipe to be had: keep copying, and do not ask again for a while.
            connection.withDirection(direction) { $0.fullReads = 0 }
        }
        armReceive(connection, direction)
    }

    /// Re-arms receives that found no provided buffer, oldest first, while buffers are free.
    private func feedStarved() {
        while starvedHead < starved.count && buffers.lent < Int(buffers.count) {
            let (slot, generation, direction) = starved[starvedHead]
            starvedHead += 1
            let connection = connections[Int(slot)]
            guard connection.inUse, connection.generation == generation, !connection.machine.isClosing,
                  connection.direction(direction).starved else { continue }
            connection.withDirection(direction) { $0.starved = false }
            armReceive(connection, direction)
        }
        if starvedHead > 0 && starvedHead == starved.count {
            starved.removeAll(keepingCapacity: true)
            starvedHead = 0
        }
    }

    // MARK: Splice relay

    /// Moves `direction` onto a pipe; false (keep copying) when no pipe can be had.
    private func startSplicing(_ connection: Connection, _ direction: Direction) -> Bool {
        guard let pipe = pipes.take() else { return false }
        // The destination may hold one pipe's worth of unsent bytes, not the megabytes the
        // kernel would let it queue (which the receiver then reads back cold). Measured on
        // loopback through one worker: 4 iperf3 streams 16.8-17.1 -> 20.7-22.3 Gbit/s, one stream
        // 18.5-20.8 -> 20.6-22.8, the worker's CPU per GB unchanged for one stream.
        Socket.limitUnsentBytes(connection.endpoints(direction).destination,
                                to: Int32(clamping: configuration.pipeSize))
        connection.withDirection(direction) { state in
            state.splicing = true
            state.pipe = pipe
            state.pipeBytes = 0
        }
        pump(connection, direction)
        return true
    }

    private func handleReadiness(_ connection: Connection, _ direction: Direction, readable: Bool, result: Int32) {
        connection.withDirection(direction) { state in
            if readable { state.awaitingReadable = false } else { state.awaitingWritable = false }
        }
        guard !connection.machine.isClosing, result >= 0 else { return }
        pump(connection, direction)
    }

    /// Moves bytes source → pipe → destination with `splice(2)` until one side would block, then
    /// arms a readiness poll on the ring for that side. Reading stops while the pipe is full, so a
    /// slow reader holds at most one pipe of data (backpressure).
    ///
    /// A read that returns EAGAIN while the pipe holds bytes may mean the pipe (not the socket)
    /// is full, so readability is only awaited once the pipe is empty.
    private func pump(_ connection: Connection, _ direction: Direction) {
        let (source, destination) = connection.endpoints(direction)
        var state = connection.direction(direction)
        guard let pipe = state.pipe else { return }
        var action = ConnectionStateMachine.Action.none
        var sourceDry = false
        var progressed = true
        while progressed && action == .none {
            progressed = false
            if !connection.machine.sourceEnded(direction) && !sourceDry && !state.awaitingReadable
                && state.pipeBytes < pipe.capacity {
                let moved = systemCallResult { swy_splice(source, pipe.writeEnd, pipe.capacity - state.pipeBytes, 0) }
                if moved > 0 {
                    state.pipeBytes += moved
                    state.unflushedBytes += moved
                    progressed = true
                } else if moved == 0 {
                    connection.withDirection(direction) { $0 = state }
                    action = connection.machine.endOfStream(direction, bytesQueued: state.pipeBytes > 0)
                    if action != .none { break }
                } else if moved == -Int(EAGAIN) {
                    sourceDry = true
                } else {
                    connection.withDirection(direction) { $0 = state }
                    action = connection.machine.failed(clientSide: direction.sourceIsClient)
                    break
                }
            }
            if state.pipeBytes > 0 && !state.awaitingWritable {
                let moved = systemCallResult { swy_splice(pipe.readEnd, destination, state.pipeBytes, 0) }
                if moved > 0 {
                    state.pipeBytes -= moved
                    progressed = true
                    if state.pipeBytes == 0 && connection.machine.sourceEnded(direction) {
                        connection.withDirection(direction) { $0 = state }
                        action = connection.machine.drained(direction)
                    }
                } else if moved == -Int(EAGAIN) {
                    state.awaitingWritable = true
                    submit(.poll(fd: destination, events: UInt32(POLLOUT)), for: connection, kind: direction.writableKind)
                } else {
                    connection.withDirection(direction) { $0 = state }
                    action = connection.machine.failed(clientSide: !direction.sourceIsClient)
                    break
                }
            }
        }
        if action == .none && sourceDry && state.pipeBytes == 0 && !state.awaitingReadable
            && !connection.machine.sourceEnded(direction) {
            state.awaitingReadable = true
            submit(.poll(fd: source, events: UInt32(POLLIN) | swy_POLLRDHUP), for: connection, kind: direction.readableKind)
        }
        connection.lastActivity = now
        connection.withDirection(direction) { $0 = state }
        perform(action, on: connection)
    }

    // MARK: Wake-ups and the tick

    private func handleWake(result: Int32) {
        ring.submit(.read(fd: wakeFD, buffer: wakeBuffer, length: 8), userData: UserData(slot: 0, generation: 0, kind: .wake).packed)
        checkServerState()
        adoptSnapshotIfNewer()
    }

    private func handleTick() {
        ring.submit(.timeout(tickInterval), userData: UserData(slot: 0, generation: 0, kind: .tick).packed)
        checkServerState()
        adoptSnapshotIfNewer()
        flushCounters()
        pipes.trim()
        let idleLimit = configuration.idleTimeout?.milliseconds
        for connection in connections where connection.inUse && !connection.machine.isClosing {
            if let deadline = connection.connectDeadline, now >= deadline {
                connection.connectDeadline = nil
                submit(.cancel(userData: connection.userData(.connect)), for: connection, kind: .cancel)
            } else if let idleLimit, now - connection.lastActivity >= idleLimit {
                perform(connection.machine.close(.idleTimeout), on: connection)
            }
        }
    }

    private func checkServerState() {
        if !stopping && context.stopAccepting.load(ordering: .relaxed) {
            stopping = true
            // shutdown(2) on a listening socket ends its multishot accept (the completion
            // arrives without F_MORE and closes it) and refuses new connections at once.
            for listener in listeners.indices where listenerOpen[listener] {
                if acceptArmed[listener] {
                    _ = shutdown(listeners[listener], Int32(SHUT_RDWR))
                } else {
                    // Backing off after EMFILE: no accept will complete to close it later.
                    closeListener(listener)
                }
            }
        }
        if context.closeEverything.load(ordering: .relaxed) {
            for connection in connections where connection.inUse {
                perform(connection.machine.close(.administrative), on: connection)
            }
        }
    }

    // MARK: Logging

    /// Logs `message` at warning level at most once a second per `key`.
    private func warnOccasionally(_ key: String, _ message: @autoclosure () -> String) {
        if let last = lastWarning[key], now - last < 1000 { return }
        lastWarning[key] = now
        logger.warning("\(message())")
    }
}
