import CSwitchyard
import Glibc
import SwitchyardCore

// Parking: what keeps one client's stalled or trickled bytes from holding the worker's shared
// provided buffers.
//
// Provided buffers are shared by every connection of a worker, so a client that stops reading
// (its direction's send waits for ever, holding up to `queueLimit + 1` buffers) or that trickles
// a ClientHello a byte at a time (one buffer per receive) could take the pool from everyone
// else. Two rules answer that, each paid by the client that causes it:
//
// - While sniffing, every received chunk is copied into the ClientHello reader and its buffer
//   goes back at once; once routed, the reader's bytes are parked and sent first.
// - When buffers are short (half the pool lent, or a receive waiting for one), a direction whose
//   send has made no progress for `stallAge` has that send cancelled; when it completes, what it
//   had not sent and everything queued behind it are copied into memory of the direction's own
//   and the provided buffers go back. The direction then sends from that memory and receives
//   nothing more until it is sent.
//
// Bounds: a direction parks at most `queueLimit + 1` buffers' bytes (a ClientHello: at most the
// reader's 16 KiB limit), so a connection at most 2 x 5 x buffer size (640 KiB with 64 KiB
// buffers); a worker parks at most `parkingCeiling` bytes in all, past which a stalled direction
// keeps its buffers as before. Nothing here runs per I/O operation on a flowing connection.
extension Worker {
    /// A send without progress for this long counts as stalled (monotonic milliseconds).
    static let stallAge: Int64 = 100
    /// Scans for stalled directions happen at most this often when receives starve.
    static let parkingScanInterval: Int64 = 10

    /// The most a worker parks: `parked-memory`, by default 64 MiB or the pool's own size when
    /// that is larger.
    var parkingCeiling: Int { configuration.parkedMemory ?? max(64 << 20, Int(buffers.count) * buffers.size) }

    /// Whether the shared pool is short enough that stalled directions should give theirs back.
    var buffersUnderPressure: Bool {
        buffers.lent * 2 >= Int(buffers.count) || starvedHead < starved.count
    }

    /// Copies `bytes` in front of nothing else: the direction's new parked bytes are whatever was
    /// parked and unsent, then `bytes`. Returns false (nothing changed) past the worker's ceiling
    /// or when memory cannot be had.
    @discardableResult
    func park(_ connection: Connection, _ direction: Direction, appending pieces: [UnsafeRawBufferPointer]) -> Bool {
        let old = connection.direction(direction).parked
        let added = pieces.reduce(0) { $0 + $1.count }
        let total = (old?.remaining ?? 0) + added
        guard added > 0 else { return true }
        guard parkedBytes + added <= parkingCeiling, let base = malloc(total) else { return false }
        var offset = 0
        if let old {
            memcpy(base, old.base + old.sent, old.remaining)
            offset = old.remaining
            free(old.base)
        }
        for piece in pieces where piece.count > 0 {
            memcpy(base + offset, piece.baseAddress!, piece.count)
            offset += piece.count
        }
        parkedBytes += added
        connection.withDirection(direction) { $0.parked = ParkedBytes(base: base, count: total) }
        return true
    }

    /// Frees a direction's parked bytes (sent, or the connection is going).
    func unpark(_ connection: Connection, _ direction: Direction) {
        connection.withDirection(direction) { state in
            guard let parked = state.parked else { return }
            parkedBytes -= parked.remaining
            free(parked.base)
            state.parked = nil
            state.sendingParked = false
        }
    }

    /// Moves what a direction holds in provided buffers (the unsent rest of `buffer`, then the
    /// queue) behind its parked bytes, and gives those buffers back. Nothing may be in flight on
    /// the direction's send. Returns false when nothing could be parked.
    @discardableResult
    func parkHeldBuffers(_ connection: Connection, _ direction: Direction) -> Bool {
        let state = connection.direction(direction)
        precondition(!state.sending, "parking a direction whose send is in flight")
        var pieces: [UnsafeRawBufferPointer] = []
        var ids: [UInt16] = []
        if let id = state.buffer {
            pieces.append(UnsafeRawBufferPointer(start: buffers.address(of: id) + state.sent, count: state.received - state.sent))
            ids.append(id)
        }
        for queued in state.queue {
            pieces.append(UnsafeRawBufferPointer(start: buffers.address(of: queued.id), count: queued.length))
            ids.append(queued.id)
        }
        guard !ids.isEmpty, park(connection, direction, appending: pieces) else { return false }
        connection.withDirection(direction) { state in
            state.buffer = nil
            state.sent = 0
            state.received = 0
            state.queue.removeAll(keepingCapacity: true)
        }
        for id in ids { buffers.recycle(id) }
        connection.listener?.figures.parkedDirections &+= 1
        feedStarved()
        return true
    }

    /// When buffers are short: cancels the sends of directions stalled for `stallAge` that hold
    /// provided buffers, so that `handleSend` parks them. `force` scans even if one ran lately.
    /// While receives wait for buffers and a holder is not yet old enough, one timer brings the
    /// next scan `stallAge` later rather than at the next tick (up to a second away).
    func parkStalledDirections(force: Bool = false) {
        guard buffersUnderPressure, force || now - lastParkingScan >= Self.parkingScanInterval,
              parkedBytes < parkingCeiling else { return }
        lastParkingScan = now
        var youngHolders = false
        for connection in connections where connection.inUse && !connection.machine.isClosing && !connection.backend.redispatching {
            for direction in Direction.allCases {
                let state = connection.direction(direction)
                guard state.sending, !state.sendingParked, !state.parking, state.buffer != nil else { continue }
                guard now - state.sendProgressAt >= Self.stallAge else {
                    youngHolders = true
                    continue
                }
                connection.withDirection(direction) { $0.parking = true }
                pauseReceive(connection, direction)
                submit(.cancel(userData: connection.userData(direction.sendKind)), for: connection, kind: .cancel)
            }
        }
        if youngHolders, starvedHead < starved.count, !parkingScanArmed {
            parkingScanArmed = true
            ring.submit(.timeout(parkingScanDelay), userData: UserData(slot: 0, generation: 0, kind: .parkingScan).packed)
        }
    }

    /// The timer `parkStalledDirections` armed has fired.
    func parkingScanDue() {
        parkingScanArmed = false
        parkStalledDirections(force: true)
    }
}
