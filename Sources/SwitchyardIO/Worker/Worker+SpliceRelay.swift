import CSwitchyard
import Glibc
import SwitchyardCore

// The splice relay: readiness polls on the ring, splice(2) through a pooled pipe.
extension Worker {
    /// Moves `direction` onto a pipe; false (keep copying) when no pipe can be had.
    func startSplicing(_ connection: Connection, _ direction: Direction) -> Bool {
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

    func handleReadiness(_ connection: Connection, _ direction: Direction, readable: Bool, result: Int32) {
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
    func pump(_ connection: Connection, _ direction: Direction) {
        guard !connection.backend.redispatching else { return }
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
                } else if moved < 0 && moved != -Int(EAGAIN),
                          direction == .backendToClient, state.pipeBytes == 0,
                          redispatchIfUntouched(connection, reason: Errno.describeResult(Int32(moved))) {
                    connection.withDirection(direction) { $0 = state }
                    return
                } else if moved == 0 && endOfStreamWasReset(connection, direction) {
                    // A readiness completion handled before the error of a send that took the reset.
                    connection.withDirection(direction) { $0 = state }
                    action = connection.machine.failed(clientSide: direction.sourceIsClient)
                    break
                } else if moved == 0 {
                    if connection.accounting.firstEnd == nil { connection.accounting.firstEnd = direction }
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
}
