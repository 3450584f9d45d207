import CSwitchyard
import Glibc
import Logging
import Synchronization
import SwitchyardCore

/// Serves the admin protocol (README, "Admin socket") on a UNIX stream socket, on one thread of its
/// own with a poll(2) loop: many clients at once, non-blocking, and a `wait` command is kept in
/// the loop and checked every 20 ms instead of blocking anyone.
///
/// Threads: `init`, `start` and `stop` on the owner's thread; `ServeLoop` only on the admin thread.
public final class AdminServer: Sendable {
    /// Longest command line accepted, in bytes; a longer one gets an error and the client is dropped.
    public static let maximumLineLength = 4096
    /// Clients served at once; more wait in the listen backlog.
    public static let maximumClients = 128
    /// How often pending `wait` commands are checked.
    static let waitPollInterval: Int32 = 20

    public let socketPath: String
    /// The socket file's mode and group, and whether it serves only `show` and `help`.
    public let access: AdminSocketAccess
    /// The effective uid of this process: peers of this uid or root may change things.
    let serverUserID = geteuid()
    let controller: AdminController
    let logger: Logger
    let listenFD: Int32
    /// Carries out `takeover` and `takeover commit`; nil refuses them.
    let takeover: (any AdminTakeoverHandler)?
    private let control: LoopControl
    private let closed = Atomic<Bool>(false)
    /// Whether closing removes the socket file: not for a socket adopted in a takeover until
    /// the takeover is committed, nor once this process handed the socket over.
    private let ownsPath: Atomic<Bool>

    /// Creates the socket at `socketPath` (with `access.mode` and `access.groupID`, 0600 and the
    /// process's group by default, and never wider, not even for a moment) and listens; serving
    /// starts with `start()`.
    ///
    /// A stale socket file (nothing accepts on it: connect fails with ECONNREFUSED) is replaced.
    /// Throws when a live process accepts on it, when the path exists and is not a socket, or
    /// when a system call fails (the message names it, the path and the errno text).
    public init(socketPath: String, controller: AdminController, takeover: (any AdminTakeoverHandler)? = nil,
                access: AdminSocketAccess = AdminSocketAccess(), logger: Logger = Logger(label: "switchyard.admin")) throws(AdminSocketError) {
        self.socketPath = socketPath
        self.access = access
        self.controller = controller
        self.takeover = takeover
        self.logger = logger
        ownsPath = Atomic(true)
        let address = try UnixSocket.address(socketPath)
        try Self.removeStaleSocket(at: socketPath, address: address)
        do {
            control = try LoopControl()
        } catch {
            throw AdminSocketError(error.description)
        }
        let fd: Int32
        do {
            fd = try UnixSocket.make(nonBlocking: true)
        } catch {
            throw AdminSocketError(error.description)
        }
        do {
            try Self.bindPrivately(fd, at: socketPath, address: address, access: access)
        } catch {
            closeDescriptor(fd)
            throw error
        }
        listenFD = fd
    }

    /// Serves on `listening`, the admin socket a running process handed over in a takeover
    /// (already bound to `socketPath` and listening, shared with that process until it
    /// commits). The path is not removed on `stop()` until `claimPath()`: a takeover that
    /// fails leaves the running process's socket as it was.
    public init(adopting listening: Int32, socketPath: String, controller: AdminController,
                takeover: (any AdminTakeoverHandler)? = nil, logger: Logger = Logger(label: "switchyard.admin")) throws(AdminSocketError) {
        self.socketPath = socketPath
        access = AdminSocketAccess()
        self.controller = controller
        self.takeover = takeover
        self.logger = logger
        ownsPath = Atomic(false)
        do {
            control = try LoopControl()
        } catch {
            throw AdminSocketError(error.description)
        }
        _ = fcntl(listening, F_SETFD, fcntl(listening, F_GETFD) | FD_CLOEXEC)
        _ = fcntl(listening, F_SETFL, fcntl(listening, F_GETFL) | O_NONBLOCK)
        listenFD = listening
    }

    /// The takeover committed: this process now owns the socket file and removes it on stop.
    public func claimPath() {
        ownsPath.store(true, ordering: .releasing)
    }

    /// Whether this process handed its admin socket to a new process (`takeover commit`).
    public var handedOver: Bool { relinquished.load(ordering: .acquiring) }
    private let relinquished = Atomic<Bool>(false)
    /// The process that took over (`takeover commit`), 0 before; from then on it owns the
    /// state file and the backends, so this one refuses every command but `show` and `help`.
    var successor: Int32 { successorID.load(ordering: .acquiring) }
    private let successorID = Atomic<Int32>(0)

