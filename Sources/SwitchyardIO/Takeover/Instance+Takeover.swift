import CSwitchyard
import Glibc
import Logging
import Synchronization
import SwitchyardCore

// Takeover (`switchyard serve --takeover`): a new process receives the running one's listening
// sockets, admin socket and admin changes over the admin socket (`TakeoverStep`), accepts on
// them, and only then tells the running one to stop accepting. At no moment is a listening
// socket closed while the other process needs it, and neither ever shutdown(2)s one (that would
// stop it for both): a worker stops accepting by cancelling its multishot accept and closing its
// own descriptor (`Worker.stopAccepting`), and connections queued on the socket wait for the
// process still accepting.
//
// The running process (the "old" one), on the admin thread:
//   `takeover`        dup every listener's sockets and the admin socket under `reloadLock`,
//                     send them with the `HandoverMessage`; now pending: changes that would
//                     make the handed state stale (reload, drain, weight...) are refused.
//   `takeover commit` stop accepting (as at SIGTERM, without STOPPING=1), stop accepting on
//                     the admin socket without unlinking it, reply, and drain: open
//                     connections finish within shutdown-grace, then exit 0.
//   connection closed without a commit: abandoned, nothing changed.
//
// The new process, on the main thread of `run(takeover: true)`: connect, `takeover`, receive
// (`receiveHandover`); the admin changes replace the state file's (`adoptHandedOverState`);
// listeners of the new configuration take handed-over sockets (`HandoverMatch`), others are
// bound fresh (`makeListeners`); the workers start and accept on all; `takeover commit`
// (`commitTakeover`); handed-over listeners the configuration dropped are closed; the admin
// server starts on the handed-over socket. Any failure before the commit's reply exits non-zero
// with one line, after letting connections accepted meanwhile finish.

/// The running process's side of takeovers (whether one is pending, whether this process was
/// taken over) and, in a process taking over, which process it takes over from.
///
/// Thread safety: any thread; `begin`, `commit` and `end` are called under `Instance.reloadLock`.
final class TakeoverState: Sendable {
    private struct Inner {
        /// The process a handover frame went to, until it commits or goes away.
        var pendingPeer: Int32?
        var successor: Int32?
        var predecessor: Int32?
        var successorProcess: Int32?
    }

    private let inner = Mutex(Inner())
    private let committedFlag = Atomic<Bool>(false)

    /// Whether a new process took over: this one no longer accepts and drains.
    var committed: Bool { committedFlag.load(ordering: .acquiring) }
    /// The process id of the process that took over, once `committed`.
    var successor: Int32? { inner.withLock { $0.successor } }
    /// The process a pending handover went to.
    var pendingPeer: Int32? { inner.withLock { $0.pendingPeer } }
    /// The successor SIGUSR2 started (`Instance+Upgrade.swift`), until it is reaped.
    var successorProcess: Int32? {
        get { inner.withLock { $0.successorProcess } }
        set { inner.withLock { $0.successorProcess = newValue } }
    }
    /// In a process taking over: the process that handed its listeners over.
    var predecessor: Int32? {
        get { inner.withLock { $0.predecessor } }
        set { inner.withLock { $0.predecessor = newValue } }
    }

    func begin(peer: Int32) { inner.withLock { $0.pendingPeer = peer } }

    /// Ends a pending takeover without a commit; returns whether one was pending.
    @discardableResult
    func end() -> Bool {
        inner.withLock { inner in
            defer { inner.pendingPeer = nil }
            return inner.pendingPeer != nil
        }
    }

    /// Turns the pending takeover into a committed one; nil when none is pending.
    func commit() -> Int32? {
        let peer = inner.withLock { inner -> Int32? in
            guard let peer = inner.pendingPeer else { return nil }
            inner.pendingPeer = nil
            inner.successor = peer
            return peer
        }
        if peer != nil { committedFlag.store(true, ordering: .releasing) }
        return peer
    }
}

/// The admin socket's takeover commands, carried out by the instance (admin thread).
struct TakeoverHandler: AdminTakeoverHandler {
    let instance: Instance

    func sendHandover(over connection: Int32, adminSocket: Int32, path: String) -> AdminTakeoverSend {
        instance.sendHandover(over: connection, adminSocket: adminSocket, path: path)
    }

    func commit(peer: Int32) -> AdminReply {
        instance.commitHandover(peer: peer)
    }

    func abandon(peer: Int32) {
        instance.abandonHandover(peer: peer)
    }
}

