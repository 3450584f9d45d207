import CSwitchyard
import Glibc
import SwitchyardCore

// TLS on the worker's ring, like every other connection: terminating (a service with `tls:`,
// the client's side) and originating (`backend-tls`, the backend's side; its handshake is in
// Worker+BackendTLS.swift), either or both.
//
// A TLS side's receive is the copy relay's multishot receive into provided buffers; each chunk
// of ciphertext is copied into that side's session (its memory BIO) and the buffer goes back at
// once, so a peer trickling or stalling its handshake holds no shared buffer, only its session's
// own memory (bounded below), like a plaintext client's parked bytes. A plaintext side's chunk
// is encrypted into the other side's session at once, and its buffer goes back too. The client's
// handshake runs first; once it completes the connection picks a backend and connects as any
// other (with `backend-tls`, then the backend's handshake). Then each direction:
//
// - decrypts whole records from its source's session (a TLS source) and, for a TLS destination,
//   encrypts them into the destination's session at once;
// - sends what is ready from the direction's own buffer: the destination session's ciphertext,
//   or the decrypted bytes for a plaintext destination; the next bytes are made ready when that
//   send completes.
//
// What waits inside the sessions is bounded in each direction by `TLSRelayState.bufferLimit`:
// past it the receive feeding that direction pauses until the other side has taken enough.
// Nothing here blocks, hops threads or takes a lock; each direction's buffer is allocated once
// per connection, and OpenSSL's memory BIOs keep their storage as they are reused.
//
// Ends: a direction's stream ends with its source's close_notify or socket end (after whole
// records) or, for a plaintext source, its socket's end. Once every byte before it is sent, a
// TLS destination gets close_notify, then the destination socket is half-closed (the state
// machine's `endOfStream`). A failed handshake, a bad record or any cut resets both sides
// (`Worker.beginClose`).

/// A TLS connection's sessions, its two buffers and how far each was sent.
///
/// Thread ownership: the worker's thread (a group of `Connection`).
struct TLSRelayState {
    /// Bytes that may wait inside the sessions in each direction (ciphertext not yet decrypted,
    /// or encrypted and not yet sent) before the receive feeding it pauses. The receive also
    /// stops by itself after this many bytes (`armReceive`), so a direction holds at most about
    /// twice this.
    static let bufferLimit = 64 * 1024
    /// Decrypted bytes for a plaintext destination: one whole record's payload at most per read.
    static let plaintextCapacity = 16 * 1024
    /// Ciphertext for a TLS destination, per send.
    static let ciphertextCapacity = 32 * 1024

    /// The client's session, when the service terminates TLS.
    var session: TLSServerSession?
    /// The backend's session (`backend-tls`), from the backend's connect on.
    var backendSession: TLSClientSession?
    /// The context and server name the backend being connected to gets (chosen with it); a nil
    /// context: plaintext to it.
    var backendContext: TLSContext?
    var backendServerName: String?
    /// The client's handshake runs.
    var handshaking = false
    /// The backend's handshake runs (the connection is still connecting).
    var backendHandshaking = false
    /// When the running handshake gives up (monotonic milliseconds); nil when none runs.
    var deadline: Int64?
    /// The client sent at least one byte (one that closes without a word tried no handshake).
    var clientSpoke = false

    /// Bytes in a direction's buffer, and how many of them were sent.
    struct Filled {
        var count = 0
        var sent = 0
        var unsent: Int { count - sent }
    }

    /// One direction: its buffer (allocated once, when first needed) and its end.
    struct Outgoing {
        var storage: UnsafeMutableRawBufferPointer?
        var filled = Filled()
        /// The source's socket reached its end (a TLS source's session was told).
        var sourceSocketEnded = false
        /// The stream ended: a TLS source's close_notify or end after whole records, or a
        /// plaintext source's end. Once every byte before it is sent, close_notify follows for a
        /// TLS destination, and only then does the state machine see the end.
        var streamEnded = false
        /// close_notify was written for the destination.
        var closeNotifyWritten = false
    }

    var toBackend = Outgoing()
    var toClient = Outgoing()

    var active: Bool { session != nil || backendSession != nil }

    subscript(_ direction: ConnectionStateMachine.Direction) -> Outgoing {
        get { direction == .clientToBackend ? toBackend : toClient }
        set { if direction == .clientToBackend { toBackend = newValue } else { toClient = newValue } }
    }