    /// Stops accepting on the admin socket and closes this process's descriptor of it, leaving
    /// the file, which now belongs to the process that took over. Clients already connected
    /// are still served. Admin thread only (the loop polls `listenFD`).
    fileprivate func relinquishListener(to successor: Int32) {
        successorID.store(successor, ordering: .releasing)
        ownsPath.store(false, ordering: .releasing)
        relinquished.store(true, ordering: .releasing)
        guard !closed.exchange(true, ordering: .acquiringAndReleasing) else { return }
        closeDescriptor(listenFD)
    }

    /// Builds the controller from its parts; see `AdminController`.
    public convenience init(
        socketPath: String, registry: BackendRegistry,
        processStats: @escaping @Sendable () -> ProcessStats,
        lastCheckText: @escaping @Sendable (Int) -> String? = { _ in nil },
        logger: Logger = Logger(label: "switchyard.admin")
    ) throws(AdminSocketError) {
        try self.init(
            socketPath: socketPath,
            controller: AdminController(registry: registry, processStats: processStats, lastCheckText: lastCheckText),
            logger: logger)
    }

    deinit {
        closeOnce()
    }

    /// Starts the admin thread. Call once.
    public func start() throws(SystemCallError) {
        try control.start(name: "swy-admin") { [self] in
            var loop = ServeLoop(server: self)
            loop.run()
        }
    }

    /// Ends the admin thread, closes every client and removes the socket file. Safe to call twice.
    public func stop() {
        control.stop()
        closeOnce()
    }

    /// Ends the admin thread and closes the socket, leaving the file for a process that took
    /// over and serves the same path (the read-only socket, which is not handed over: the new
    /// process replaces the file, no longer served, once this one stopped).
    public func stopLeavingPath() {
        ownsPath.store(false, ordering: .releasing)
        stop()
    }

    private func closeOnce() {
        guard !closed.exchange(true, ordering: .acquiringAndReleasing) else { return }
        closeDescriptor(listenFD)
        if ownsPath.load(ordering: .acquiring) { _ = unlink(socketPath) }
    }

    var isStopping: Bool { control.isStopping }
    var wakeupDescriptor: Int32 { control.wakeup.fd }
    func drainWakeup() { control.wakeup.drain() }

    /// Binds `fd` and listens so that `path` appears only as the finished socket: mode 0600, already
    /// accepting. bind(2) creates the file with the process umask (0755 under the usual 022), so
    /// binding at `path` and then chmod-ing it would leave a moment in which anyone could connect.
    /// Instead the socket is bound in a private directory (mkdtemp(3), mode 0700, next to `path`
    /// so that both are on one file system), tightened and set listening there, then linked into
    /// place with link(2), which fails with EEXIST rather than replace a socket another process
    /// put at `path` meanwhile (rename(2) would replace it). The private name and directory are
    /// removed on every path out.
    private static func bindPrivately(_ fd: Int32, at path: String, address: sockaddr_un, access: AdminSocketAccess) throws(AdminSocketError) {
        let directory: String
        if let slash = path.lastIndex(of: "/") {
            directory = slash == path.startIndex ? "/" : String(path[..<slash])
        } else {
            directory = "."
        }
        let prefix = directory == "/" ? "/.swy-" : "\(directory)/.swy-"
        // mkdtemp replaces the six X; the socket is then "s" inside.
        let limit = MemoryLayout.size(ofValue: address.sun_path) - 1
        guard prefix.utf8.count + 8 <= limit else {
            throw AdminSocketError("admin socket directory '\(directory)' is too long: at most \(limit - 8 - (prefix.utf8.count - directory.utf8.count)) bytes, to leave room for a private name while the socket is set up")
        }
        var template = Array((prefix + "XXXXXX").utf8CString)
        guard template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) != nil else {
            throw AdminSocketError(SystemCallError(call: "mkdtemp \(prefix)XXXXXX (for the admin socket \(path))", errno: Glibc.errno).description)
        }
        let privateDirectory = String(decoding: template.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let privatePath = privateDirectory + "/s"
        defer {
            _ = unlink(privatePath)
            _ = rmdir(privateDirectory)
        }
        let privateAddress = try UnixSocket.address(privatePath)  // fits: checked above
        do {
            try systemCall("bind \(privatePath)") { UnixSocket.withAddress(privateAddress) { bind(fd, $0, $1) } }
            // Only this user can reach the private directory, so this sets the group and mode
            // before the socket has a name anyone else could use.
            if let group = access.groupID {
                try systemCall("chown \(privatePath) to gid \(group)") { chown(privatePath, uid_t.max, group) }
            }
            try systemCall("chmod \(privatePath)") { chmod(privatePath, mode_t(access.mode)) }
            try systemCall("listen \(privatePath)") { listen(fd, 64) }
        } catch {
            throw AdminSocketError(error.description)
        }
        for attempt in 0..<2 {
            if link(privatePath, path) == 0 { return }
            let code = Glibc.errno
            guard code == EEXIST, attempt == 0 else {
                throw AdminSocketError(SystemCallError(call: "link \(privatePath) to \(path)", errno: code).description)
            }
            // Something was created at `path` since the stale check: try the check once more (it
            // throws for a live instance or a file that is not a socket).
            try removeStaleSocket(at: path, address: address)
        }
    }

