import CSwitchyard
import Glibc
import SwitchyardCore

// TLS termination (a service with `tls:`), on the worker's ring like every other connection.
//
// The client's receive is the copy relay's multishot receive into provided buffers; each chunk
// of ciphertext is copied into the session's memory BIO and its buffer goes back at once, so a
// client trickling or stalling its handshake holds no shared buffer, only its session's own
// memory (bounded below), like a plaintext client's parked bytes. The handshake runs first;
// once it completes the connection picks a backend and connects as any other. Then:
//
// - client to backend: whole records are decrypted into the connection's plaintext buffer, which
//   is sent to the backend; the next records are decrypted when that send completes.
// - backend to client: each chunk the backend sends is encrypted into the session at once and its
//   buffer goes back; the ciphertext is taken into the connection's ciphertext buffer and sent.
//
// What waits inside the session is bounded in each direction by `TLSRelayState.bufferLimit`:
// past it the receive feeding that direction pauses until the other side has taken enough.
// Nothing here blocks, hops threads or takes a lock; the two buffers are allocated once per
// connection, and OpenSSL's memory BIOs keep their storage as they are reused.
//
// Ends: the client's close_notify or end of stream (after whole records) is forwarded to the
// backend as a half-close once every decrypted byte is delivered; the backend's end becomes a
// close_notify once everything before it is sent, then a half-close of the client's socket. A
// failed handshake, a bad record or any cut resets both sides (`Worker.beginClose`).

/// A terminating connection's TLS: its session, its two buffers and how far each was sent.
///
/// Thread ownership: the worker's thread (a group of `Connection`).
struct TLSRelayState {
    /// Bytes that may wait inside the session in each direction (ciphertext not yet decrypted,
    /// or encrypted and not yet sent) before the receive feeding it pauses. The receive also
    /// stops by itself after this many bytes (`armReceive`), so a direction holds at most about
    /// twice this.
    static let bufferLimit = 64 * 1024
    /// Decrypted bytes for the backend: one whole record's payload at most per read.
    static let plaintextCapacity = 16 * 1024
    /// Ciphertext for the client, per send.
    static let ciphertextCapacity = 32 * 1024

    var session: TLSServerSession?
    /// Both buffers in one allocation: plaintext then ciphertext.
    private var storage: UnsafeMutableRawPointer?
    var handshaking = false
    /// When the handshake gives up (monotonic milliseconds); nil once it completed.
    var deadline: Int64?
    /// The client's socket reached its end (the session was told).
    var clientSocketEnded = false
    /// The backend's socket reached its end: once every byte before it is sent, close_notify
    /// follows, and only then does the state machine see the end (and shut or close the socket).
    var backendEnded = false
    /// close_notify was written for the client.
    var closeNotifyWritten = false
    /// The client sent at least one byte (one that closes without a word tried no handshake).
    var clientSpoke = false

    /// Bytes in a direction's buffer, and how many of them were sent.
    struct Filled {
        var count = 0
        var sent = 0
        var unsent: Int { count - sent }
    }

    /// Plaintext for the backend (in `plaintext`) and ciphertext for the client (in `ciphertext`).
    var toBackend = Filled()
    var toClient = Filled()

    var active: Bool { session != nil }

    /// The unsent bytes of `direction`'s buffer.
    func unsent(_ direction: ConnectionStateMachine.Direction) -> UnsafeRawBufferPointer {
        let (buffer, filled) = direction == .clientToBackend ? (plaintext, toBackend) : (ciphertext, toClient)
        return UnsafeRawBufferPointer(rebasing: buffer[filled.sent..<filled.count])
    }

    /// Counts `count` more bytes of `direction`'s buffer as sent; true once all of them are, and
    /// the buffer is empty again.
    mutating func sent(_ count: Int, _ direction: ConnectionStateMachine.Direction) -> Bool {
        func advance(_ filled: inout Filled) -> Bool {
            filled.sent += count
            guard filled.sent >= filled.count else { return false }
            filled = Filled()
            return true
        }
        return direction == .clientToBackend ? advance(&toBackend) : advance(&toClient)
    }

