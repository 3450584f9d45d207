import CSwitchyard
import Glibc
import SwitchyardCore

// TLS to backends (`backend-tls`, README "Re-encryption to backends"): the backend's side of a
// connection speaks TLS whatever the client's side speaks (TLS terminated here, or plaintext).
//
// The backend is chosen as for any connection; its settings (its own `backend-tls` over the
// service's) pick a context made on the control thread (`BackendTLSContexts`) and the server
// name it is sent. Once the TCP connect completes (and a `send-proxy` header went out, in
// plaintext, as HAProxy sends it), a `TLSClientSession` runs the handshake on the worker's ring:
// its ClientHello leaves through the client-to-backend direction's send, the backend's answers
// come through the backend's receive into provided buffers, copied into the session at once.
// The connection stays `connecting` until the handshake completes; then it is connected as a
// plaintext one is (connect figures, passive health) and relays (Worker+TLS.swift).
//
// A handshake that fails (verification, name, the backend's alert or close, or no completion
// within the service's `connect-timeout`) fails that backend like a refused connect: counted,
// reported to the health checker, and the client goes to the next backend once every operation
// on the old socket has ended (the redispatch path, Worker+Redispatch.swift); with none left it
// is reset, never closed cleanly.

extension Worker {
    /// Picks the TLS the connection's next backend gets (`startConnect`): its context and the
    /// server name it is sent, or none for plaintext. False when the context is missing (a
    /// reload that could not make it never puts its settings in force, so this is a bug).
    func chooseBackendTLS(_ connection: Connection, _ backend: BackendState, settings: ServiceSettings) -> Bool {
        connection.tls.backendContext = nil
        connection.tls.backendServerName = nil
        guard let tls = settings.backendTLS(for: backend.spec) else { return true }
        if let newer = context.backendTLS.tableIfNewer(than: backendTLSVersion) {
            (backendTLSVersion, backendTLSContexts) = newer
        }
        guard let made = backendTLSContexts[tls] else { return false }
        connection.tls.backendContext = made
        let clientName = connection.tls.session?.serverName ?? connection.sni.serverName
        connection.tls.backendServerName = tls.serverName(backendHost: backend.spec.endpoint.host, clientServerName: clientName)
        return true
    }

    /// The backend's TCP connect completed (and its PROXY header went out): its handshake
    /// starts, within the service's `connect-timeout`.
    func startBackendTLS(_ connection: Connection, _ context: TLSContext) {
        let session: TLSClientSession
        do {
            // The worker bounds what waits (`tlsKeepReceiving`); the session's own bound is a
            // backstop above it.
            session = try TLSClientSession(context: context, serverName: connection.tls.backendServerName,
                                           receiveLimit: 4 * TLSRelayState.bufferLimit)
        } catch {
            backendTLSFailed(connection, reason: error.message)
            return
        }
        if let name = connection.backend.name,
           let earlier = backendTLSSessions.session(backend: name, serverName: connection.tls.backendServerName, context: context) {
            session.offer(earlier)
        }
        connection.tls.backendSession = session
        connection.tls.backendHandshaking = true
        connection.tls.deadline = now + (connection.service?.snapshot.settings.connectTimeout ?? .seconds(5)).milliseconds
        connection.tls.prepareBuffer(.clientToBackend, capacity: TLSRelayState.ciphertextCapacity)
        connection.tls.prepareBuffer(.backendToClient, capacity: TLSRelayState.capacity(destinationIsTLS: connection.tls.session != nil))
        advanceBackendHandshake(connection)
        tlsKeepReceiving(connection, .backendToClient)
    }

    /// Runs the backend's handshake as far as its bytes allow; sends what it wrote.
    func advanceBackendHandshake(_ connection: Connection) {
        guard let session = connection.tls.backendSession else { return }
        switch session.advance() {
        case .handshaking:
            tlsPump(connection, .clientToBackend)
        case .established, .closed:
            connection.tls.backendHandshaking = false
            connection.tls.deadline = nil
            connection.backend.stats?.tlsHandshakes.add(1, ordering: .relaxed)
            tlsPump(connection, .clientToBackend)  // the handshake's last flight
            backendConnected(connection)
        case let .failed(reason):
            backendTLSFailed(connection, reason: "TLS handshake: \(reason)")
        }
    }

