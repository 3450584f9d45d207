import CSwitchyard
import Glibc
import SwitchyardCore

/// One direction of a relayed connection: what is in flight and what is queued.
struct RelayDirection {
    /// Moving bytes through `pipe` with `splice(2)` instead of provided buffers.
    var splicing = false

    // Copy relay.
    /// A multishot receive is armed (until its last completion, the one without F_MORE).
    var receiving = false
    /// A cancel was submitted for that receive (the queue is full, or the direction streams).
    var receiveCancelled = false
    var sending = false
    /// That send's entry, while it may still be waiting in the submission queue.
    var queuedSend: Ring.QueuedEntry?
    /// The provided buffer being sent, and how far the send got.
    var buffer: UInt16?
    var sent = 0
    var received = 0
    /// Buffers received while another was being sent, oldest first (at most a handful).
    var queue: [QueuedBuffer] = []
    /// Waiting in the worker's queue for a provided buffer (the receive got ENOBUFS).
    var starved = false
    /// Consecutive receives that filled a whole buffer (auto mode switches to splice on a run).
    var fullReads = 0

    // Splice relay.
    var pipe: PipePool.Pipe?
    var pipeBytes = 0
    var awaitingReadable = false
    var awaitingWritable = false

    /// Bytes moved and not yet added to the shared counters.
    var unflushedBytes = 0

    // Parking (Worker+Parking.swift).
    /// Bytes taken out of provided buffers into the direction's own memory: a sniffed
    /// ClientHello, or what a stalled destination had not taken when the pool ran short. They
    /// go before `buffer` and `queue`; the receive stays paused while any are left.
    var parked: ParkedBytes?
    /// The send in flight is sending `parked`, not `buffer`.
    var sendingParked = false
    /// The send in flight was cancelled to park what it holds (see `Worker.parkStalledDirections`).
    var parking = false
    /// When the direction's send last completed with bytes or was submitted (monotonic ms).
    var sendProgressAt: Int64 = 0

    /// Whether bytes read from the source are still waiting to be delivered.
    var bytesQueued: Bool { buffer != nil || !queue.isEmpty || pipeBytes > 0 || parked != nil }

    /// Back to the state of a new connection, keeping the queue's storage for the next one.
    /// The caller has given back the parked bytes (`Worker.unpark`).
    mutating func reset() {
        precondition(parked == nil, "parked bytes not given back before a reset")
        // Emptied in place before it is shared: emptying a shared array with
        // `keepingCapacity` would allocate a new buffer.
        queue.removeAll(keepingCapacity: true)
        let kept = queue
        self = RelayDirection()
        queue = kept
    }
}

/// Bytes a direction holds in memory of its own (malloc'd, exactly `count` bytes), sent from
/// `sent` on. Owned by one direction of one connection, on the worker's thread.
struct ParkedBytes {
    let base: UnsafeMutableRawPointer
    let count: Int
    var sent = 0
    var remaining: Int { count - sent }
}

/// A received buffer waiting for the send ahead of it.
struct QueuedBuffer {
    var id: UInt16
    var length: Int
}

/// A connection slot. Slots are reused: `generation` changes on every reuse so that completions
/// of the previous occupant are recognised as stale.
///
/// Thread ownership: the worker that created it; never shared.
final class Connection {
    let slot: UInt32
    var generation: UInt32 = 0
    var inUse = false
    var machine = ConnectionStateMachine()
    /// The service of the listener that accepted it (nil while the slot is free).
    var service: ServicePicker?
    /// The listener that accepted it, whose figures count it.
    var listener: WorkerListener?

    /// The client's address (filled only when the access log is on or the algorithm needs it).
    var client = PeerAddress.unknown
    var clientKey: UInt64 = 0
    /// Where the source table counts this connection open (per-client controls); nil when not.
    var sourceTicket: SourceTicket?
    /// Bytes the client sends are kept, not sent, until the relay starts (SNI routing, PROXY
    /// header, redispatch).
    var holdingClientBytes = false