    var plaintext: UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(start: storage, count: Self.plaintextCapacity)
    }

    var ciphertext: UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(start: storage.map { $0 + Self.plaintextCapacity }, count: Self.ciphertextCapacity)
    }

    mutating func begin(_ session: TLSServerSession, deadline: Int64) {
        precondition(self.session == nil, "TLS state not reset before reuse")
        self.session = session
        storage = .allocate(byteCount: Self.plaintextCapacity + Self.ciphertextCapacity, alignment: 16)
        handshaking = true
        self.deadline = deadline
    }

    /// Frees the session and the buffers; nothing may be in flight from them.
    mutating func reset() {
        storage?.deallocate()
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

    /// A receive's completion on a terminating connection (not closing). `buffer`: the provided
    /// buffer it filled, already taken from the pool.
    func tlsReceived(_ connection: Connection, _ direction: Direction, result: Int32, buffer: UInt16?) {
        guard let session = connection.tls.session else { return }
        if result > 0, let buffer {
            connection.lastActivity = now
            if direction == .clientToBackend { connection.tls.clientSpoke = true }
            let bytes = UnsafeRawBufferPointer(start: buffers.address(of: buffer), count: Int(result))
            let taken = direction == .clientToBackend ? session.receiveCiphertext(bytes) : session.writePlaintext(bytes)
            connection.withDirection(direction) { $0.unflushedBytes += Int(result) }
            buffers.recycle(buffer)
            feedStarved()
            guard taken else {
                logger.debug("TLS session refused bytes", metadata: ["slot": "\(connection.slot)", "direction": "\(direction)"])
                perform(connection.machine.failed(clientSide: direction.sourceIsClient), on: connection)
                return
            }
            if direction == .clientToBackend { tlsClientBytesArrived(connection) } else { tlsFlushToClient(connection) }
            tlsKeepReceiving(connection, direction)
            return
        }
        if let buffer { buffers.recycle(buffer) }
        if result == 0 {
            if connection.accounting.firstEnd == nil { connection.accounting.firstEnd = direction }
            if direction == .clientToBackend {
                connection.tls.clientSocketEnded = true
                session.receiveEnd()
                tlsClientBytesArrived(connection)
            } else {
                connection.tls.backendEnded = true
                tlsFlushToClient(connection)
            }
        } else if result == -ENOBUFS {
            receiveFoundNoBuffer(connection, direction)
        } else if result == -ECANCELED {
            tlsKeepReceiving(connection, direction)
        } else {
            logger.debug("receive failed", metadata: ["slot": "\(connection.slot)", "direction": "\(direction)", "error": "\(Errno.describeResult(result))"])
            perform(connection.machine.failed(clientSide: direction.sourceIsClient), on: connection)
        }
    }

    /// Re-arms `direction`'s receive when it ended and there is room in the session, or pauses
    /// it when the bytes waiting there reached the limit.
    private func tlsKeepReceiving(_ connection: Connection, _ direction: Direction) {
        guard let session = connection.tls.session, !connection.machine.isClosing else { return }
        let waiting: Int
        if direction == .clientToBackend {
            guard !connection.tls.clientSocketEnded else { return }
            waiting = session.pendingCiphertextIn
        } else {
            guard connection.machine.phase == .relaying, !connection.tls.backendEnded else { return }
            waiting = session.pendingCiphertextOut + connection.tls.toClient.unsent
        }
        let state = connection.direction(direction)
        if waiting >= TLSRelayState.bufferLimit {
            pauseReceive(connection, direction)
        } else if !state.receiving && !state.starved {
            armReceive(connection, direction)
        }
    }

    /// Ciphertext (or the client's end) reached the session.
    private func tlsClientBytesArrived(_ connection: Connection) {
        if connection.tls.handshaking {
            tlsAdvanceHandshake(connection)
        } else {
            tlsPumpToBackend(connection)
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
            tlsFlushToClient(connection)
        case .completed:
            connection.tls.handshaking = false
            connection.tls.deadline = nil
            let took = Int64(clamping: LatencyClock.now() &- connection.accounting.acceptedAt)
            countHandshake(connection) { $0.recordCompleted(version: session.protocolVersion, resumed: session.resumedSession, nanoseconds: took) }
            if accessLog != nil {  // the access log's server_name and TLS fields
                connection.sni.serverName = session.serverName
                connection.accounting.tls = session.accessLogFields
            }
            tlsFlushToClient(connection)
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

    /// The alert OpenSSL wrote when the session failed (`unknown_ca`, `bad_record_mac`, ...)
    /// goes to the client in one non-blocking send just before the reset, so it learns why, as
    /// from HAProxy or nginx. Only when nothing of ours is in flight or waiting for the client
    /// (bytes would cross) and the alert is all that waits; a client that cannot take it now
    /// gets the reset alone. The reset still follows: a failure never looks like a clean end.
    private func tlsSendFinalAlert(_ connection: Connection) {
        guard let session = connection.tls.session, !connection.direction(.backendToClient).sending,
              connection.tls.toClient.count == 0, (1...256).contains(session.pendingCiphertextOut) else { return }
        withUnsafeTemporaryAllocation(byteCount: 256, alignment: 16) { buffer in
            let count = session.takeCiphertext(into: buffer)
            _ = Glibc.send(connection.clientFD, buffer.baseAddress, count, Int32(MSG_DONTWAIT) | Int32(MSG_NOSIGNAL))
        }
    }

    /// `tls-handshake-timeout` passed before the handshake completed.
    func tlsHandshakeTimedOut(_ connection: Connection) {
        tlsHandshakeFailed(connection, .timeout, "tls-handshake-timeout passed")
    }

    /// Connected to the backend: decrypted bytes start flowing to it, and its bytes back.
    func tlsStartRelay(_ connection: Connection) {
        armReceive(connection, .backendToClient)
        tlsPumpToBackend(connection)
        tlsKeepReceiving(connection, .clientToBackend)
    }

    /// Decrypts the next bytes for the backend and sends them, unless a send is in flight.
    private func tlsPumpToBackend(_ connection: Connection) {
        guard let session = connection.tls.session, connection.machine.phase == .relaying,
              !connection.direction(.clientToBackend).sending, connection.tls.toBackend.count == 0,
              !connection.machine.sourceEnded(.clientToBackend) else { return }
        switch session.readPlaintext(into: connection.tls.plaintext) {
        case let .bytes(count):
            connection.tls.toBackend = TLSRelayState.Filled(count: count)
            submitTLSSend(connection, .clientToBackend)
        case .wantMore:
            break
        case .ended:
            perform(connection.machine.endOfStream(.clientToBackend, bytesQueued: false), on: connection)
        case let .failed(reason):
            logger.debug("TLS record refused", metadata: ["slot": "\(connection.slot)", "error": "\(reason)"])
            tlsSendFinalAlert(connection)
            perform(connection.machine.failed(clientSide: true), on: connection)
            return
        }
        // Reading may have written (a key update's answer, an alert).
        tlsFlushToClient(connection)
        tlsKeepReceiving(connection, .clientToBackend)
    }

    /// Sends the session's ciphertext to the client, unless a send is in flight; with nothing
    /// left, carries the backend's end on (close_notify, then the half-close).
    private func tlsFlushToClient(_ connection: Connection) {
        guard let session = connection.tls.session, !connection.machine.isClosing,
              !connection.direction(.backendToClient).sending else { return }
        if connection.tls.toClient.count == 0 {
            connection.tls.toClient = TLSRelayState.Filled(count: session.takeCiphertext(into: connection.tls.ciphertext))
        }
        if connection.tls.toClient.count > 0 {
            submitTLSSend(connection, .backendToClient)
            return
        }
        guard connection.tls.backendEnded else {
            tlsKeepReceiving(connection, .backendToClient)
            return
        }
        // Every byte before the backend's end is sent: close_notify goes next, and once it is
        // sent the machine forwards the end (a half-close, or the close that finishes).
        if !connection.tls.closeNotifyWritten {
            connection.tls.closeNotifyWritten = true
            session.writeCloseNotify()
            tlsFlushToClient(connection)
        } else if !connection.machine.sourceEnded(.backendToClient) {
            perform(connection.machine.endOfStream(.backendToClient, bytesQueued: false), on: connection)
        }
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

    /// A send's completion on a terminating connection.
    func tlsSent(_ connection: Connection, _ direction: Direction, result: Int32) {
        connection.withDirection(direction) {
            $0.sending = false
            $0.queuedSend = nil
        }
        guard !connection.machine.isClosing else { return }
        guard result > 0 else {
            logger.debug("send failed", metadata: ["slot": "\(connection.slot)", "error": "\(Errno.describeResult(result))"])
            perform(connection.machine.failed(clientSide: !direction.sourceIsClient), on: connection)
            return
        }
        connection.lastActivity = now
        connection.withDirection(direction) { $0.sendProgressAt = now }
        guard connection.tls.sent(Int(result), direction) else {
            submitTLSSend(connection, direction)  // a short send: the rest
            return
        }
        if direction == .clientToBackend { tlsPumpToBackend(connection) } else { tlsFlushToClient(connection) }
    }
}