    /// The session bytes of `direction` are read from (nil: a plaintext source).
    func sourceSession(_ direction: ConnectionStateMachine.Direction) -> (any TLSRecordSession)? {
        direction == .clientToBackend ? session : backendSession
    }

    /// The session bytes of `direction` are written to (nil: a plaintext destination).
    func destinationSession(_ direction: ConnectionStateMachine.Direction) -> (any TLSRecordSession)? {
        direction == .clientToBackend ? backendSession : session
    }

    /// The unsent bytes of `direction`'s buffer.
    func unsent(_ direction: ConnectionStateMachine.Direction) -> UnsafeRawBufferPointer {
        let outgoing = self[direction]
        return UnsafeRawBufferPointer(rebasing: outgoing.storage![outgoing.filled.sent..<outgoing.filled.count])
    }

    /// Counts `count` more bytes of `direction`'s buffer as sent; true once all of them are, and
    /// the buffer is empty again.
    mutating func sent(_ count: Int, _ direction: ConnectionStateMachine.Direction) -> Bool {
        self[direction].filled.sent += count
        guard self[direction].filled.sent >= self[direction].filled.count else { return false }
        self[direction].filled = Filled()
        return true
    }

    /// Gives `direction` a buffer of at least `capacity` bytes (kept when it has one), for a
    /// direction with nothing in it.
    mutating func prepareBuffer(_ direction: ConnectionStateMachine.Direction, capacity: Int) {
        if let storage = self[direction].storage {
            guard storage.count < capacity else { return }
            precondition(self[direction].filled.count == 0, "a TLS buffer grown while it holds bytes")
            storage.deallocate()
        }
        self[direction].storage = .allocate(byteCount: capacity, alignment: 16)
    }

    /// The buffer a direction with a destination of this kind needs.
    static func capacity(destinationIsTLS: Bool) -> Int {
        destinationIsTLS ? ciphertextCapacity : plaintextCapacity
    }

    mutating func begin(_ session: TLSServerSession, deadline: Int64) {
        precondition(self.session == nil, "TLS state not reset before reuse")
        self.session = session
        prepareBuffer(.backendToClient, capacity: Self.ciphertextCapacity)
        handshaking = true
        self.deadline = deadline
    }

    /// Frees the sessions and the buffers; nothing may be in flight from them.
    mutating func reset() {
        toBackend.storage?.deallocate()
        toClient.storage?.deallocate()
        self = TLSRelayState()
    }
}

extension Worker {
    /// A terminating listener's new client: its handshake starts with `received`, the bytes read
    /// before it (after a PROXY header, or the ClientHello `route-by-sni` read; already counted
    /// as received), then with those it sends. The client's receive may already be armed.
    func startTLS(_ connection: Connection, _ context: TLSServerContext, timeout: Duration,
                  received: UnsafeRawBufferPointer = UnsafeRawBufferPointer(start: nil, count: 0)) {
        let session: TLSServerSession
        do {
            session = try TLSServerSession(context: context)
        } catch {
            warnOccasionally("tls-session", "cannot start a TLS session: \(error.message); closing client")
            perform(connection.machine.close(.clientError), on: connection)
            return
        }
        connection.holdingClientBytes = false
        connection.tls.begin(session, deadline: now + timeout.milliseconds)
        if !received.isEmpty {
            connection.tls.clientSpoke = true
            guard session.receiveCiphertext(received) else {
                tlsHandshakeFailed(connection, .protocol, "the session refused the \(received.count) bytes read before it")
                return
            }
            tlsAdvanceHandshake(connection)
            guard !connection.machine.isClosing, connection.tls.handshaking else { return }
        }
        if !connection.direction(.clientToBackend).receiving { armReceive(connection, .clientToBackend) }
    }

