import CSwitchyard
import Glibc
import SwitchyardCore

// Wake-ups from other threads and the periodic tick (deadlines, idle timeouts, counters).
extension Worker {
    func handleWake(result: Int32) {
        ring.submit(.read(fd: wakeFD, buffer: wakeBuffer, length: 8), userData: UserData(slot: 0, generation: 0, kind: .wake).packed)
        checkServerState()
        adoptListenersIfNewer()
        adoptSnapshotsIfNewer()
        takeGrants()
    }

    func handleTick() {
        ring.submit(.timeout(tickInterval), userData: UserData(slot: 0, generation: 0, kind: .tick).packed)
        checkServerState()
        adoptListenersIfNewer()
        adoptSnapshotsIfNewer()
        flushCounters()
        publishFigures()
        pipes.trim()
        buffers.tick(now: now)
        parkStalledDirections(force: true)
        for picker in pickers.values where picker.registry.queue.count > 0 { grantFreeSlots(picker) }
        for connection in connections where connection.inUse && !connection.machine.isClosing {
            if let deadline = connection.serviceQueue.deadline {
                if now >= deadline { queueWaitExpired(connection) }
            } else if let deadline = connection.proxyHeader.deadline, now >= deadline {
                proxyHeaderFailed(connection, .timeout)
            } else if let deadline = connection.sni.deadline, now >= deadline {
                sniffingEnded(connection)
            } else if let deadline = connection.tls.deadline, now >= deadline {
                tlsHandshakeTimedOut(connection)
            } else if let deadline = connection.backend.connectDeadline, now >= deadline {
                connection.backend.connectDeadline = nil
                submit(.cancel(userData: connection.userData(.connect)), for: connection, kind: .cancel)
            } else if let idleLimit = connection.service?.snapshot.settings.idleTimeout?.milliseconds,
                      now - connection.lastActivity >= idleLimit {
                perform(connection.machine.close(.idleTimeout), on: connection)
            }
        }
    }

    /// The tick enforces connect deadlines and idle timeouts (a linked timeout per connect would
    /// cost an extra submission, completion and kernel timer on every connection), so it runs at
    /// least four times per the shortest of them, and at least once a second. The kernel reads
    /// the interval when the next tick is submitted.
    func updateTickInterval() {
        var tick: Duration = .seconds(1)
        for picker in pickers.values {
            let settings = picker.snapshot.settings
            tick = min(tick, settings.connectTimeout / 4, (settings.idleTimeout ?? .seconds(4)) / 4)
            if picker.snapshot.hasConnectionLimits { tick = min(tick, settings.queueTimeout / 4) }
            if let acceptProxy = settings.acceptProxy { tick = min(tick, acceptProxy.timeout / 4) }
            if settings.tls != nil { tick = min(tick, settings.tlsHandshakeTimeout / 4) }
        }
        tickInterval.pointee = Worker.timespec(max(tick, .milliseconds(10)))
    }

    func checkServerState() {
        if !stopping && context.stopAccepting.load(ordering: .relaxed) {
            stopping = true
            for slot in listeners.indices { stopAccepting(slot) }
        }
        if context.closeEverything.load(ordering: .relaxed) {
            for connection in connections where connection.inUse {
                if !connection.machine.isClosing { connection.accounting.causeOverride = .gracefulStop }
                perform(connection.machine.close(.administrative), on: connection)
            }
        }
    }
}
