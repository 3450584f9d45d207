import CSwitchyard
import Glibc
import SwitchyardCore

// Accepting clients on this worker's listeners, and following the listener table as reloads
// add and remove listeners.
extension Worker {
    func armAccept(_ slot: Int) {
        let listener = listeners[slot]
        listener.acceptArmed = true
        // max-connection-rate: one client at a time, so that pacing can stop after any of them
        // (a multishot accept takes the whole backlog in one go).
        let paced = listener.service.snapshot.settings.clientControls.maxConnectionRate != nil
        ring.submit(paced ? .accept(listener: listener.fd) : .acceptMultishot(listener: listener.fd),
                    userData: UserData(slot: UInt32(slot), generation: 0, kind: .accept).packed)
    }

    func handleAccept(listener slot: Int, result: Int32, flags: UInt32) {
        let listener = listeners[slot]
        if flags & IORING_CQE_F_MORE == 0 {
            // The multishot accept ended: re-arm it, after a pause if descriptors ran out.
            listener.acceptArmed = false
            if stopping || listener.retired {
                closeListener(slot)
            } else if result >= 0 || acceptPaused(slot) {
                // Re-armed by `admitAtAccept` once max-connection-rate has had its say about
                // this client, or by the pause's timer.
            } else if [EMFILE, ENFILE, ENOBUFS, ENOMEM].contains(-result) {
                listener.figures.acceptBackoffs &+= 1
                if !acceptBackoffArmed {
                    acceptBackoffArmed = true
                    ring.submit(.timeout(backoffInterval), userData: UserData(slot: 0, generation: 0, kind: .acceptBackoff).packed)
                }
            } else {
                armAccept(slot)
            }
        }
        guard result >= 0 else {
            if result != -ECANCELED && result != -EINVAL {
                warnOccasionally("accept", "accept failed: \(Errno.describeResult(result)); retrying in 100ms")
            }
            return
        }
        // A connection accepted while stopping (its completion was already queued when the
        // accept was cancelled) is served like any other: closing it would drop a client that
        // the kernel has handed to this process and to no other.
        let clientFD = result
        listener.figures.accepted &+= 1
        guard case let .admitted(sourceTicket) = admitAtAccept(listener: slot, clientFD: clientFD) else { return }
        let open = context.openConnections.add(1, ordering: .relaxed).newValue
        if open > configuration.maxConnections {
            context.openConnections.subtract(1, ordering: .relaxed)
            releaseSource(sourceTicket)
            listener.figures.recordClose(.refused)
            closeDescriptor(clientFD)
            warnOccasionally("maxconn", "--max-connections \(configuration.maxConnections) reached; closing new clients")
            return
        }
        context.totalConnections.add(1, ordering: .relaxed)
        let connection = takeSlot()
        connection.begin(clientFD: clientFD, listener: listener, now: now)
        connection.sourceTicket = sourceTicket
        openHere += 1
        adoptSnapshotIfNewer(listener.service)
        let settings = listener.service.snapshot.settings
        // With accept-proxy the key comes from the header (or the socket, for a LOCAL one).
        if listener.service.needsClientKey && settings.acceptProxy == nil {
            connection.clientKey = Socket.peerAddressKey(clientFD)
        }
        if accessLog != nil {
            connection.client = Worker.socketAddress(clientFD, peer: true)
            connection.accounting.acceptedWallClock = Worker.wallClockNanoseconds()
        }
        if let acceptProxy = settings.acceptProxy {
            startReadingProxyHeader(connection, acceptProxy)
            return
        }
        if settings.routing != nil {
            startSniffing(connection, timeout: settings.sniTimeout)
            return
        }
        if let tls = listener.service.tls {
            startTLS(connection, tls, timeout: settings.tlsHandshakeTimeout)
            return
        }
        connectNext(connection)
    }

    func closeListener(_ slot: Int) {
        let listener = listeners[slot]
        guard listener.open else { return }
        closeDescriptor(listener.fd)
        listener.open = false
    }

    /// Stops accepting on a listener: its multishot accept is cancelled (the completion arrives
    /// without F_MORE, -ECANCELED, and closes the descriptor); a listener backing off after
    /// EMFILE has no accept to complete, so it is closed now. Once every descriptor of the
    /// socket is closed, new connects are refused.
    ///
    /// Never shutdown(2): the socket may be shared with systemd (socket activation) or with the
    /// process taking over, and shutdown stops the socket itself, for every holder
    /// (`SharedListenerTests`). Connections queued on a shared socket stay queued for the
    /// others; cancelling only ends this ring's accept.
    func stopAccepting(_ slot: Int) {
        let listener = listeners[slot]
        guard listener.open else { return }
        if listener.acceptArmed {
            // A second cancel (reload, then shutdown) finds nothing and completes -ENOENT.
            ring.submit(.cancel(userData: UserData(slot: UInt32(slot), generation: 0, kind: .accept).packed),
                        userData: UserData(slot: UInt32(slot), generation: 0, kind: .acceptCancel).packed)
        } else {
            closeListener(slot)
        }
    }

    /// Adopts the instance's newer listener table: accepts on listeners it adds and stops
    /// accepting on those it no longer has. Connections of a removed listener carry on.
    func adoptListenersIfNewer() {
        guard let table = context.listeners.tableIfNewer(than: listenerVersion) else { return }
        listenerVersion = table.version
        serviceTLS = table.tls
        let wanted = Set(table.entries.map(\.id))
        for (slot, listener) in listeners.enumerated() where listener.open && !listener.retired && !wanted.contains(listener.id) {
            listener.retired = true
            stopAccepting(slot)
        }
        let held = Set(listeners.map(\.id))
        for entry in table.entries where !held.contains(entry.id) {
            let fd = entry.descriptors[index]
            listeners.append(WorkerListener(id: entry.id, fd: fd, endpoint: entry.endpoint, service: picker(for: entry.registry)))
            if stopping {
                closeListener(listeners.count - 1)
            } else {
                armAccept(listeners.count - 1)
            }
        }
        // Services that are gone keep their picker only while connections use it.
        serviceRegistries = table.services
        var live = Set(listeners.filter { $0.open && !$0.retired }.map { ObjectIdentifier($0.service.registry) })
        for registry in table.services.values { live.insert(ObjectIdentifier(registry)) }
        pickers = pickers.filter { live.contains($0.key) }
        for picker in pickers.values { picker.tls = table.tls[picker.registry.service] }
        updateTickInterval()
        context.listeners.acknowledge(worker: index, version: table.version)
    }

    /// This worker's picker for the service of `registry` (a listener's, or the one a
    /// `route-by-sni` route names), made on first use with the service's TLS context.
    func picker(for registry: BackendRegistry) -> ServicePicker {
        let key = ObjectIdentifier(registry)
        if let picker = pickers[key] { return picker }
        let picker = ServicePicker(registry: registry)
        picker.tls = serviceTLS[registry.service]
        pickers[key] = picker
        return picker
    }

    func takeSlot() -> Connection {
        if let slot = freeSlots.popLast() { return connections[Int(slot)] }
        let connection = Connection(slot: UInt32(connections.count))
        connections.append(connection)
        return connection
    }
}