    /// A receive's completion on a TLS connection (not closing). `buffer`: the provided buffer
    /// it filled, already taken from the pool.
    func tlsReceived(_ connection: Connection, _ direction: Direction, result: Int32, buffer: UInt16?) {
        if direction == .backendToClient && connection.backend.redispatching {
            // The last completions of a backend whose handshake failed.
            if let buffer { buffers.recycle(buffer) }
            return
        }
        let source = connection.tls.sourceSession(direction)
        if result > 0, let buffer {
            if source == nil && direction == .clientToBackend && connection.machine.phase != .relaying {
                // A plaintext client's bytes while the backend's handshake runs: kept for it.
                holdClientBytes(connection, buffer: buffer, length: Int(result))
                return
            }
            connection.lastActivity = now
            if direction == .clientToBackend { connection.tls.clientSpoke = true }
            let bytes = UnsafeRawBufferPointer(start: buffers.address(of: buffer), count: Int(result))
            let taken = source?.receiveCiphertext(bytes) ?? connection.tls.destinationSession(direction)?.writePlaintext(bytes) ?? false
            connection.withDirection(direction) { $0.unflushedBytes += Int(result) }
            buffers.recycle(buffer)
            feedStarved()
            guard taken else {
                logger.debug("TLS session refused bytes", metadata: ["slot": "\(connection.slot)", "direction": "\(direction)"])
                tlsSideFailed(connection, direction, sourceSide: true, reason: "the TLS session refused bytes")
                return
            }
            tlsBytesArrived(connection, direction)
            tlsKeepReceiving(connection, direction)
            return
        }
        if let buffer { buffers.recycle(buffer) }
        if result == 0 {
            if connection.accounting.firstEnd == nil { connection.accounting.firstEnd = direction }
            connection.tls[direction].sourceSocketEnded = true
            if let source {
                source.receiveEnd()
            } else {
                connection.tls[direction].streamEnded = true
            }
            tlsBytesArrived(connection, direction)
        } else if result == -ENOBUFS {
            receiveFoundNoBuffer(connection, direction)
        } else if result == -ECANCELED {
            tlsKeepReceiving(connection, direction)
        } else {
            logger.debug("receive failed", metadata: ["slot": "\(connection.slot)", "direction": "\(direction)", "error": "\(Errno.describeResult(result))"])
            tlsSideFailed(connection, direction, sourceSide: true, reason: Errno.describeResult(result))
        }
    }

    /// A socket of a TLS connection failed (`sourceSide`: `direction`'s source, else its
    /// destination): during the backend's handshake that backend failed like a connect,
    /// otherwise the connection is cut.
    private func tlsSideFailed(_ connection: Connection, _ direction: Direction, sourceSide: Bool, reason: String) {
        let clientSide = direction.sourceIsClient == sourceSide
        if !clientSide && connection.tls.backendHandshaking {
            backendTLSFailed(connection, reason: reason)
            return
        }
        perform(connection.machine.failed(clientSide: clientSide), on: connection)
    }

    /// Re-arms `direction`'s receive when it ended and there is room in the sessions, or pauses
    /// it when the bytes waiting there reached the limit.
    func tlsKeepReceiving(_ connection: Connection, _ direction: Direction) {
        guard !connection.machine.isClosing, !connection.backend.redispatching, !connection.tls[direction].sourceSocketEnded else { return }
        let source = connection.tls.sourceSession(direction)
        let destination = connection.tls.destinationSession(direction)
        if direction == .clientToBackend {
            // A TLS client's ciphertext waits in its session (bounded) while the backend is
            // chosen; a plaintext client's stays in its socket until the relay runs.
            guard source != nil || connection.machine.phase == .relaying else { return }
        } else {
            guard connection.backendFD >= 0, connection.machine.phase == .relaying || connection.tls.backendHandshaking else { return }
        }
        let waiting = (source?.pendingCiphertextIn ?? 0) + (destination?.pendingCiphertextOut ?? 0) + connection.tls[direction].filled.unsent
        let state = connection.direction(direction)
        if waiting >= TLSRelayState.bufferLimit {
            pauseReceive(connection, direction)
        } else if !state.receiving && !state.starved {
            armReceive(connection, direction)
        }
    }

    /// Bytes (or the end) reached `direction`'s session: a handshake goes on, or they relay.
    private func tlsBytesArrived(_ connection: Connection, _ direction: Direction) {
        if direction == .clientToBackend && connection.tls.handshaking {
            tlsAdvanceHandshake(connection)
        } else if direction == .backendToClient && connection.tls.backendHandshaking {
            advanceBackendHandshake(connection)
        } else {
            tlsPump(connection, direction)
        }
    }

