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
        Descriptor.setCloseOnExecAndNonBlocking(listening)
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
    func relinquishListener(to successor: Int32) {
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
            var loop = AdminServeLoop(server: self)
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
        if ownsPath.load(ordering: .acquiring) { _ = systemCallResult { Int(unlink(socketPath)) } }
    }

    var isStopping: Bool { control.isStopping }
    var wakeupDescriptor: Int32 { control.wakeup.fd }
    func drainWakeup() { control.wakeup.drain() }
}
