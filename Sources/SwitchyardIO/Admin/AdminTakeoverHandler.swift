import SwitchyardCore

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