    private func tlsAdvanceHandshake(_ connection: Connection) {
        guard let session = connection.tls.session else { return }
        switch session.advanceHandshake() {
        case .inProgress:
            if session.pendingCiphertextIn > TLSRelayState.bufferLimit {
                tlsHandshakeFailed(connection, .protocol, "more than \(TLSRelayState.bufferLimit) bytes of handshake waiting")
                return
            }
            tlsPump(connection, .backendToClient)
        case .completed:
            connection.tls.handshaking = false
            connection.tls.deadline = nil
            let took = Int64(clamping: LatencyClock.now() &- connection.accounting.acceptedAt)
            countHandshake(connection) { $0.recordCompleted(version: session.protocolVersion, resumed: session.resumedSession, nanoseconds: took) }
            if accessLog != nil {  // the access log's server_name and TLS fields
                connection.sni.serverName = session.serverName
                connection.accounting.tls = session.accessLogFields
            }
            tlsPump(connection, .backendToClient)
            connectNext(connection)
        case let .failed(reason, text):
            tlsHandshakeFailed(connection, reason, text)
        }
    }

    /// Counts the failure and resets the client (and closes the connection). A client that
    /// closed without sending a byte (a port probe) attempted no handshake and is not counted.
    func tlsHandshakeFailed(_ connection: Connection, _ reason: TLSHandshakeFailure, _ text: String) {
        connection.tls.deadline = nil
        if connection.tls.clientSpoke || reason != .protocol { countHandshake(connection) { $0.recordFailed(reason) } }
        logger.debug("TLS handshake failed", metadata: ["slot": "\(connection.slot)", "reason": "\(reason.label)", "error": "\(text)"])
        tlsSendFinalAlert(connection)
        perform(connection.machine.close(.clientError), on: connection)
    }

    /// The alert OpenSSL wrote when the client's session failed (`unknown_ca`,
    /// `bad_record_mac`, ...) goes to the client in one non-blocking send just before the reset,
    /// so it learns why, as from HAProxy or nginx. Only when nothing of ours is in flight or
    /// waiting for the client (bytes would cross) and the alert is all that waits; a client that
    /// cannot take it now gets the reset alone. The reset still follows: a failure never looks
    /// like a clean end.
    func tlsSendFinalAlert(_ connection: Connection) {
        guard let session = connection.tls.session, !connection.direction(.backendToClient).sending,
              connection.tls[.backendToClient].filled.count == 0, (1...256).contains(session.pendingCiphertextOut) else { return }
        withUnsafeTemporaryAllocation(byteCount: 256, alignment: 16) { buffer in
            let count = session.takeCiphertext(into: buffer)
            _ = Glibc.send(connection.clientFD, buffer.baseAddress, count, Int32(MSG_DONTWAIT) | Int32(MSG_NOSIGNAL))
        }
    }

    /// A handshake's deadline passed: the client's `tls-handshake-timeout`, or the backend's
    /// `connect-timeout` (a backend that fails like a connect).
    func tlsHandshakeTimedOut(_ connection: Connection) {
        if connection.tls.backendHandshaking {
            let timeout = connection.service?.snapshot.settings.connectTimeout ?? .zero
            backendTLSFailed(connection, reason: "TLS handshake timed out after \(timeout.shortDescription)")
            return
        }
        tlsHandshakeFailed(connection, .timeout, "tls-handshake-timeout passed")
    }

    /// The backend is ready (connected, and its handshake completed with `backend-tls`): each
    /// direction gets its buffer, a plaintext client's kept bytes go into the backend's session,
    /// and bytes flow both ways.
    func tlsStartRelay(_ connection: Connection) {
        connection.tls.prepareBuffer(.clientToBackend, capacity: TLSRelayState.capacity(destinationIsTLS: connection.tls.backendSession != nil))
        connection.tls.prepareBuffer(.backendToClient, capacity: TLSRelayState.capacity(destinationIsTLS: connection.tls.session != nil))
        if connection.tls.session == nil, let backend = connection.tls.backendSession {
            guard deliverHeldClientBytes(connection, to: backend) else {
                perform(connection.machine.failed(clientSide: false), on: connection)
                return
            }
        }
        for direction in Direction.allCases {
            tlsPump(connection, direction)
            tlsKeepReceiving(connection, direction)
        }
    }