    /// The backend's handshake failed: that backend failed like a refused connect, and the
    /// client goes to the next one once every operation on the old socket has ended.
    func backendTLSFailed(_ connection: Connection, reason: String) {
        let stats = connection.backend.stats
        let id = connection.backend.id
        stats?.tlsHandshakeFailures.add(1, ordering: .relaxed)
        logger.debug("backend TLS handshake failed", metadata: [
            "slot": "\(connection.slot)", "backend": "\(connection.backend.name ?? "?")", "reason": "\(reason)",
        ])
        connection.tls.deadline = nil
        connection.tls.backendHandshaking = false
        connection.tls.backendSession = nil
        // What was on its way to the old backend goes with it (its buffer stays: a send in
        // flight may still read it), and so does that backend's end; the client's side is kept.
        connection.tls.toBackend.filled = TLSRelayState.Filled()
        connection.tls.toBackend.closeNotifyWritten = false
        connection.tls.toClient.sourceSocketEnded = false
        connection.tls.toClient.streamEnded = false
        recordConnectFailed(connection, backend: stats)
        if let stats {
            stats.total.subtract(1, ordering: .relaxed)
            stats.failures.add(1, ordering: .relaxed)
        }
        releaseBackendSlot(connection)
        connection.service?.snapshot.connectObserver?(id, false, reason)
        warnOccasionally("connect-\(id)", "backend \(connection.backend.endpoint?.description ?? "?"): \(reason); trying another")
        // The redispatch path ends every operation, closes the old socket and connects again;
        // with no backend left the client is reset.
        connection.backend.redispatching = true
        connection.backend.wasRedispatched = true
        if connection.backendFD >= 0 { submit(.cancelAll(fd: connection.backendFD), for: connection, kind: .cancel) }
        if connection.armedOperations.client { submit(.cancelAll(fd: connection.clientFD), for: connection, kind: .cancel) }
    }

    /// A plaintext client's bytes received while its backend's handshake runs: kept in the
    /// direction's buffer and queue as a plain connection keeps them (`holdingClientBytes`),
    /// pausing the receive once the queue is full.
    func holdClientBytes(_ connection: Connection, buffer id: UInt16, length: Int) {
        let queued = connection.withDirection(.clientToBackend) { state -> Int in
            state.unflushedBytes += length
            if state.buffer == nil {
                state.buffer = id
                state.sent = 0
                state.received = length
            } else {
                state.queue.append(QueuedBuffer(id: id, length: length))
            }
            return state.queue.count
        }
        if queued >= Self.queueLimit { pauseReceive(connection, .clientToBackend) }
    }

    /// Encrypts for the backend what a plaintext client sent before the relay (bytes read for
    /// SNI routing or a PROXY header's payload, parked or in provided buffers), in order, and
    /// gives their memory back. False when the session refused them.
    func deliverHeldClientBytes(_ connection: Connection, to session: TLSClientSession) -> Bool {
        var accepted = true
        if let parked = connection.direction(.clientToBackend).parked {
            accepted = session.writePlaintext(UnsafeRawBufferPointer(start: parked.base + parked.sent, count: parked.remaining))
            unpark(connection, .clientToBackend)
        }
        connection.withDirection(.clientToBackend) { state in
            if let id = state.buffer {
                let bytes = UnsafeRawBufferPointer(start: buffers.address(of: id) + state.sent, count: state.received - state.sent)
                accepted = accepted && session.writePlaintext(bytes)
                buffers.recycle(id)
            }
            for queued in state.queue {
                accepted = accepted && session.writePlaintext(UnsafeRawBufferPointer(start: buffers.address(of: queued.id), count: queued.length))
                buffers.recycle(queued.id)
            }
            state.buffer = nil
            state.sent = 0
            state.received = 0
            state.queue.removeAll(keepingCapacity: true)
        }
        feedStarved()
        return accepted
    }

    /// Keeps the backend's session of a connection being released for the next connection to
    /// that backend with the same name and context to resume.
    func keepBackendTLSSession(_ connection: Connection) {
        guard let session = connection.tls.backendSession, let context = connection.tls.backendContext,
              let name = connection.backend.name, let resumable = session.resumableSession() else { return }
        backendTLSSessions.keep(resumable, backend: name, serverName: connection.tls.backendServerName, context: context)
    }

    /// The backend is ready to relay to (connected; with `backend-tls`, its handshake done).
    func backendConnected(_ connection: Connection) {
        recordConnected(connection, backend: connection.backend.stats)
        connection.service?.snapshot.connectObserver?(connection.backend.id, true, "")
        perform(connection.machine.connected(), on: connection)
    }
}

/// The sessions one worker resumes with backends (`backend-tls`): the latest of each backend
/// (`HOST:PORT`) and server name, with the context it was made from. A session is offered only
/// to a connection made from that same context (same CA, certificate and `verify`: resuming
/// skips the certificate, so a context made again by a reload starts afresh). At most `limit`
/// backend and name pairs (`from-client-sni` lets clients choose names): a new pair past it
/// empties the table first, so names a client floods in are forgotten with the rest rather
/// than keeping every later pair out for good (only resumption is lost, never a connection).
///
/// Thread ownership: the worker's thread.
final class BackendTLSSessions {
    static let limit = 1024

    private struct Key: Hashable {
        let backend: String
        let serverName: String?
    }

    private var entries: [Key: (context: TLSContext, session: TLSResumableSession)] = [:]

    func session(backend: String, serverName: String?, context: TLSContext) -> TLSResumableSession? {
        guard let entry = entries[Key(backend: backend, serverName: serverName)], entry.context === context else { return nil }
        return entry.session
    }

    func keep(_ session: TLSResumableSession, backend: String, serverName: String?, context: TLSContext) {
        let key = Key(backend: backend, serverName: serverName)
        if entries[key] == nil && entries.count >= Self.limit { entries.removeAll(keepingCapacity: true) }
        entries[key] = (context, session)
    }
}
