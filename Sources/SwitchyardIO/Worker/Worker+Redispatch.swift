import CSwitchyard
import Glibc
import SwitchyardCore

// Sending a client to another backend when its backend resets right after the connect, before
// a single byte has moved either way: nothing was exchanged, so the session can start again
// elsewhere exactly as after a failed connect, and the backend is counted as failing. A client
// whose backend reset after bytes moved is reset (a cut stream must never look complete), and
// so is one for which no other backend is left. An orderly close is not a failure: a backend
// that closes a silent client (a database's authentication timeout, a server's header timeout)
// has answered, and its end reaches the client as it came.
extension Worker {
    /// Whether nothing has moved on `connection` in either direction.
    func nothingExchanged(_ connection: Connection) -> Bool {
        connection.accounting.bytesUp == 0 && connection.accounting.bytesDown == 0
            && connection.directions.0.unflushedBytes == 0 && connection.directions.1.unflushedBytes == 0
            && !connection.directions.0.bytesQueued && !connection.directions.1.bytesQueued
    }

    /// Called when the backend side of `connection` ended or failed; true when the client is
    /// being sent to another backend instead (the caller then does nothing else).
    func redispatchIfUntouched(_ connection: Connection, reason: String) -> Bool {
        guard !connection.backend.redispatching, !connection.machine.isClosing, nothingExchanged(connection),
              connection.machine.redispatch() else { return false }
        connection.backend.redispatching = true
        connection.backend.wasRedispatched = true
        let id = connection.backend.id
        connection.backend.stats?.failures.add(1, ordering: .relaxed)
        releaseBackendSlot(connection)
        connection.listener?.figures.connectFailures &+= 1
        connection.service?.snapshot.connectObserver?(id, false, reason)
        warnOccasionally("redispatch-\(id)", "backend \(connection.backend.name ?? "?") \(reason) before any byte; trying another")
        // End every operation on both sockets; the client's socket is kept.
        if connection.backendFD >= 0 { submit(.cancelAll(fd: connection.backendFD), for: connection, kind: .cancel) }
        submit(.cancelAll(fd: connection.clientFD), for: connection, kind: .cancel)
        return true
    }

    /// Once every operation of a redispatching connection has completed: drops the old backend
    /// socket and connects again, keeping whatever the client sent meanwhile for the new one.
    func finishRedispatchIfQuiet(_ connection: Connection) {
        guard connection.backend.redispatching, !connection.machine.isClosing, connection.machine.operationsInFlight == 0 else { return }
        connection.backend.redispatching = false
        if connection.backendFD >= 0 { closeDescriptor(connection.backendFD) }
        connection.backendFD = -1
        connection.backend.id = -1
        connection.backend.name = nil
        unpark(connection, .backendToClient)
        connection.withDirection(.backendToClient) { state in
            if let pipe = state.pipe { pipes.give(pipe, empty: state.pipeBytes == 0) }
            state.reset()
        }
        connection.withDirection(.clientToBackend) { state in
            state.receiving = false
            state.receiveCancelled = false
            state.sending = false
            state.sendingParked = false
            state.parking = false
            state.awaitingReadable = false
            state.awaitingWritable = false
            state.starved = false
        }
        connectNext(connection)
    }
}