// MARK: - The running process

extension Instance {
    /// How long one side waits for the other at each step of a takeover.
    static let takeoverStepTimeout = Duration.seconds(10)

    /// `takeover`: describes every listener and the admin socket, sends them to `connection`
    /// with the admin changes in force, and marks the takeover pending.
    func sendHandover(over connection: Int32, adminSocket: Int32, path: String) -> AdminTakeoverSend {
        let peer = Self.peerProcess(connection)
        let prepared = reloadLock.withLock { _ -> Result<(HandoverMessage, [Int32]), AdminReply> in
            if takeover.committed {
                return .failure(.failure("this switchyard was already taken over by pid \(takeover.successor ?? 0)"))
            }
            if context.stopAccepting.load(ordering: .acquiring) {
                return .failure(.failure("this switchyard is shutting down; once it has exited, start the new one without --takeover"))
            }
            if let other = takeover.pendingPeer {
                return .failure(.failure("pid \(other) is already taking over"))
            }
            // Copies, so that nothing the workers own is touched (they close their own
            // descriptors; under reloadLock, with stopAccepting unset, none is being closed).
            let (configuration, entries, overrides) = state.withLock { ($0.configuration, $0.listeners, $0.overrides) }
            var made: [Int32] = []
            do throws(SystemCallError) {
                var copies: [ListenerEntry] = []
                for entry in entries {
                    var descriptors: [Int32] = []
                    for fd in entry.descriptors {
                        let copy = try WorkerDescriptors.duplicate(fd)
                        made.append(copy)
                        descriptors.append(copy)
                    }
                    // The message names the bound address as an IP literal (a hostname as
                    // configured is what `configured` reports).
                    let bound = entry.endpoint.address.map { Endpoint(address: $0, port: entry.endpoint.port) } ?? entry.endpoint
                    copies.append(ListenerEntry(id: entry.id, service: entry.service, endpoint: bound,
                                                registry: entry.registry, descriptors: descriptors))
                }
                let admin = try WorkerDescriptors.duplicate(adminSocket)
                made.append(admin)
                let byID = Dictionary(entries.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
                let described = HandoverChannel.describe(
                    copies, configured: { Self.configuredEndpoint(byID[$0.id]!, in: configuration) },
                    adminSocket: (admin, path), overrides: overrides)
                takeover.begin(peer: peer)
                return .success(described)
            } catch {
                for fd in made { closeDescriptor(fd) }
                return .failure(.failure("cannot hand over: \(error)"))
            }
        }
        let message: HandoverMessage
        let descriptors: [Int32]
        switch prepared {
        case let .failure(reply):
            logger.warning("takeover by pid \(peer) refused: \(reply.error ?? "")")
            return .refused(reply)
        case let .success(value):
            (message, descriptors) = value
        }
        defer { for fd in descriptors { closeDescriptor(fd) } }
        do {
            try HandoverChannel.send(message, descriptors: descriptors, over: connection, timeout: Self.takeoverStepTimeout)
        } catch {
            reloadLock.withLock { _ in _ = takeover.end() }
            logger.error("takeover by pid \(peer) failed while sending the listeners: \(error.message); still serving")
            return .failed
        }
        logger.notice("takeover: handed \(message.listeners.count) listener(s) (\(descriptors.count - 1) socket(s)) and the admin socket to pid \(peer); accepting until it commits")
        return .sent
    }

    /// `takeover commit`: stops accepting (the new process accepts on every socket) and
    /// drains; `serve()` returns on its next turn.
    func commitHandover(peer: Int32) -> AdminReply {
        let successor = reloadLock.withLock { _ -> Int32? in
            guard let successor = takeover.commit() else { return nil }
            context.stopAccepting.store(true, ordering: .releasing)
            return successor
        }
        guard let successor else { return .failure("no takeover is pending") }
        state.withLock { $0.waker }?.wake()
        // Scrapes go to the new process, which listens next to this one (SO_REUSEPORT).
        metricsServer.withLock { server -> MetricsServer? in
            defer { server = nil }
            return server
        }?.stop()
        // The read-only socket is not handed over: the new process makes its own at the path.
        readOnlyAdmin.withLock { server -> AdminServer? in
            defer { server = nil }
            return server
        }?.stopLeavingPath()
        let open = context.openConnections.load(ordering: .relaxed)
        let grace = state.withLock { $0.configuration.global.shutdownGrace }.shortDescription
        logger.notice("taken over by pid \(successor): no longer accepting; \(open) connection(s) open, grace \(grace)")
        return .success(["pid \(getpid()) stopped accepting; \(open) open connection(s) finish within \(grace)"])
    }

    func abandonHandover(peer: Int32) {
        let pending = reloadLock.withLock { _ in takeover.end() }
        if pending {
            logger.warning("takeover by pid \(Self.peerProcess(peer)) abandoned before its commit; still serving, nothing changed")
        }
    }

    /// The process at the other end of a UNIX socket (SO_PEERCRED), 0 when unknown.
    static func peerProcess(_ fd: Int32) -> Int32 {
        UnixSocket.peerCredentials(fd)?.processID ?? 0
    }

    /// The listen address behind `entry` as the configuration wrote it (a port 0 was bound to
    /// another), for the handover message.
    static func configuredEndpoint(_ entry: ListenerEntry, in configuration: Configuration) -> Endpoint {
        let text = configured(entry, in: configuration)
        return (try? Endpoint(parsing: text, allowPortZero: true)) ?? entry.endpoint
    }
}

// MARK: - The new process

/// The new process's side of one takeover: the connection to the running process, what it
/// handed over, and which descriptors are still this object's to close.
///
/// Thread ownership: the main thread of `Instance.run`.
final class TakeoverSession {
    let path: String
    let message: HandoverMessage
    private var connection: Int32
    private var descriptors: [Int32?]
    /// Positions of handed-over sockets no listener took: closed after the commit.
    var closeAfterCommit: [Int] = []
    /// Listeners of the new configuration that took handed-over sockets, and that were bound fresh.
    var keptListeners = 0
    var boundListeners = 0

