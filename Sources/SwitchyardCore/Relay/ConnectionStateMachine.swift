/// The life of one proxied connection, independent of how bytes move.
///
/// The worker reports events; the machine answers with the one action to take. It also counts
/// the operations in flight so that a slot (its descriptors, buffers and pipes) is released only
/// after every operation submitted for it has completed.
///
/// Half-close rule: a direction's end of stream is forwarded (`shutdown(SHUT_WR)` on the other
/// socket) only once every byte read before it has been delivered; the connection finishes when
/// both directions have forwarded their end. The second end needs no `shutdown(2)`: the machine
/// closes at once, and `close(2)` sends that FIN (the socket has nothing left unread by then).
public struct ConnectionStateMachine: Sendable {
    public enum Phase: Equatable, Sendable {
        case connecting
        case relaying
        /// Operations may still be in flight; nothing new is started.
        case closing(CloseReason)
        /// Every operation completed; the slot may be reused.
        case closed(CloseReason)
    }

    public enum Direction: Int, CaseIterable, Sendable {
        case clientToBackend = 0
        case backendToClient = 1
    }

    public enum CloseReason: Equatable, Sendable, CustomStringConvertible {
        /// Both directions ended cleanly.
        case finished
        /// No backend accepted the connection.
        case noBackend
        /// An error or reset on the client side.
        case clientError
        /// An error or reset on the backend side.
        case backendError
        case idleTimeout
        /// The operator asked for it (`shutdown BACKEND`, or the end of the shutdown grace).
        case administrative

        /// Whether the peer should see a reset rather than a clean end: a stream cut short
        /// must not look like a complete one. An idle timeout cuts a session neither side ended
        /// (a paused reader's download with bytes still on their way, say), so it resets too. A
        /// close for another reason resets as well when bytes are still queued either way
        /// (the worker checks that, see `Worker.beginClose`).
        public var resetsPeers: Bool {
            switch self {
            case .finished, .noBackend: false
            case .clientError, .backendError, .idleTimeout, .administrative: true
            }
        }

        public var description: String {
            switch self {
            case .finished: "finished"
            case .noBackend: "no backend"
            case .clientError: "client error"
            case .backendError: "backend error"
            case .idleTimeout: "idle timeout"
            case .administrative: "closed by operator"
            }
        }
    }

    public enum Action: Equatable, Sendable {
        case none
        /// Connected: start both directions.
        case startRelay
        /// Ask the balancer for another backend and connect again.
        case retryConnect
        /// `shutdown(SHUT_WR)` the destination of this direction.
        case forwardEnd(Direction)
        /// Stop everything: cancel pending operations; the slot is released when they complete.
        case close(CloseReason)
    }

    private struct DirectionState: Sendable {
        var sourceEnded = false
        var endForwarded = false
    }

    public private(set) var phase: Phase = .connecting
    public private(set) var operationsInFlight = 0
    /// One per direction, stored inline (a new connection allocates nothing here).
    private var clientToBackend = DirectionState()
    private var backendToClient = DirectionState()

    private subscript(direction: Direction) -> DirectionState {
        get { direction == .clientToBackend ? clientToBackend : backendToClient }
        set {
            if direction == .clientToBackend { clientToBackend = newValue } else { backendToClient = newValue }
        }
    }

    public init() {}

    public var isClosing: Bool {
        switch phase {
        case .closing, .closed: true
        default: false
        }
    }

    public func sourceEnded(_ direction: Direction) -> Bool { self[direction].sourceEnded }
    public func endForwarded(_ direction: Direction) -> Bool { self[direction].endForwarded }

    // MARK: Operations in flight

    public mutating func operationSubmitted() { operationsInFlight += 1 }

    /// Records a completion; returns true when the connection is closing and this was the last
    /// operation, i.e. the slot must now be released (exactly once).
    public mutating func operationCompleted() -> Bool {
        precondition(operationsInFlight > 0, "completion without a submitted operation")
        operationsInFlight -= 1
        return releaseIfQuiet()
    }

    /// Returns true (once) when closing with nothing in flight, and moves to `closed`.
    public mutating func releaseIfQuiet() -> Bool {
        guard case let .closing(reason) = phase, operationsInFlight == 0 else { return false }
        phase = .closed(reason)
        return true
    }

    // MARK: Events

    public mutating func connected() -> Action {
        guard phase == .connecting else { return .none }
        phase = .relaying
        return .startRelay
    }

    /// A connect failed or timed out. `canRetry` says whether another untried backend remains.
    public mutating func connectFailed(canRetry: Bool) -> Action {
        guard phase == .connecting else { return .none }
        return canRetry ? .retryConnect : close(.noBackend)
    }

    /// The source of `direction` reached end of stream. `bytesQueued` says whether bytes read
    /// before it are still waiting to be delivered.
    public mutating func endOfStream(_ direction: Direction, bytesQueued: Bool) -> Action {
        guard phase == .relaying else { return .none }
        self[direction].sourceEnded = true
        return bytesQueued ? .none : forward(direction)
    }

    /// Everything queued in `direction` was delivered.
    public mutating func drained(_ direction: Direction) -> Action {
        guard phase == .relaying else { return .none }
        let state = self[direction]
        return state.sourceEnded && !state.endForwarded ? forward(direction) : .none
    }

    /// The worker forwarded the end of `direction`; when both are forwarded the connection is done.
    public mutating func endWasForwarded(_ direction: Direction) -> Action {
        guard phase == .relaying else { return .none }
        self[direction].endForwarded = true
        return clientToBackend.endForwarded && backendToClient.endForwarded ? close(.finished) : .none
    }

    /// Forwards the end of `direction`: a shutdown while the other direction still flows, else
    /// the close that finishes the connection.
    private mutating func forward(_ direction: Direction) -> Action {
        let other: Direction = direction == .clientToBackend ? .backendToClient : .clientToBackend
        guard self[other].endForwarded else { return .forwardEnd(direction) }
        self[direction].endForwarded = true
        return close(.finished)
    }

    /// The backend went away (reset or closed) before a single byte moved either way: the client
    /// can be sent to another backend, as after a failed connect. Back to `connecting`; true when
    /// that was allowed (relaying, and no end of stream seen or forwarded in either direction).
    public mutating func redispatch() -> Bool {
        guard phase == .relaying, !clientToBackend.sourceEnded, !backendToClient.sourceEnded,
              !clientToBackend.endForwarded, !backendToClient.endForwarded else { return false }
        phase = .connecting
        return true
    }

    /// An error on one side (reset, broken pipe, refused write): both sides close promptly.
    public mutating func failed(clientSide: Bool) -> Action {
        close(clientSide ? .clientError : .backendError)
    }

    /// Closes for `reason` unless already closing; the first reason wins.
    public mutating func close(_ reason: CloseReason) -> Action {
        guard !isClosing else { return .none }
        phase = .closing(reason)
        return .close(reason)
    }
}
