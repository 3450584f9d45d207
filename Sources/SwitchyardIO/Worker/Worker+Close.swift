import CSwitchyard
import Glibc
import SwitchyardCore

// Carrying out the state machine's actions, closing and releasing slots, flushing counters.
extension Worker {
    func perform(_ action: ConnectionStateMachine.Action, on connection: Connection) {
        switch action {
        case .none:
            break
        case .startRelay:
            connection.holdingClientBytes = false
            if connection.tls.active {
                tlsStartRelay(connection)
                return
            }
            for direction in Direction.allCases {
                let held = connection.direction(direction)
                if held.pipe != nil {
                    // Redispatched with client bytes in the pipe: the new backend gets them first.
                    pump(connection, direction)
                    continue
                }
                if held.buffer != nil || held.parked != nil {
                    // Client bytes kept (read for SNI routing, or before a redispatch): they go
                    // first, and the receive goes on (or resumes once they are sent).
                    submitSend(connection, direction)
                    continue
                }
                if held.receiving { continue }
                if configuration.mode == .splice && startSplicing(connection, direction) { continue }
                armReceive(connection, direction)
            }
        case .retryConnect:
            connectNext(connection)
        case let .forwardEnd(direction):
            // shutdown(2) on a real descriptor is cheap; IORING_OP_SHUTDOWN would go to io-wq.
            Socket.shutdownWriting(connection.endpoints(direction).destination)
            perform(connection.machine.endWasForwarded(direction), on: connection)
        case let .close(reason):
            beginClose(connection, reason: reason)
        }
    }

    func beginClose(_ connection: Connection, reason: ConnectionStateMachine.CloseReason) {
        logger.trace("closing connection", metadata: ["slot": "\(connection.slot)", "reason": "\(reason)"])
        // A cut with bytes still queued either way is a reset whatever its reason: the peer
        // must not take what it got for the whole stream.
        // A TLS client sees its session end only by close_notify: any other end is a cut.
        if reason.resetsPeers || connection.directions.0.bytesQueued || connection.directions.1.bytesQueued
            || (connection.tls.active && reason != .finished) {
            if connection.clientFD >= 0 { Socket.setResetOnClose(connection.clientFD) }
            if connection.backendFD >= 0 { Socket.setResetOnClose(connection.backendFD) }
        }
        if reason == .backendError {
            connection.backend.stats?.failures.add(1, ordering: .relaxed)
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
    func release(_ connection: Connection) {
        for direction in Direction.allCases {
            unpark(connection, direction)
            connection.withDirection(direction) { state in
                if let id = state.buffer {
                    buffers.recycle(id)
                    state.buffer = nil
                }
                // Buffers queued behind the one being sent go back too: a connection cut while
                // its destination was slow used to keep them, and the pool shrank for good.
                for queued in state.queue { buffers.recycle(queued.id) }
                state.queue.removeAll(keepingCapacity: true)
                if let pipe = state.pipe {
                    pipes.give(pipe, empty: state.pipeBytes == 0)
                    state.pipe = nil
                }
            }
        }
        keepBackendTLSSession(connection)  // TLS to backends: resumed by the next connection
        connection.tls.reset()
        flushCounters(connection)
        if case let .closed(reason) = connection.machine.phase { recordClosed(connection, reason: reason) }
        if connection.clientFD >= 0 { closeDescriptor(connection.clientFD) }
        if connection.backendFD >= 0 { closeDescriptor(connection.backendFD) }
        connection.clientFD = -1
        connection.backendFD = -1
        releaseBackendSlot(connection)
        releaseSource(connection)
        if connection.serviceQueue.waiting { leaveQueue(connection) }
        connection.inUse = false
        connection.service = nil
        connection.listener = nil
        connection.generation = UserData.nextGeneration(after: connection.generation)
        freeSlots.append(connection.slot)
        openHere -= 1
        context.openConnections.subtract(1, ordering: .relaxed)
        feedStarved()
    }

    func flushCounters(_ connection: Connection) {
        let up = connection.directions.0.unflushedBytes
        let down = connection.directions.1.unflushedBytes
        guard up != 0 || down != 0 else { return }
        connection.directions.0.unflushedBytes = 0
        connection.directions.1.unflushedBytes = 0
        connection.accounting.bytesUp &+= UInt64(up)
        connection.accounting.bytesDown &+= UInt64(down)
        connection.listener?.figures.bytesFromClients &+= UInt64(up)
        connection.listener?.figures.bytesToClients &+= UInt64(down)
        if let stats = connection.backend.stats {
            stats.bytesToBackend.add(up, ordering: .relaxed)
            stats.bytesFromBackend.add(down, ordering: .relaxed)
        }
        context.bytesToBackends.add(up, ordering: .relaxed)
        context.bytesToClients.add(down, ordering: .relaxed)
    }

    func flushCounters() {
        for connection in connections where connection.inUse { flushCounters(connection) }
    }
}