    /// Makes `direction`'s next bytes ready and sends them, unless a send is in flight or its
    /// buffer still holds some: the destination session's ciphertext, after decrypting what the
    /// source session has (within the room the buffer has for it). With nothing left and the
    /// stream ended, carries the end on (close_notify for a TLS destination, then the half-close).
    func tlsPump(_ connection: Connection, _ direction: Direction) {
        guard !connection.machine.isClosing, connection.endpoints(direction).destination >= 0,
              !connection.direction(direction).sending, connection.tls[direction].filled.count == 0,
              let buffer = connection.tls[direction].storage else { return }
        let source = connection.tls.sourceSession(direction)
        let destination = connection.tls.destinationSession(direction)
        let relaying = connection.machine.phase == .relaying && !connection.machine.sourceEnded(direction)
        var decrypting = relaying && source != nil && !connection.tls[direction].streamEnded
        // For a TLS destination, decrypting stops while the ciphertext waiting for it would not
        // leave room in the buffer for one more record (16 KiB of payload and its overhead).
        let room = buffer.count - TLSRelayState.plaintextCapacity - 512
        let window = UnsafeMutableRawBufferPointer(rebasing: buffer[0..<min(buffer.count, TLSRelayState.plaintextCapacity)])
        var ready = 0
        while ready == 0 {
            if decrypting, let source, destination.map({ $0.pendingCiphertextOut <= room }) ?? true {
                switch source.readPlaintext(into: window) {
                case let .bytes(count):
                    guard let destination else {
                        ready = count
                        continue
                    }
                    guard destination.writePlaintext(UnsafeRawBufferPointer(rebasing: window[0..<count])) else {
                        tlsSideFailed(connection, direction, sourceSide: false, reason: "the TLS session refused bytes")
                        return
                    }
                    continue
                case .wantMore:
                    decrypting = false
                case .ended:
                    connection.tls[direction].streamEnded = true
                    decrypting = false
                case let .failed(reason):
                    logger.debug("TLS record refused", metadata: ["slot": "\(connection.slot)", "direction": "\(direction)", "error": "\(reason)"])
                    if direction == .clientToBackend { tlsSendFinalAlert(connection) }
                    perform(connection.machine.failed(clientSide: direction.sourceIsClient), on: connection)
                    return
                }
                continue
            }
            guard let destination, destination.pendingCiphertextOut > 0 else { break }
            ready = destination.takeCiphertext(into: buffer)
            if ready == 0 { break }
        }
        if ready > 0 {
            connection.tls[direction].filled = TLSRelayState.Filled(count: ready)
            submitTLSSend(connection, direction)
        }
        // Reading may have written for the source's peer (a key update's answer, an alert): the
        // other direction carries it (after this one's send is in flight: it may come back here).
        if let source, source.pendingCiphertextOut > 0 {
            tlsPump(connection, direction == .clientToBackend ? .backendToClient : .clientToBackend)
        }
        guard !connection.machine.isClosing else { return }
        if ready == 0, connection.machine.phase == .relaying, connection.tls[direction].streamEnded,
           !connection.machine.sourceEnded(direction), !connection.direction(direction).sending {
            // Every byte before the end is sent: close_notify goes next, and once it is sent the
            // machine forwards the end (a half-close, or the close that finishes).
            if let destination, !connection.tls[direction].closeNotifyWritten {
                connection.tls[direction].closeNotifyWritten = true
                destination.writeCloseNotify()
                tlsPump(connection, direction)
                return
            }
            perform(connection.machine.endOfStream(direction, bytesQueued: false), on: connection)
            return
        }
        tlsKeepReceiving(connection, direction)
    }

    private func submitTLSSend(_ connection: Connection, _ direction: Direction) {
        let bytes = connection.tls.unsent(direction)
        let entry = submit(.send(socket: connection.endpoints(direction).destination, bytes: bytes.baseAddress!,
                                 length: UInt32(bytes.count), more: false),
                           for: connection, kind: direction.sendKind)
        connection.withDirection(direction) {
            $0.sending = true
            $0.queuedSend = entry
            $0.sendProgressAt = now
        }
    }

    /// A send's completion on a TLS connection.
    func tlsSent(_ connection: Connection, _ direction: Direction, result: Int32) {
        connection.withDirection(direction) {
            $0.sending = false
            $0.queuedSend = nil
        }
        // A send to a backend whose handshake failed: its bytes went with it.
        guard !connection.machine.isClosing, !(direction == .clientToBackend && connection.backend.redispatching) else { return }
        guard result > 0 else {
            logger.debug("send failed", metadata: ["slot": "\(connection.slot)", "error": "\(Errno.describeResult(result))"])
            tlsSideFailed(connection, direction, sourceSide: false, reason: Errno.describeResult(result))
            return
        }
        connection.lastActivity = now
        connection.withDirection(direction) { $0.sendProgressAt = now }
        guard connection.tls.sent(Int(result), direction) else {
            submitTLSSend(connection, direction)  // a short send: the rest
            return
        }
        tlsPump(connection, direction)
    }
}