    private init(path: String, connection: Int32, message: HandoverMessage, descriptors: [Int32]) {
        self.path = path
        self.connection = connection
        self.message = message
        self.descriptors = descriptors
    }

    deinit { close() }

    /// The descriptor at `position`, which the caller now owns.
    func take(_ position: Int) -> Int32 {
        let fd = descriptors[position]!
        descriptors[position] = nil
        return fd
    }

    /// Closes the connection and every descriptor not taken. Safe to call twice.
    func close() {
        for case let fd? in descriptors { closeDescriptor(fd) }
        descriptors = descriptors.map { _ in nil }
        if connection >= 0 { closeDescriptor(connection) }
        connection = -1
    }

    /// Connects to the admin socket at `path`, asks for the handover and receives it.
    static func open(path: String) throws(HandoverError) -> TakeoverSession {
        let address: sockaddr_un
        let fd: Int32
        do {
            address = try UnixSocket.address(path)
            fd = try UnixSocket.make(nonBlocking: false)
        } catch {
            throw HandoverError("\(error)")
        }
        var handedOver = false
        defer { if !handedOver { closeDescriptor(fd) } }
        do throws(SystemCallError) {
            try systemCall("connect \(path)") { UnixSocket.withAddress(address) { connect(fd, $0, $1) } }
        } catch {
            throw HandoverError("cannot reach the running switchyard: \(error) (is it serving this --admin-socket?)")
        }
        // Its state lines would become this process's: only a server of this user or root.
        do {
            try UnixSocket.checkServer(fd, path: path)
        } catch {
            throw HandoverError(error.message)
        }
        do {
            try sendLine("takeover", over: fd)
        } catch {
            // Whatever answers there may have spoken and hung up first: say what it said.
            if let answer = try? readReply(fd, untilClosed: true).0, !answer.isEmpty {
                throw notSwitchyard(path, answer)
            }
            throw error
        }
        // A frame starts with "SWYF"; anything else is an admin reply, which says why not.
        try wait(fd, for: POLLIN, doing: "waiting for the handover")
        var first = [UInt8](repeating: 0, count: 4)
        let peeked = first.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_PEEK)) }
        if peeked <= 0 {
            throw HandoverError("the running switchyard closed the connection instead of handing over")
        }
        if first[0..<peeked] != DescriptorFrame.magic[0..<peeked] {
            let status = (try? readReply(fd, untilClosed: true).0) ?? ""
            if status.hasPrefix("ERROR: ") {
                throw HandoverError("the running switchyard refused: \(status.dropFirst(7))")
            }
            throw notSwitchyard(path, status)
        }
        let (message, received) = try HandoverChannel.receive(over: fd, timeout: Instance.takeoverStepTimeout)
        guard message.adminSocket != nil else {
            for descriptor in received { closeDescriptor(descriptor) }
            throw HandoverError("the running switchyard did not hand over its admin socket")
        }
        handedOver = true
        return TakeoverSession(path: path, connection: fd, message: message, descriptors: received)
    }

    private static func notSwitchyard(_ path: String, _ answer: String) -> HandoverError {
        let shown = String(answer.prefix(80).unicodeScalars.map { $0.value >= 0x20 && $0.value < 0x7F ? Character($0) : "?" })
        return HandoverError("\(path) is not the admin socket of a switchyard that can hand over: it answered '\(shown)'")
    }

    /// `takeover commit`: returns the reply's body once the running process stopped accepting.
    func commit() throws(HandoverError) -> [String] {
        try Self.sendLine("takeover commit", over: connection)
        let (status, body) = try Self.readReply(connection)
        guard status == "OK" else {
            let reason = status.hasPrefix("ERROR: ") ? String(status.dropFirst(7)) : status
            throw HandoverError("the running switchyard refused the commit: \(reason)")
        }
        return body
    }

    private static func sendLine(_ line: String, over fd: Int32) throws(HandoverError) {
        let bytes = Array((line + "\n").utf8)
        var sent = 0
        while sent < bytes.count {
            let result = bytes.withUnsafeBytes { send(fd, $0.baseAddress! + sent, $0.count - sent, Int32(MSG_NOSIGNAL | MSG_DONTWAIT)) }
            if result >= 0 {
                sent += result
                continue
            }
            let code = swy_errno()
            if code == EINTR { continue }
            guard code == EAGAIN else {
                throw HandoverError("sending '\(line)': \(SystemCallError(call: "send", errno: code))")
            }
            try wait(fd, for: POLLOUT, doing: "sending '\(line)'")
        }
    }

    /// One admin reply: the status line and the body, up to the empty line (at most 64 KiB).
    /// With `untilClosed`, what arrived before the peer closed counts as the reply.
    private static func readReply(_ fd: Int32, untilClosed: Bool = false) throws(HandoverError) -> (String, [String]) {
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        func lines(_ end: Int) -> (String, [String]) {
            let lines = String(decoding: bytes[..<end], as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
            return (lines[0], Array(lines.dropFirst()))
        }
        while true {
            if let end = (bytes.indices.dropFirst()).first(where: { bytes[$0] == 0x0A && bytes[$0 - 1] == 0x0A }) {
                return lines(end - 1)
            }
            guard bytes.count < 1 << 16 else { throw HandoverError("the running switchyard's reply is longer than 64 KiB") }
            try wait(fd, for: POLLIN, doing: "waiting for the reply")
            let count = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
            if count == 0 {
                if untilClosed { return lines(bytes.count) }
                throw HandoverError("the running switchyard closed the connection before replying")
            }
            if count < 0 {
                let code = swy_errno()
                if code == EINTR || code == EAGAIN { continue }
                // A peer that hung up with our request unread resets instead of ending.
                if untilClosed && code == ECONNRESET { return lines(bytes.count) }
                throw HandoverError("reading the reply: \(SystemCallError(call: "recv", errno: code))")
            }
            bytes += chunk[0..<count]
        }
    }

    /// Waits (bounded by `Instance.takeoverStepTimeout`) until `fd` is ready for `events`.
    private static func wait(_ fd: Int32, for events: Int32, doing what: String) throws(HandoverError) {
        let deadline = ContinuousClock.now + Instance.takeoverStepTimeout
        while true {
            let left = deadline - .now
            guard left > .zero else { throw HandoverError("\(what): no answer within \(Instance.takeoverStepTimeout.shortDescription)") }
            var entry = pollfd(fd: fd, events: Int16(events), revents: 0)
            let ready = poll(&entry, 1, Int32(clamping: left.nanosecondsClamped / 1_000_000 + 1))
            if ready > 0 { return }
            if ready < 0 && swy_errno() != EINTR {
                throw HandoverError("\(what): \(SystemCallError(call: "poll", errno: swy_errno()))")
            }
        }
    }
}

