import CSwitchyard
import Glibc
import Logging
import Synchronization
import SwitchyardCore

/// The admin thread's state. Confined to that thread.
struct AdminServeLoop {
    private struct Client {
        let fd: Int32
        /// The peer's effective uid when it connected (SO_PEERCRED); nil when unknown, which
        /// is trusted with `show` and `help` only.
        let peerUserID: UInt32?
        var input: [UInt8] = []
        var output: [UInt8] = []
        var wait: AdminController.PendingWait?
        /// The client sent EOF: finish its last commands, then close.
        var inputClosed = false
        /// Close once `output` is written (after a fatal protocol error).
        var closeAfterOutput = false
        /// The handover frame went out on this connection (`takeover`); `takeover commit` is
        /// accepted here only.
        var receivedHandover = false

        var finished: Bool { output.isEmpty && wait == nil && (closeAfterOutput || inputClosed) }
    }

    let server: AdminServer
    private let clock = ContinuousClock()
    private var clients: [Int32: Client] = [:]
    /// The connection a handover frame went to, until it commits, closes or times out.
    private var pendingTakeover: (fd: Int32, deadline: ContinuousClock.Instant)?
    /// How long the process taking over may take from the handover to the commit.
    static let takeoverTimeout = Duration.seconds(60)
    /// Accepting pauses until then after accept(2) failed for want of descriptors or memory
    /// (EMFILE, ENFILE, ENOBUFS, ENOMEM): the connection stays in the backlog and the socket
    /// stays readable, so polling it at once would spin. The workers pause as long.
    private var acceptPausedUntil: ContinuousClock.Instant?
    static let acceptBackoff = Duration.milliseconds(100)
    /// When the last warning about a failed accept was logged (at most one a second).
    private var lastAcceptWarning: ContinuousClock.Instant?

    init(server: AdminServer) {
        self.server = server
    }

    mutating func run() {
        var pollSet: [pollfd] = []
        while !server.isStopping {
            pollSet.removeAll(keepingCapacity: true)
            pollSet.append(pollfd(fd: server.wakeupDescriptor, events: Int16(POLLIN), revents: 0))
            if let until = acceptPausedUntil, clock.now >= until { acceptPausedUntil = nil }
            let accepting = clients.count < AdminServer.maximumClients && acceptPausedUntil == nil
            // A handed-over socket is no longer ours to poll (poll(2) skips negative fds).
            pollSet.append(pollfd(fd: server.handedOver ? -1 : server.listenFD, events: Int16(accepting ? POLLIN : 0), revents: 0))
            for client in clients.values {
                var events: Int32 = 0
                if !client.inputClosed && !client.closeAfterOutput { events |= POLLIN }
                if !client.output.isEmpty { events |= POLLOUT }
                pollSet.append(pollfd(fd: client.fd, events: Int16(events), revents: 0))
            }
            let waiting = clients.values.contains { $0.wait != nil }
            var timeout: Int32 = waiting ? AdminServer.waitPollInterval : pendingTakeover != nil ? 1000 : -1
            if let until = acceptPausedUntil {
                let pause = Int32(clamping: (until - clock.now).nanosecondsClamped / 1_000_000 + 1)
                timeout = timeout < 0 ? pause : min(timeout, pause)
            }
            let ready = Descriptor.poll(&pollSet, timeout: timeout)
            if ready < 0 {
                if ready != -EINTR { server.logger.error("admin poll: \(errnoText(-ready))") }
                continue
            }
            if pollSet[0].revents != 0 { server.drainWakeup() }
            if pollSet[1].revents != 0 { acceptClients() }
            for entry in pollSet.dropFirst(2) where entry.revents != 0 {
                let revents = Int32(entry.revents)
                if revents & (POLLIN | POLLHUP | POLLERR) != 0 { readFrom(entry.fd) }
                if revents & POLLOUT != 0 { writeTo(entry.fd) }
            }
            if waiting { pollWaits() }
            if let pending = pendingTakeover, clock.now >= pending.deadline {
                server.logger.warning("takeover abandoned: no commit within \(AdminServeLoop.takeoverTimeout.shortDescription) of the handover")
                drop(pending.fd)
            }
            for fd in Array(clients.keys) where clients[fd]?.finished == true { drop(fd) }
        }
        for fd in Array(clients.keys) { drop(fd) }
    }

