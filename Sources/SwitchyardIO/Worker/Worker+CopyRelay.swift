import CSwitchyard
import Glibc
import SwitchyardCore

// The copy relay.
//
// Each direction has one multishot receive armed on its source. Every completion carries a
// provided buffer; the direction sends one buffer at a time, in order, and queues the others.
// When `queueLimit` buffers are queued (a slow destination), the receive is cancelled and
// re-armed once the queue has drained, so a direction never holds more than a handful of
// buffers and a slow reader cannot take the pool from everyone else.
extension Worker {

    /// Buffers a direction may queue behind the one it is sending before its receive is paused.
    static let queueLimit = 4

    func armReceive(_ connection: Connection, _ direction: Direction) {
        let source = connection.endpoints(direction).source
        let held = connection.withDirection(direction) { state -> Int in
            state.receiving = true
            state.receiveCancelled = false
            return (state.buffer == nil ? 0 : 1) + state.queue.count
        }
        // The kernel keeps filling buffers until a cancel lands, so a direction could take far
        // more than the queue limit (issue 16): the receive ends itself once the bytes of the
        // buffers it may still hold have arrived. Not while sniffing, which keeps every byte.
        // A TLS session copies every chunk at once: its bound is what may wait inside it.
        let bound = connection.tls.active ? TLSRelayState.bufferLimit : max(1, Self.queueLimit + 1 - held) * buffers.size
        let limit = buffers.receiveLimitSupported && !connection.sni.sniffing ? UInt32(bound) : 0
        submit(.receiveMultishot(socket: source, group: buffers.group, limit: limit), for: connection, kind: direction.receiveKind)
    }

    /// Asks the kernel to end `direction`'s multishot receive; its last completion says when.
    func pauseReceive(_ connection: Connection, _ direction: Direction) {
        let armed = connection.withDirection(direction) { state -> Bool in
            guard state.receiving && !state.receiveCancelled else { return false }
            state.receiveCancelled = true
            return true
        }
        if armed {
            submit(.cancel(userData: connection.userData(direction.receiveKind)), for: connection, kind: .cancel)
        }
    }