    /// Removes a socket file nothing listens on; throws if something does or if it is not a socket.
    private static func removeStaleSocket(at path: String, address: sockaddr_un) throws(AdminSocketError) {
        var status = stat()
        guard lstat(path, &status) == 0 else {
            let code = Glibc.errno
            if code == ENOENT { return }
            throw AdminSocketError(SystemCallError(call: "stat \(path)", errno: code).description)
        }
        guard status.st_mode & S_IFMT == S_IFSOCK else {
            throw AdminSocketError("admin socket path \(path) exists and is not a socket; remove it or choose another --admin-socket")
        }
        let probe: Int32
        do {
            probe = try UnixSocket.make(nonBlocking: false)
        } catch {
            throw AdminSocketError(error.description)
        }
        defer { closeDescriptor(probe) }
        do {
            try systemCall("connect \(path)") { UnixSocket.withAddress(address) { connect(probe, $0, $1) } }
        } catch {
            guard error.errno == ECONNREFUSED else { throw AdminSocketError(error.description) }
            guard unlink(path) == 0 || Glibc.errno == ENOENT else {
                throw AdminSocketError(SystemCallError(call: "unlink stale socket \(path)", errno: Glibc.errno).description)
            }
            return
        }
        if let server = UnixSocket.peerCredentials(probe), !AdminAccess.trusts(peerUserID: server.userID, ownUserID: geteuid()) {
            throw AdminSocketError("the admin socket path \(path) is served by pid \(server.processID) of uid \(server.userID), another user; choose a path in a directory only this user can write to (--admin-socket)")
        }
        throw AdminSocketError("another switchyard is already serving the admin socket \(path); stop it or choose another --admin-socket")
    }
}

/// The admin thread's state. Confined to that thread.
private struct ServeLoop {
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
            let ready = Glibc.poll(&pollSet, nfds_t(pollSet.count), timeout)
            if ready < 0 {
                let code = Glibc.errno
                if code != EINTR { server.logger.error("admin poll: \(errnoText(code))") }
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
                server.logger.warning("takeover abandoned: no commit within \(ServeLoop.takeoverTimeout.shortDescription) of the handover")
                drop(pending.fd)
            }
            for fd in Array(clients.keys) where clients[fd]?.finished == true { drop(fd) }
        }
        for fd in Array(clients.keys) { drop(fd) }
    }

    private mutating func acceptClients() {
        while clients.count < AdminServer.maximumClients && !server.handedOver {
            let fd = swy_accept_nonblocking(server.listenFD)
            if fd < 0 {
                let code = Glibc.errno
                if code == EINTR || code == ECONNABORTED { continue }
                if [EMFILE, ENFILE, ENOBUFS, ENOMEM].contains(code) {
                    acceptPausedUntil = clock.now + ServeLoop.acceptBackoff
                    warnAboutAccept("admin accept: \(errnoText(code)); retrying in \(ServeLoop.acceptBackoff.shortDescription)")
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
        let count = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        if count < 0 {
            let code = Glibc.errno
            if code == EAGAIN || code == EINTR { return }
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
                pendingTakeover = (fd, clock.now + ServeLoop.takeoverTimeout)
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
        let sent = client.output.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        if sent < 0 {
            let code = Glibc.errno
            if code == EAGAIN || code == EINTR { return }
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

/// What the admin socket does with the internal takeover commands (`TakeoverStep`); the
/// instance provides it. Called on the admin thread, one step at a time.
public protocol AdminTakeoverHandler: Sendable {
    /// Sends the handover frame (listeners, `adminSocket` and the admin changes in force) on
    /// `connection`, the client that asked.
    func sendHandover(over connection: Int32, adminSocket: Int32, path: String) -> AdminTakeoverSend
    /// The process that received the handover on `peer` accepts on every listener: stop
    /// accepting and let open connections finish. On `OK` the admin server stops accepting on
    /// its socket too.
    func commit(peer: Int32) -> AdminReply
    /// `peer` closed (or timed out) without committing: nothing was handed over after all.
    func abandon(peer: Int32)
}

/// How sending a handover frame went.
public enum AdminTakeoverSend: Sendable {
    case sent
    /// Nothing was sent; `reply` says why and goes to the client as a normal reply.
    case refused(AdminReply)
    /// Sending failed part way; the connection is closed.
    case failed
}
