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