    private mutating func acceptClients() {
        while clients.count < AdminServer.maximumClients && !server.handedOver {
            let fd = Int32(systemCallResult { Int(swy_accept_nonblocking(server.listenFD)) })
            if fd < 0 {
                let code = -fd
                if code == ECONNABORTED { continue }
                if [EMFILE, ENFILE, ENOBUFS, ENOMEM].contains(code) {
                    acceptPausedUntil = clock.now + AdminServeLoop.acceptBackoff
                    warnAboutAccept("admin accept: \(errnoText(code)); retrying in \(AdminServeLoop.acceptBackoff.shortDescription)")
                } else if code != EAGAIN {
                    warnAboutAccept("admin accept: \(errnoText(code))")
                }
                return
            }
            clients[fd] = Client(fd: fd, peerUserID: UnixSocket.peerCredentials(fd)?.userID)
        }
    }

    /// Logs `message` as a warning, at most once a second.
    private mutating func warnAboutAccept(_ message: String) {
        let now = clock.now
        if let last = lastAcceptWarning, now - last < .seconds(1) { return }
        lastAcceptWarning = now
        server.logger.warning("\(message)")
    }

    private mutating func readFrom(_ fd: Int32) {
        guard var client = clients[fd] else { return }
        var chunk = [UInt8](repeating: 0, count: 4096)
        let count = chunk.withUnsafeMutableBytes { Socket.receive(fd, into: $0) }
        if count < 0 {
            if count == -Int(EAGAIN) { return }
            drop(fd)  // ECONNRESET and the like: nobody is left to answer.
            return
        }
        if count == 0 {
            client.inputClosed = true
        } else {
            client.input += chunk[0..<count]
        }
        clients[fd] = client
        processLines(fd)
        writeTo(fd)
    }

    /// Runs every complete line of the client's input in order; stops at a pending `wait`.
    private mutating func processLines(_ fd: Int32) {
        guard var client = clients[fd] else { return }
        defer { clients[fd] = client }
        while client.wait == nil && !client.closeAfterOutput {
            let line: ArraySlice<UInt8>
            if let newline = client.input.firstIndex(of: 0x0A) {
                line = client.input[..<newline]
                client.input.removeSubrange(...newline)
            } else if client.input.count > AdminServer.maximumLineLength {
                client.input.removeAll()
                reply(.failure("line too long: the limit is \(AdminServer.maximumLineLength) bytes; closing"), to: &client)
                client.closeAfterOutput = true
                return
            } else if client.inputClosed && !client.input.isEmpty {
                // A last command without its newline (`printf 'show stats' | nc -U`).
                line = client.input[...]
                client.input.removeAll()
            } else {
                return
            }
            guard line.count <= AdminServer.maximumLineLength else {
                reply(.failure("line too long: the limit is \(AdminServer.maximumLineLength) bytes; closing"), to: &client)
                client.closeAfterOutput = true
                return
            }
            // Invalid UTF-8 becomes U+FFFD, which the parser refuses as not printable ASCII.
            let text = String(decoding: line, as: UTF8.self)
            let command = try? AdminCommand(parsing: text)
            if let refusal = refusal(of: command, from: client) {
                reply(.failure(refusal), to: &client)
                continue
            }
            if let pending = pendingTakeover, pending.fd != fd, let command, command.changesHandedOverState {
                reply(.failure("a takeover is in progress (a new switchyard is starting on these listeners); try again once it has finished"), to: &client)
                continue
            }
            switch server.controller.handle(line: text, now: clock.now) {
            case let .reply(answer):
                reply(answer, to: &client)
            case let .wait(pending):
                client.wait = pending
            case let .takeover(step):
                takeover(step, fd: fd, client: &client)
            }
        }
    }