extension Instance {
    /// Starts everything, serves until SIGTERM or SIGINT (or until a new process took over),
    /// then shuts down gracefully. Throws a one-line message when the instance cannot start
    /// (nothing is left running then).
    ///
    /// With `takeover`, the listening sockets and admin changes come from the process serving
    /// the admin socket, which stops accepting once this one accepts on all of them; a failure
    /// before that leaves it as it was, and the message starts `takeover failed:`.
    public func run(takeover takingOver: Bool = false) throws(ConfigError) {
        do {
            try runUntilStopped(takeover: takingOver)
        } catch {
            guard takingOver else { throw error }
            let running = takeover.predecessor.map { "; pid \($0) carries on" } ?? ""
            throw ConfigError("takeover failed: \(error.message)\(running)")
        }
    }

    /// Connects to the admin socket this configuration names (the running process's) and
    /// receives the handover. Throws `takeover failed: ...`.
    func receiveHandover(_ global: GlobalSettings) throws(ConfigError) -> TakeoverSession {
        guard global.adminSocketEnabled else {
            throw ConfigError("--takeover reaches the running switchyard through its admin socket; it cannot be used with the admin socket off")
        }
        let path: String
        if let given = global.adminSocket {
            path = given
        } else {
            do {
                path = try AdminSocketPath.current()
            } catch {
                throw ConfigError(error.message)
            }
        }
        let session: TakeoverSession
        do {
            session = try TakeoverSession.open(path: path)
        } catch {
            throw ConfigError(error.message)
        }
        let message = session.message
        takeover.predecessor = Int32(message.processID)
        if let handedPath = message.adminSocket?.path, handedPath != path {
            logger.notice("takeover: pid \(message.processID) calls its admin socket \(handedPath); serving it as \(path)")
        }
        logger.notice("takeover: received \(message.listeners.count) listener(s) and the admin socket from pid \(message.processID)")
        return session
    }

