import CSwitchyard
import Glibc
import Logging
import SwitchyardCore

/// One worker: one thread, one ring, its own `SO_REUSEPORT` listeners, its own connections.
///
/// Each listener belongs to a service; the worker keeps one `ServicePicker` per service (its
/// latest snapshot and its own balancer) and each connection remembers its service.
///
/// Thread ownership: every member is touched only by the worker's thread, which creates the
/// ring, runs `run()` and destroys everything when it returns. Other threads reach a worker only
/// through `WorkerContext` atomics, the listener directory, the services' registries, and its
/// wake-up eventfd.
final class Worker {
    typealias Direction = ConnectionStateMachine.Direction

    let index: Int
    let context: WorkerContext
    let configuration: RelayConfiguration
    var logger: Logger
    let ring: Ring
    let buffers: ProvidedBuffers
    let pipes: PipePool
    /// Every listener this worker has held, by accept slot; closed ones stay (they are few).
    var listeners: [WorkerListener] = []
    var listenerVersion: UInt64 = 0
    /// One per service this worker has served, keyed by the service's registry.
    var pickers: [ObjectIdentifier: ServicePicker] = [:]
    /// Every service by name, from the listener table (SNI routing looks its targets up here).
    var serviceRegistries: [String: BackendRegistry] = [:]
    /// The TLS contexts of the services that terminate TLS, by name, from the listener table.
    var serviceTLS: [String: TLSServerContext] = [:]
    /// Handshakes of connections a `route-by-sni` listener handed to a terminating service, by
    /// that service (a listener's own count under its own service).
    var routedTLSHandshakes: [String: TLSHandshakeFigures] = [:]
    /// Connect times per backend, published with the listeners' figures on each tick.
    var backendConnectTime: [WorkerFigures.BackendKey: LatencyHistogram] = [:]
    /// This worker's queue to the access-log thread, when there is an access log.
    let accessLog: AccessLogQueue?
    /// Per-client controls: this worker's view of the source table and its paused listeners.
    let sourceControl = WorkerSourceControl()
    let wakeFD: Int32
    /// Every worker's wake-up eventfd, this one's included (index: worker).
    let peerWakeFDs: [Int32]

    var connections: [Connection] = []
    var freeSlots: [UInt32] = []
    var openHere = 0
    /// Directions waiting for a provided buffer, oldest first: (slot, generation, direction).
    var starved: [(UInt32, UInt32, Direction)] = []
    var starvedHead = 0
    /// Bytes parked in directions' own memory (Worker+Parking.swift), and the last scan for
    /// stalled directions (monotonic milliseconds).
    var parkedBytes = 0
    var lastParkingScan: Int64 = 0
    var parkingScanArmed = false

    /// Milliseconds on the monotonic clock, refreshed once per loop turn.
    var now: Int64 = 0
    var stopping = false
    var acceptBackoffArmed = false
    var lastWarning: [String: Int64] = [:]
    /// This worker's copy of the `backend-tls` contexts, and its version (Worker+BackendTLS.swift).
    var backendTLSContexts: [BackendTLSSettings: TLSContext] = [:]
    var backendTLSVersion: UInt64 = 0
    /// Sessions to resume with backends (Worker+BackendTLS.swift).
    let backendTLSSessions = BackendTLSSessions()
    /// `busy-polling`: the spin window before each sleep (Worker+BusyPolling.swift); nil: off.
    var busyPolling: BusyPollingPolicy?

    // Memory the kernel reads from or writes to while operations are in flight.
    let tickInterval: UnsafeMutablePointer<__kernel_timespec>
    let backoffInterval: UnsafeMutablePointer<__kernel_timespec>
    let parkingScanDelay: UnsafeMutablePointer<__kernel_timespec>
    let wakeBuffer: UnsafeMutablePointer<UInt64>

