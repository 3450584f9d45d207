import CSwitchyard
import Glibc
import SwitchyardCore

// Per-client controls (README, "Per-client controls"): `allow`/`deny`, the per-source limits
// counted in the instance's shared `SourceTable`, `max-connection-rate` pacing of a listener's
// accepts, and `reject-with`.
//
// A client is checked once: at accept, or, on an `accept-proxy` listener, once its PROXY header
// has named it. A refused client is counted on its listener by reason
// (`switchyard_connections_rejected_total`), logged with cause `rejected_<reason>`, and closed
// as `reject-with` says. An admitted one counted in the table holds a `SourceTicket` until its
// slot is released. Nothing here runs per I/O operation.

/// Where the source table counts a connection open.
struct SourceTicket {
    var set: Int
    var way: Int
    var key: SourceKey
}

/// One worker's state for the per-client controls.
///
/// Thread ownership: the worker's thread.
final class WorkerSourceControl {
    /// Listener slots whose accept is paused for `max-connection-rate`, and when each may
    /// resume (microseconds of the monotonic clock).
    var pausedUntil: [Int: Int64] = [:]
    /// This worker's pacer of each listener, by listener id.
    var pacers: [Int: AcceptPacer] = [:]
    /// The pause timer is in flight.
    var timerArmed = false
    /// What the pause timer's timeout reads while it is in flight.
    let timerInterval: UnsafeMutablePointer<__kernel_timespec>

    init() {
        timerInterval = .allocate(capacity: 1)
        timerInterval.initialize(to: __kernel_timespec(tv_sec: 0, tv_nsec: 0))
    }

    deinit {
        timerInterval.deallocate()
    }
}

extension Worker {
    /// What `admitAtAccept` decided.
    enum AcceptVerdict {
        /// Refused: its descriptor is closed.
        case refused
        /// Admitted; the ticket (when the table counts it) goes to its slot, or back through
        /// `releaseSource(_:)` if it gets none.
        case admitted(SourceTicket?)
    }

    /// A client just accepted on listener `slot`: paces the listener, then (unless the service
    /// reads a PROXY header first) applies `allow`, `deny` and the per-source limits.
    func admitAtAccept(listener slot: Int, clientFD: Int32) -> AcceptVerdict {
        let listener = listeners[slot]
        adoptSnapshotIfNewer(listener.service)
        let settings = listener.service.snapshot.settings
        let controls = settings.clientControls
        if let rate = controls.maxConnectionRate { paceAccepts(slot, rate: rate) }
        if !listener.acceptArmed && !acceptPaused(slot) && !stopping && listener.open && !listener.retired {
            armAccept(slot)  // its accept ended with this client (one at a time when paced)
        }
        if controls.isEmpty { return .admitted(nil) }
        guard settings.acceptProxy == nil, controls.tracksSources else { return .admitted(nil) }
        let client = Worker.socketAddress(clientFD, peer: true)
        let (refused, ticket) = admit(client, service: listener.service, controls: controls)
        if let reason = refused {
            rejectAtAccept(clientFD, client: client, listener: listener, reason: reason, controls: controls)
            return .refused
        }
        return .admitted(ticket)
    }

    /// An `accept-proxy` client whose header was read: applies the controls to the address the
    /// header gave (or the socket's peer, for a LOCAL header). Returns false when it was refused
    /// (its slot is closing).
    func admitProxiedClient(_ connection: Connection) -> Bool {
        guard let service = connection.service else { return false }
        let controls = service.snapshot.settings.clientControls
        guard controls.tracksSources else { return true }
        let client = connection.proxyHeader.clientFromHeader ? connection.proxyHeader.source : Worker.socketAddress(connection.clientFD, peer: true)
        let (refused, ticket) = admit(client, service: service, controls: controls)
        connection.sourceTicket = ticket
        guard let reason = refused else { return true }
        if accessLog != nil { connection.client = client }
        connection.accounting.causeOverride = reason.cause
        warnRejected(reason, client: client)
        if controls.rejectWith == .reset {
            Socket.setResetOnClose(connection.clientFD)
            perform(connection.machine.close(.clientError), on: connection)
        } else {
            perform(connection.machine.close(.finished), on: connection)
        }
        return false
    }

    /// Gives back the connection's place in the source table when its slot is released.
    func releaseSource(_ connection: Connection) {
        releaseSource(connection.sourceTicket)
        connection.sourceTicket = nil
    }

    func releaseSource(_ ticket: SourceTicket?) {
        guard let ticket else { return }
        let now = self.now
        context.sourceTable.withSet(ticket.set) { set in set.release(way: ticket.way, key: ticket.key, now: now) }
    }