    /// Why `command` is not carried out for `client`, or nil when it may be: this socket is
    /// read-only, this process was taken over, or the peer is neither the server's user nor
    /// root (`AdminAccess`). `show` and `help` are answered to anyone who can connect; a line
    /// that does not parse goes on to get its error.
    private func refusal(of command: AdminCommand?, from client: Client) -> String? {
        guard let command, !command.isReadOnly else { return nil }
        if server.access.readOnly { return AdminAccess.readOnlyRefusal }
        let successor = server.successor
        if successor != 0 { return AdminAccess.handedOverRefusal(successor: successor) }
        guard let peer = client.peerUserID else {
            return "the peer's credentials are unknown (SO_PEERCRED failed); only show and help are answered"
        }
        if !AdminAccess.trusts(peerUserID: peer, ownUserID: server.serverUserID) {
            return AdminAccess.untrustedRefusal(peerUserID: peer, serverUserID: server.serverUserID)
        }
        return nil
    }

    private func reply(_ answer: AdminReply, to client: inout Client) {
        client.output += Array(answer.wireText.utf8)
    }

    /// `takeover`: sends the handover frame in place of a reply; `takeover commit`: hands the
    /// listeners and this socket over. See `TakeoverStep`.
    private mutating func takeover(_ step: TakeoverStep, fd: Int32, client: inout Client) {
        guard let handler = server.takeover else {
            reply(.failure("this switchyard cannot hand its listeners over"), to: &client)
            return
        }
        switch step {
        case .begin:
            guard pendingTakeover == nil else {
                reply(.failure("another takeover is in progress"), to: &client)
                return
            }
            guard client.output.isEmpty else {
                reply(.failure("send takeover first on a connection of its own"), to: &client)
                return
            }
            switch handler.sendHandover(over: fd, adminSocket: server.listenFD, path: server.socketPath) {
            case .sent:
                client.receivedHandover = true
                pendingTakeover = (fd, clock.now + AdminServeLoop.takeoverTimeout)
            case let .refused(answer):
                reply(answer, to: &client)
            case .failed:
                // Part of a frame may have gone out: nothing more can be said on this connection.
                client.input.removeAll()
                client.closeAfterOutput = true
            }
        case .commit:
            guard client.receivedHandover, pendingTakeover?.fd == fd else {
                reply(.failure("takeover commit is accepted only on the connection that received the handover"), to: &client)
                return
            }
            client.receivedHandover = false
            pendingTakeover = nil
            let answer = handler.commit(peer: fd)
            if answer.ok { server.relinquishListener(to: UnixSocket.peerCredentials(fd)?.processID ?? -1) }
            reply(answer, to: &client)
        }
    }

    private mutating func pollWaits() {
        let now = clock.now
        for fd in Array(clients.keys) {
            guard let pending = clients[fd]?.wait,
                  let answer = server.controller.poll(pending, now: now) else { continue }
            clients[fd]?.wait = nil
            reply(answer, to: &clients[fd]!)
            processLines(fd)
            writeTo(fd)
        }
    }

    private mutating func writeTo(_ fd: Int32) {
        guard var client = clients[fd], !client.output.isEmpty else { return }
        let sent = client.output.withUnsafeBytes { Socket.send(fd, $0) }
        if sent < 0 {
            if sent == -Int(EAGAIN) { return }
            drop(fd)  // EPIPE: the client left; its reply has nowhere to go.
            return
        }
        client.output.removeFirst(sent)
        clients[fd] = client
    }

    private mutating func drop(_ fd: Int32) {
        if pendingTakeover?.fd == fd {
            pendingTakeover = nil
            server.takeover?.abandon(peer: fd)
        }
        guard clients.removeValue(forKey: fd) != nil else { return }
        closeDescriptor(fd)
    }
}