    /// The admin changes the running process had in force replace the state file's (which it
    /// kept too); the file, when configured, is written with them.
    func adoptHandedOverState(_ session: TakeoverSession, _ global: GlobalSettings) -> RuntimeOverrides {
        let overrides = session.message.overrides
        if let path = global.stateFile {
            do {
                try writeFileAtomically(path, contents: overrides.fileText)
            } catch {
                logger.error("cannot write the state file: \(error)")
            }
        }
        return overrides
    }

    /// An admin server on the handed-over socket; it starts after the commit.
    func adoptAdminServer(_ session: TakeoverSession) throws(ConfigError) -> AdminServer {
        let fd = session.take(session.message.adminSocket!.descriptor)
        do {
            return try AdminServer(adopting: fd, socketPath: session.path, controller: adminController(), takeover: TakeoverHandler(instance: self))
        } catch {
            closeDescriptor(fd)
            throw ConfigError("\(error)")
        }
    }

    /// One `ListenerEntry` per configured listener (or more, when more sockets than workers
    /// were passed): handed-over sockets in a takeover, else systemd's activated sockets, and
    /// sockets bound here for the rest. Throws a message naming the listener; entries made so
    /// far are closed then.
    func makeListeners(_ configuration: Configuration, services: [String: ServiceRuntime],
                       activated: [ActivatedListener], handover: TakeoverSession?) throws(ConfigError) -> [ListenerEntry] {
        var toBind = configuration.listeners.map { listener in
            ActivationMatch.ConfiguredListener(service: listener.service, endpoint: (try? resolve(listener.endpoint)) ?? listener.endpoint)
        }
        var entries: [ListenerEntry] = []
        do throws(ConfigError) {
            if let handover {
                if !activated.isEmpty {
                    logger.warning("closing the \(activated.count) socket(s) systemd passed: in a takeover the listeners come from the running process")
                    for socket in activated { closeDescriptor(socket.descriptor) }
                }
                let match = HandoverMatch(handed: handover.message.listeners, listeners: toBind)
                for kept in match.kept {
                    let received = kept.handed.descriptors.map { handover.take($0) }
                    entries += try adopt(received, bound: kept.handed.bound, as: kept.listener.endpoint,
                                         service: services[kept.listener.service]!, canBindFresh: true)
                }
                handover.closeAfterCommit = match.toClose.flatMap(\.descriptors)
                handover.keptListeners = match.kept.count
                handover.boundListeners = match.toBind.count
                for line in match.summary { logger.notice("takeover: \(line)") }
                toBind = match.toBind
            } else if !activated.isEmpty {
                let match = ActivationMatch(sockets: activated, listeners: toBind)
                let problems = match.problems()
                guard problems.isEmpty else { throw ConfigError(problems.joined(separator: "; ")) }
                for warning in match.sharingWarnings(workers: context.workerCount) { logger.warning("\(warning)") }
                for assignment in match.assignments {
                    entries += try adopt(assignment.sockets.map(\.descriptor), bound: assignment.sockets[0].bound, as: assignment.listener.endpoint,
                                         service: services[assignment.listener.service]!, canBindFresh: false)
                }
                logger.notice("socket activation: \(activated.count) socket(s) from systemd for \(match.assignments.count) listener(s)")
                toBind = []
            }
            for listener in toBind {
                entries.append(try bindListener(listener.endpoint, service: services[listener.service]!))
            }
            return entries
        } catch {
            for entry in entries { Self.closeDescriptors(entry) }
            throw error
        }
    }