    func handleReceive(_ connection: Connection, _ direction: Direction, result: Int32, flags: UInt32) {
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
        if connection.tls.active {
            tlsReceived(connection, direction, result: result, buffer: bufferID)
            return
        }
        if connection.backend.redispatching
            || (connection.holdingClientBytes && direction == .clientToBackend && result != -ENOBUFS && result != -ECANCELED) {
            // Client bytes wait for the relay: routing by SNI reads them first, and after a
            // redispatch they wait for the new backend. The old backend's last completions go.
            guard direction == .clientToBackend else {
                if let bufferID { buffers.recycle(bufferID) }
                return
            }
            if result > 0, let bufferID {
                if connection.proxyHeader.reading { // The PROXY header is read and stripped first.
                    proxyHeaderReceived(connection, buffer: bufferID, length: Int(result))
                    return
                }
                let queued = connection.withDirection(direction) { state -> Int in
                    state.unflushedBytes += Int(result)
                    if state.buffer == nil {
                        state.buffer = bufferID
                        state.sent = 0
                        state.received = Int(result)
                    } else {
                        state.queue.append(QueuedBuffer(id: bufferID, length: Int(result)))
                    }
                    return state.queue.count
                }
                if connection.sni.sniffing {
                    sniffed(connection, UnsafeRawBufferPointer(start: buffers.address(of: bufferID), count: Int(result)))
                } else if queued >= Self.queueLimit && !connection.backend.redispatching {
                    pauseReceive(connection, direction)
                }
                return
            }
            if let bufferID { buffers.recycle(bufferID) }
            if result == 0 {
                // The end is seen again once the relay re-arms the receive; while sniffing it decides now.
                if connection.proxyHeader.reading {
                    proxyHeaderFailed(connection, .missing)
                } else if connection.sni.sniffing {
                    sniffingEnded(connection)
                }
            } else if result < 0 && result != -ECANCELED && result != -ENOBUFS {
                perform(connection.machine.failed(clientSide: true), on: connection)
            }
            return
        }
        // A reset before any byte is a failed attempt; an orderly close is the backend's answer
        // (an authentication or header timeout, say) and reaches the client as it came.
        if direction == .backendToClient, result < 0, result != -ENOBUFS, result != -ECANCELED,
           redispatchIfUntouched(connection, reason: Errno.describeResult(result)) {
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
                    // Parked bytes may be on their way: this buffer goes after them.
                    return (!state.sending, 0, state.fullReads)
                }
                state.queue.append(QueuedBuffer(id: bufferID, length: Int(result)))
                return (false, state.queue.count, state.fullReads)
            }
            if startSend { submitSend(connection, direction) }
            if queued >= Self.queueLimit || connection.direction(direction).parked != nil
                || (configuration.mode == .auto && fullReads >= configuration.spliceAfterFullReads) {
                pauseReceive(connection, direction)
            } else if ended && !connection.direction(direction).receiveCancelled {
                // The receive's byte limit ended it (see armReceive) and there is room: go on.
                armReceive(connection, direction)
            }
        } else if result == 0 {
            if let bufferID { buffers.recycle(bufferID) }
            if connection.accounting.firstEnd == nil { connection.accounting.firstEnd = direction }
            let state = connection.direction(direction)
            if state.sending, state.queue.isEmpty, !(state.sendingParked && state.buffer != nil), let entry = state.queuedSend {
                // The send in flight is the last before the end is forwarded: if the kernel has
                // not read it yet, its bytes wait for the FIN and leave in one segment with it.
                ring.addMoreFlag(entry, userData: connection.userData(direction.sendKind))
            }
            let queued = state.bytesQueued
            perform(connection.machine.endOfStream(direction, bytesQueued: queued), on: connection)
        } else if result == -ENOBUFS {
            receiveFoundNoBuffer(connection, direction)
        } else if result == -ECANCELED {
            if let bufferID { buffers.recycle(bufferID) }
            resumeIfQuiet(connection, direction)
        } else {
            if let bufferID { buffers.recycle(bufferID) }
            logger.debug("receive failed", metadata: ["slot": "\(connection.slot)", "direction": "\(direction)", "error": "\(Errno.describeResult(result))"])
            perform(connection.machine.failed(clientSide: direction.sourceIsClient), on: connection)
        }
    }

    /// A receive of `direction` ended with ENOBUFS: it waits, oldest first, for a buffer.
    func receiveFoundNoBuffer(_ connection: Connection, _ direction: Direction) {
        connection.listener?.figures.starvedReceives &+= 1
        connection.withDirection(direction) { $0.starved = true }
        starved.append((connection.slot, connection.generation, direction))
        // The ring ran dry: post more spares (up to every buffer) before re-arming.
        buffers.ringRanDry()
        // Buffers may have come back between the kernel's ENOBUFS and this completion; with
        // none returned later the direction would wait for ever.
        feedStarved()
        // Directions stalled on a client that does not read give theirs back (Worker+Parking).
        parkStalledDirections()
    }

    /// Sends what `direction` holds next: its parked bytes, else the unsent rest of `buffer`.
    func submitSend(_ connection: Connection, _ direction: Direction) {
        let state = connection.direction(direction)
        let bytes: UnsafeRawPointer
        let length: Int
        let fromParked = state.parked != nil
        if let parked = state.parked {
            bytes = UnsafeRawPointer(parked.base + parked.sent)
            length = parked.remaining
        } else if let id = state.buffer {
            bytes = UnsafeRawPointer(buffers.address(of: id) + state.sent)
            length = state.received - state.sent
        } else {
            return
        }
        // The last bytes before a forwarded end wait for its FIN (`shutdown` or `close` follows
        // this send's completion at once) and leave with it: a segment fewer per connection.
        let last = (!fromParked || state.buffer == nil) && state.queue.isEmpty && connection.machine.sourceEnded(direction)
        let entry = submit(.send(socket: connection.endpoints(direction).destination, bytes: bytes,
                                 length: UInt32(length), more: last),
                           for: connection, kind: direction.sendKind)
        connection.withDirection(direction) {
            $0.sending = true
            $0.sendingParked = fromParked
            $0.queuedSend = entry
            $0.sendProgressAt = now
        }
    }

    func handleSend(_ connection: Connection, _ direction: Direction, result: Int32) {
        if connection.tls.active {
            tlsSent(connection, direction, result: result)
            return
        }
        let before = connection.direction(direction)
        let fromParked = before.sendingParked
        // A send cancelled so that its bytes could be parked (Worker+Parking) moved nothing.
        let cancelledToPark = before.parking && result == -ECANCELED
        let failed = result <= 0 && !cancelledToPark
        let progress = result > 0 ? Int(result) : 0
        var bufferToRecycle: UInt16?
        var parkedSent = false
        connection.withDirection(direction) { state in
            state.sending = false
            state.sendingParked = false
            state.parking = false
            state.queuedSend = nil
            if progress > 0 { state.sendProgressAt = now }
            if fromParked {
                state.parked!.sent += progress
                parkedSent = state.parked!.remaining == 0
            } else {
                state.sent += progress
                if failed || state.sent >= state.received || connection.machine.isClosing {
                    bufferToRecycle = state.buffer
                    state.buffer = nil
                }
            }
        }
        if fromParked {
            parkedBytes -= progress
            if parkedSent || failed || connection.machine.isClosing { unpark(connection, direction) }
        }
        if let bufferToRecycle {
            buffers.recycle(bufferToRecycle)
            feedStarved()
        }
        guard !connection.machine.isClosing else { return }
        if failed {
            logger.debug("send failed", metadata: ["slot": "\(connection.slot)", "error": "\(Errno.describeResult(result))"])
            perform(connection.machine.failed(clientSide: !direction.sourceIsClient), on: connection)
            return
        }
        // Bytes that left count as activity for the idle timeout, a short send's too.
        if progress > 0 { connection.lastActivity = now }
        if before.parking {
            // Stalled while buffers were short: what this send had not sent and everything
            // queued behind it move to memory of the direction's own, and the buffers go back.
            parkHeldBuffers(connection, direction)
        }
        let next = connection.withDirection(direction) { state -> Bool in
            if state.parked != nil || state.buffer != nil { return true }
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

    /// Whether an end of stream that the splice relay just read from `direction`'s source was
    /// really a reset whose error a ring send to that socket took first (see `Socket.wasReset`).
    /// Only a send still in flight can have done so unseen: a send completes, error and all, in
    /// the kernel before the reset's end of stream is read there, so the copy relay's receive
    /// sees that completion first; a splice write fails at once, in the same loop turn.
    func endOfStreamWasReset(_ connection: Connection, _ direction: Direction) -> Bool {
        let towardSource: Direction = direction == .clientToBackend ? .backendToClient : .clientToBackend
        return connection.direction(towardSource).sending && !connection.machine.endForwarded(towardSource)
            && Socket.wasReset(connection.endpoints(direction).source)
    }

    /// Once a direction has nothing in flight and nothing queued: moves it to a pipe if it
    /// streams (auto mode), else re-arms its receive if that was paused or ended.
    func resumeIfQuiet(_ connection: Connection, _ direction: Direction) {
        let state = connection.direction(direction)
        guard !state.receiving, !state.sending, state.buffer == nil, state.queue.isEmpty, state.parked == nil, !state.starved,
              !connection.machine.sourceEnded(direction), !connection.machine.isClosing else { return }
        if configuration.mode == .auto && state.fullReads >= configuration.spliceAfterFullReads {
            if startSplicing(connection, direction) { return }
            // No pipe to be had: keep copying, and do not ask again for a while.
            connection.withDirection(direction) { $0.fullReads = 0 }
        }
        armReceive(connection, direction)
    }

    /// Re-arms receives that found no provided buffer, oldest first, while buffers are free.
    func feedStarved() {
        while starvedHead < starved.count && buffers.posted > 0 {
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
}