    /// Builds the worker on its own thread; it takes its listeners from `context.listeners`.
    init(index: Int, context: WorkerContext, wakeFD: Int32) throws(SystemCallError) {
        self.index = index
        self.context = context
        configuration = context.configuration
        logger = context.logger
        logger[metadataKey: "worker"] = "\(index)"
        ring = try Ring(entries: 4096, completionFactor: 4, taskRunFlag: configuration.busyPolling)
        // A spin that cannot see completions coming would only burn its window.
        busyPolling = configuration.busyPolling && ring.announcesPendingWork ? BusyPollingPolicy() : nil
        buffers = try ProvidedBuffers(
            ring: ring, group: 0, count: configuration.buffersPerWorker, size: configuration.bufferSize)
        pipes = PipePool(pipeSize: configuration.pipeSize, limit: configuration.pipesPerWorker)
        self.wakeFD = wakeFD
        peerWakeFDs = context.workerWakeFDs.withLock { $0 }
        accessLog = context.accessLog?.queue(forWorker: index)
        tickInterval = .allocate(capacity: 1)
        tickInterval.initialize(to: Worker.timespec(.seconds(1)))
        backoffInterval = .allocate(capacity: 1)
        backoffInterval.initialize(to: Worker.timespec(.milliseconds(100)))
        parkingScanDelay = .allocate(capacity: 1)
        parkingScanDelay.initialize(to: Worker.timespec(.milliseconds(Worker.stallAge)))
        wakeBuffer = .allocate(capacity: 1)
        wakeBuffer.initialize(to: 0)
    }

    deinit {
        for connection in connections where connection.inUse {
            if connection.clientFD >= 0 { closeDescriptor(connection.clientFD) }
            if connection.backendFD >= 0 { closeDescriptor(connection.backendFD) }
        }
        for listener in listeners where listener.open { closeDescriptor(listener.fd) }
        tickInterval.deallocate()
        backoffInterval.deallocate()
        parkingScanDelay.deallocate()
        wakeBuffer.deallocate()
    }

    static func timespec(_ duration: Duration) -> __kernel_timespec {
        let nanoseconds = duration.nanosecondsClamped
        return __kernel_timespec(tv_sec: nanoseconds / 1_000_000_000, tv_nsec: nanoseconds % 1_000_000_000)
    }

    // MARK: The loop

    /// Runs until the server stops and every connection of this worker has closed.
    func run() throws(SystemCallError) {
        refreshClock()
        adoptListenersIfNewer()
        updateTickInterval()
        ring.submit(.read(fd: wakeFD, buffer: wakeBuffer, length: 8), userData: UserData(slot: 0, generation: 0, kind: .wake).packed)
        ring.submit(.timeout(tickInterval), userData: UserData(slot: 0, generation: 0, kind: .tick).packed)

        while true {
            try submitAndAwaitCompletions()
            refreshClock()
            ring.drainCompletions { userData, result, flags in
                self.dispatch(userData: userData, result: result, flags: flags)
            }
            if stopping && openHere == 0 && !listeners.contains(where: \.open) { break }
        }
        flushCounters()
        publishFigures()
    }

    func refreshClock() {
        var time = Glibc.timespec()
        clock_gettime(CLOCK_MONOTONIC_COARSE, &time)
        now = Int64(time.tv_sec) * 1000 + Int64(time.tv_nsec) / 1_000_000
    }

    func dispatch(userData packed: UInt64, result: Int32, flags: UInt32) {
        guard let userData = UserData(packed: packed) else { return }
        switch userData.kind {
        case .accept:
            handleAccept(listener: Int(userData.slot), result: result, flags: flags)
            return
        case .acceptBackoff:
            acceptBackoffArmed = false
            if !stopping {
                for (slot, listener) in listeners.enumerated() where listener.open && !listener.retired && !listener.acceptArmed {
                    armAccept(slot)
                }
            }
            return
        case .wake:
            handleWake(result: result)
            return
        case .tick:
            handleTick()
            return
        case .acceptCancel:
            // The accept's own completion (-ECANCELED, no F_MORE) closes the listener.
            return
        case .acceptPause:
            resumePausedAccepts()
            return
        case .parkingScan:
            parkingScanDue()
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
        case .accept, .acceptBackoff, .acceptCancel, .acceptPause, .parkingScan, .wake, .tick: break
        }
        // A multishot operation completes for good only with the completion that lacks F_MORE.
        if flags & IORING_CQE_F_MORE == 0 {
            if connection.machine.operationCompleted() {
                release(connection)
            } else if connection.backend.redispatching {
                finishRedispatchIfQuiet(connection)
            }
        }
    }

    @discardableResult
    func submit(_ operation: RingOperation, for connection: Connection, kind: RingOperationKind) -> Ring.QueuedEntry {
        let entry = ring.submit(operation, userData: connection.userData(kind))
        connection.machine.operationSubmitted()
        return entry
    }

    // MARK: Logging

    /// Logs `message` at warning level at most once a second per `key`.
    func warnOccasionally(_ key: String, _ message: @autoclosure () -> String) {
        if let last = lastWarning[key], now - last < 1000 { return }
        lastWarning[key] = now
        logger.warning("\(message())")
    }
}
