import Glibc
import SwitchyardCore

// Backend connection limits and the service queue (`max-connections`, `queue-size`,
// `queue-timeout`). A queued client holds its accepted socket and its slot, and nothing else:
// no buffer, no operation on the ring. See `ConnectionQueue` for how slots are handed over.

/// A connection's place under its backends' `max-connections`.
struct ServiceQueueState {
    /// Waiting in the service's queue for a backend slot, until `deadline`.
    var waiting = false
    /// Monotonic milliseconds.
    var deadline: Int64?
    /// The backend's `max-connections` counted this connection (its slot goes to the next
    /// queued client when it ends).
    var backendLimited = false
}

extension Worker {
    func queueEntry(_ connection: Connection) -> ConnectionQueue.Entry {
        ConnectionQueue.Entry(worker: index, slot: connection.slot, generation: connection.generation)
    }

    /// Puts the client in the service's queue, or closes it when the queue is full.
    func enqueue(_ connection: Connection, _ picker: ServicePicker) {
        let settings = picker.snapshot.settings
        let queue = picker.registry.queue
        guard settings.queueSize > 0, queue.enqueue(queueEntry(connection), limit: settings.queueSize) else {
            connection.accounting.causeOverride = .queueFull
            warnOccasionally("queue-full", "every backend of \(picker.registry.service) is at its max-connections and its queue is full; closing a client")
            perform(connection.machine.close(.noBackend), on: connection)
            return
        }
        connection.serviceQueue.waiting = true
        connection.serviceQueue.deadline = now + settings.queueTimeout.milliseconds
        connection.listener?.figures.queued &+= 1
        // A slot may have come free between the full backends seen above and the enqueue (its
        // worker saw nobody waiting and gave it back): hand it out now rather than at a tick.
        grantFreeSlots(picker)
    }

    /// Takes a queued connection out of its queue as it closes.
    func leaveQueue(_ connection: Connection) {
        connection.serviceQueue.waiting = false
        connection.serviceQueue.deadline = nil
        // When it is no longer there, a grant is on its way; `takeGrants` gives that slot on.
        _ = connection.service?.registry.queue.remove(queueEntry(connection))
    }

    /// The queue timeout, from the tick.
    func queueWaitExpired(_ connection: Connection) {
        connection.serviceQueue.deadline = nil
        guard let queue = connection.service?.registry.queue, queue.remove(queueEntry(connection)) else {
            return  // A slot was just granted; it arrives with the next wake-up.
        }
        connection.serviceQueue.waiting = false
        connection.accounting.causeOverride = .queueTimeout
        perform(connection.machine.close(.noBackend), on: connection)
    }

    /// Ends `connection`'s claim on its backend's `active` count: the slot goes to the
    /// longest-waiting client of the service if there is one, else back to the backend.
    func releaseBackendSlot(_ connection: Connection) {
        guard let stats = connection.backend.stats else { return }
        let limited = connection.serviceQueue.backendLimited
        connection.backend.stats = nil
        connection.serviceQueue.backendLimited = false
        returnSlot(limited ? connection.service : nil, backendID: connection.backend.id, stats: stats)
    }

    private func returnSlot(_ picker: ServicePicker?, backendID: Int, stats: BackendStats) {
        if let picker, picker.registry.queue.count > 0, let grant = picker.registry.queue.grantFirst(backendID: backendID) {
            wakeWorker(grant.entry.worker)
        } else {
            stats.active.subtract(1, ordering: .relaxed)
        }
    }

    /// Hands every free slot of the service's backends to queued clients: after a client
    /// queued, and at each tick while clients wait (a backend came up, a reload raised a limit).
    func grantFreeSlots(_ picker: ServicePicker) {
        let queue = picker.registry.queue
        guard queue.count > 0 else { return }
        adoptSnapshotIfNewer(picker)
        let snapshot = picker.snapshot
        // The backends of the tiers taking clients (failover tiers), first tier first.
        for tier in snapshot.failover.tiers where tier.share > 0 {
            for index in tier.members where snapshot.backends[index].selectable {
                let backend = snapshot.backends[index]
                while queue.count > 0 {
                    if let limit = backend.spec.maxConnections {
                        guard backend.stats.reserve(limit: limit) else { break }
                    } else {
                        backend.stats.active.add(1, ordering: .relaxed)
                    }
                    guard let grant = queue.grantFirst(backendID: backend.id) else {
                        backend.stats.active.subtract(1, ordering: .relaxed)
                        return
                    }
                    wakeWorker(grant.entry.worker)
                }
            }
        }
    }

    /// Connects the queued clients this worker was given slots for (from the wake-up).
    func takeGrants() {
        for picker in pickers.values where picker.registry.queue.pendingGrants > 0 {
            for grant in picker.registry.queue.takeGrants(worker: index) {
                adoptSnapshotIfNewer(picker)
                let connection = connections[Int(grant.entry.slot)]
                let backend = picker.snapshot.backend(id: grant.backendID)
                let stillWaiting = connection.inUse && connection.generation == grant.entry.generation
                    && connection.serviceQueue.waiting && !connection.machine.isClosing && connection.service === picker
                guard stillWaiting, let backend, backend.selectable else {
                    // The client left, or the backend went away meanwhile: the slot goes on.
                    if let backend {
                        returnSlot(picker, backendID: backend.id, stats: backend.stats)
                    }
                    if stillWaiting {
                        connection.serviceQueue.waiting = false
                        connection.serviceQueue.deadline = nil
                        connectNext(connection)
                    }
                    continue
                }
                connection.serviceQueue.waiting = false
                connection.serviceQueue.deadline = nil
                connection.lastActivity = now  // The wait does not count towards --idle-timeout.
                startConnect(connection, backend, limited: backend.spec.maxConnections != nil, settings: picker.snapshot.settings)
            }
        }
    }

    func wakeWorker(_ worker: Int) {
        guard peerWakeFDs.indices.contains(worker) else { return }
        var one: UInt64 = 1
        Descriptor.signalEvent(peerWakeFDs[worker])
    }
}