    /// Applies the access list, then the per-source limits, to `client`; returns the reason it
    /// is refused (nil: admitted) and, when admitted and counted, its ticket.
    private func admit(_ client: PeerAddress, service: ServicePicker, controls: ClientControls) -> (RejectionReason?, SourceTicket?) {
        let (high, low) = client.mapped128
        let source = controls.sourceMask.source(high: high, low: low)
        let key = SourceKey(high: source.high, low: source.low, service: sourceServiceNumber(service))
        let now = self.now
        if let reason = controls.access(high: high, low: low) {
            _ = context.sourceTable.withSet(of: key) { set in set.refused(key, now: now) }
            return (reason, nil)
        }
        let limits = controls.limits
        let (index, admission) = context.sourceTable.withSet(of: key) { set in set.admit(key, now: now, limits: limits) }
        switch admission {
        case let .admitted(way): return (nil, SourceTicket(set: index, way: way, key: key))
        case .untracked: return (nil, nil)
        case let .refused(reason): return (reason, nil)
        }
    }

    /// The service's number in the table, asked once per worker and service (it takes a lock).
    private func sourceServiceNumber(_ service: ServicePicker) -> UInt32 {
        if service.sourceTableNumber == 0 {
            service.sourceTableNumber = context.sourceTable.number(forService: service.registry.service)
        }
        return service.sourceTableNumber
    }

    /// Closes a client refused at accept (it never had a slot): counted, logged, reset or closed.
    private func rejectAtAccept(_ clientFD: Int32, client: PeerAddress, listener: WorkerListener, reason: RejectionReason,
                                controls: ClientControls) {
        if controls.rejectWith == .reset { Socket.setResetOnClose(clientFD) }
        closeDescriptor(clientFD)
        listener.figures.recordClose(reason.cause)
        warnRejected(reason, client: client)
        guard let accessLog else { return }
        let record = AccessLogRecord(
            acceptedAtNanoseconds: Worker.wallClockNanoseconds(), client: client, listener: listener.name,
            service: listener.service.registry.service, backend: nil, connectNanoseconds: nil, durationNanoseconds: 0,
            bytesFromClient: 0, bytesToClient: 0, retries: 0, cause: reason.cause)
        _ = accessLog.enqueue(record)
    }

    private func warnRejected(_ reason: RejectionReason, client: PeerAddress) {
        logger.debug("client refused", metadata: ["client": "\(client.addressText)", "reason": "\(reason)"])
    }

    // MARK: max-connection-rate

    /// Counts one accept on listener `slot` against its rate; past the rate, cancels the
    /// listener's multishot accept (completions already queued are still served) and arms the
    /// pause timer to re-arm it.
    private func paceAccepts(_ slot: Int, rate: ConnectionRate) {
        let listener = listeners[slot]
        let pacer: AcceptPacer
        if let known = sourceControl.pacers[listener.id] {
            pacer = known
        } else {
            pacer = context.acceptPacers.pacer(forListener: listener.id)
            sourceControl.pacers[listener.id] = pacer
        }
        let nowMicroseconds = Int64(clamping: LatencyClock.now() / 1000)
        let pause = pacer.accepted(now: nowMicroseconds, rate: rate)
        guard pause > 0 else { return }
        let resume = nowMicroseconds + pause
        if let already = sourceControl.pausedUntil[slot] {
            sourceControl.pausedUntil[slot] = max(already, resume)
            return
        }
        sourceControl.pausedUntil[slot] = resume
        listener.figures.acceptRatePauses &+= 1
        if listener.acceptArmed {
            ring.submit(.cancel(userData: UserData(slot: UInt32(slot), generation: 0, kind: .accept).packed),
                        userData: UserData(slot: UInt32(slot), generation: 0, kind: .acceptCancel).packed)
        }
        armPauseTimer(now: nowMicroseconds)
    }

    /// Whether listener `slot`'s accept is paused for its rate (its ended accept waits for the timer).
    func acceptPaused(_ slot: Int) -> Bool {
        sourceControl.pausedUntil[slot] != nil
    }

    /// The pause timer fired: re-arms the accepts whose pause is over, and the timer for the rest.
    func resumePausedAccepts() {
        sourceControl.timerArmed = false
        let nowMicroseconds = Int64(clamping: LatencyClock.now() / 1000)
        for (slot, resume) in sourceControl.pausedUntil where resume <= nowMicroseconds {
            sourceControl.pausedUntil[slot] = nil
            let listener = listeners[slot]
            if !stopping && listener.open && !listener.retired && !listener.acceptArmed { armAccept(slot) }
        }
        if !sourceControl.pausedUntil.isEmpty { armPauseTimer(now: nowMicroseconds) }
    }

    private func armPauseTimer(now nowMicroseconds: Int64) {
        guard !sourceControl.timerArmed, let earliest = sourceControl.pausedUntil.values.min() else { return }
        let wait = max(earliest - nowMicroseconds, 1000)
        sourceControl.timerInterval.pointee = __kernel_timespec(tv_sec: wait / 1_000_000, tv_nsec: (wait % 1_000_000) * 1000)
        sourceControl.timerArmed = true
        ring.submit(.timeout(sourceControl.timerInterval), userData: UserData(slot: 0, generation: 0, kind: .acceptPause).packed)
    }
}