    var clientFD: Int32 = -1
    var backendFD: Int32 = -1
    var lastActivity: Int64 = 0

    /// The backend being connected to or relayed to (Worker+Connect.swift, Worker+Redispatch.swift).
    var backend = BackendAttempt()
    /// Reading a PROXY header and sending one (Worker+ProxyHeader.swift).
    var proxyHeader = ProxyHeaderState()
    /// Reading the TLS ClientHello of a `route-by-sni` listener's client (Worker+SNI.swift).
    var sni = SNIState()
    /// Waiting for a backend slot under `max-connections` (Worker+Queue.swift).
    var serviceQueue = ServiceQueueState()
    /// Terminating TLS for a service with `tls:` (Worker+TLS.swift); inactive otherwise.
    var tls = TLSRelayState()
    /// What the figures and the access log say about it (Worker+Figures.swift).
    var accounting = ConnectionAccounting()

    var directions = (RelayDirection(), RelayDirection())

    init(slot: UInt32) {
        self.slot = slot
    }

    func userData(_ kind: RingOperationKind) -> UInt64 {
        UserData(slot: slot, generation: generation, kind: kind).packed
    }

    /// Accessor for one direction by value of `ConnectionStateMachine.Direction`.
    @inline(__always)
    func withDirection<R>(_ direction: ConnectionStateMachine.Direction, _ body: (inout RelayDirection) -> R) -> R {
        switch direction {
        case .clientToBackend: body(&directions.0)
        case .backendToClient: body(&directions.1)
        }
    }

    @inline(__always)
    func direction(_ direction: ConnectionStateMachine.Direction) -> RelayDirection {
        switch direction {
        case .clientToBackend: directions.0
        case .backendToClient: directions.1
        }
    }

    /// The socket a direction reads from and the one it writes to.
    @inline(__always)
    func endpoints(_ direction: ConnectionStateMachine.Direction) -> (source: Int32, destination: Int32) {
        switch direction {
        case .clientToBackend: (clientFD, backendFD)
        case .backendToClient: (backendFD, clientFD)
        }
    }

    /// Whether an operation that may wait indefinitely (a receive, a send into a full socket, a
    /// readiness poll, a connect) is armed on the client socket and on the backend socket.
    var armedOperations: (client: Bool, backend: Bool) {
        (
            client: clientFD >= 0 && (directions.0.receiving || directions.0.awaitingReadable
                || directions.1.sending || directions.1.awaitingWritable),
            backend: backendFD >= 0 && (directions.1.receiving || directions.1.awaitingReadable
                || directions.0.sending || directions.0.awaitingWritable || backend.connectDeadline != nil)
        )
    }

    /// Prepares the slot for a newly accepted client: every group back to its initial value,
    /// keeping the storage of the arrays for the next occupant.
    func begin(clientFD: Int32, listener: WorkerListener, now: Int64) {
        precondition(!inUse, "slot reused while in use")
        inUse = true
        self.service = listener.service
        self.listener = listener
        machine = ConnectionStateMachine()
        client = .unknown
        clientKey = 0
        sourceTicket = nil
        holdingClientBytes = false
        self.clientFD = clientFD
        backendFD = -1
        lastActivity = now
        backend.reset()
        proxyHeader.reset()
        sni = SNIState()
        serviceQueue = ServiceQueueState()
        accounting = ConnectionAccounting(acceptedAt: LatencyClock.now())
        directions.0.reset()
        directions.1.reset()
    }
}

extension ConnectionStateMachine.Direction {
    var receiveKind: RingOperationKind {
        self == .clientToBackend ? .receiveFromClient : .receiveFromBackend
    }
    var sendKind: RingOperationKind {
        self == .clientToBackend ? .sendToBackend : .sendToClient
    }
    var readableKind: RingOperationKind {
        self == .clientToBackend ? .clientReadable : .backendReadable
    }
    var writableKind: RingOperationKind {
        self == .clientToBackend ? .backendWritable : .clientWritable
    }
    /// Whether the source of this direction is the client.
    var sourceIsClient: Bool { self == .clientToBackend }
}
