import CSwitchyard
import Glibc
import SwitchyardCore

// Wake-ups from other threads and the periodic tick (deadlines, idle timeouts, counters).
extension Worker {
    func handleWake(result: Int32) {
        ring.submit(.read(fd: wakeFD, buffer: wakeBuffer, length: 8), userData: UserData(slot: 0, generation: 0, kind: .wake).packed)
        checkServerState()
        adoptSnapshotIfNewer()
    }

    func handleTick() {
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

    func checkServerState() {
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
}