    /// Listener entries over sockets this process did not bind, one descriptor per worker
    /// (`WorkerDescriptorPlan`): more workers than sockets get sockets of their own bound next
    /// to them when `canBindFresh` and the kernel allows it (same user, `SO_REUSEPORT`), else
    /// duplicates. Each entry is known by `configured` (the host as written, as for a listener
    /// bound here, so that a reload finds it) with the address and port the sockets have.
    private func adopt(_ received: [Int32], bound: Endpoint, as configured: Endpoint, service: ServiceRuntime,
                       canBindFresh: Bool) throws(ConfigError) -> [ListenerEntry] {
        var endpoint = configured
        endpoint.address = bound.address
        endpoint.port = bound.port
        let workers = context.workerCount
        var sets: [[Int32]]
        do {
            sets = try WorkerDescriptors.make(
                WorkerDescriptorPlan.entries(received: received.count, workers: workers, canBindFresh: canBindFresh),
                received: received, address: bound)
        } catch where canBindFresh {
            logger.notice("\(bound): cannot bind sockets next to the \(received.count) received (\(error)); \(workers) workers share them")
            do {
                sets = try WorkerDescriptors.make(
                    WorkerDescriptorPlan.entries(received: received.count, workers: workers, canBindFresh: false),
                    received: received, address: bound)
            } catch {
                throw ConfigError("service \(service.name): cannot share the sockets of \(bound) between workers: \(error)")
            }
        } catch {
            throw ConfigError("service \(service.name): cannot share the sockets of \(bound) between workers: \(error)")
        }
        return sets.map { descriptors in
            let id = state.withLock { state in
                defer { state.nextListenerID += 1 }
                return state.nextListenerID
            }
            return ListenerEntry(id: id, service: service.name, endpoint: endpoint, registry: service.registry, descriptors: descriptors)
        }
    }

    /// Once every worker accepts on every listener: `takeover commit`. On success the handed
    /// sockets no listener took are closed and the admin socket's path becomes this process's.
    /// On failure the running process carries on; connections accepted here meanwhile finish
    /// (within shutdown-grace) before this throws.
    func commitTakeover(_ session: TakeoverSession, server: WorkerGroup, admin: AdminServer?) throws(ConfigError) {
        let old = session.message.processID
        do throws(HandoverError) {
            guard waitUntilEveryWorkerAccepts() else {
                throw HandoverError("the workers did not all accept on the listeners within 5s")
            }
            let body = try session.commit()
            admin?.claimPath()
            let dropped = session.closeAfterCommit
            for position in dropped { closeDescriptor(session.take(position)) }
            session.close()
            logger.notice("took over from pid \(old) (\(body.joined(separator: "; "))): \(session.keptListeners) listener(s) on handed-over sockets, \(session.boundListeners) bound fresh, \(dropped.count) handed-over socket(s) no longer configured closed")
        } catch {
            session.close()
            let open = context.openConnections.load(ordering: .relaxed)
            logger.error("takeover failed: \(error.message); pid \(old) carries on; \(open) connection(s) accepted here meanwhile may finish first")
            admin?.stop()
            server.stop(grace: state.withLock { $0.configuration.global.shutdownGrace })
            throw ConfigError(error.message)
        }
    }

    /// Waits (at most 5 s) until every worker has adopted the listener table in force, that
    /// is, accepts on every listener.
    func waitUntilEveryWorkerAccepts() -> Bool {
        let version = context.listeners.current.version
        let deadline = ContinuousClock.now + .seconds(5)
        while !context.listeners.adoptedByAll(version) {
            if ContinuousClock.now >= deadline { return false }
            usleep(1000)
        }
        return true
    }

    /// `values` without repeats, in order.
    static func unique(_ values: [String]) -> [String] {
        var seen = Set<String>()
        return values.filter { seen.insert($0).inserted }
    }
}
