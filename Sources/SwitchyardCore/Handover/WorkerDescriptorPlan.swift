/// Where each worker's socket for one listen address comes from when the sockets were not
/// bound by this process: handed over by the previous process (one `SO_REUSEPORT` socket per
/// worker it had) or passed by systemd (one socket).
///
/// Workers hold one descriptor per listener entry and each closes its own, so a socket two
/// workers accept on is given to the second as a duplicate (dup(2): a new descriptor for the
/// same socket). Several rings' multishot accepts on one socket each take different
/// connections (io_uring arms an exclusive poll for accept), so sharing is correct; the
/// kernel then picks the worker by wake-up order instead of by `SO_REUSEPORT`'s hash.
public enum WorkerDescriptorSource: Equatable, Sendable {
    /// The received socket at this position.
    case received(Int)
    /// A duplicate of the received socket at this position.
    case duplicate(Int)
    /// A new `SO_REUSEPORT` socket bound to the same address (it joins the same group).
    case fresh
}

public enum WorkerDescriptorPlan {
    /// Listener entries for `received` sockets of one address and `workers` workers: one array
    /// of `workers` sources per entry, worker `i` taking element `i`. Every received socket is
    /// accepted on by at least one worker, since connections the kernel queues on a socket
    /// nobody accepts on are lost when it closes.
    ///
    /// - As many sockets as workers: one entry, worker `i` takes socket `i`.
    /// - Fewer: one entry; the other workers get `fresh` sockets when `canBindFresh` (the
    ///   sockets have `SO_REUSEPORT` and this process's user may join their group), else
    ///   duplicates, round robin.
    /// - More: one entry per `workers` sockets; the last is completed with duplicates of its own.
    /// - `received` 0: no entry.
    public static func entries(received: Int, workers: Int, canBindFresh: Bool) -> [[WorkerDescriptorSource]] {
        guard received > 0, workers > 0 else { return [] }
        if received <= workers {
            return [(0..<workers).map { worker in
                if worker < received { return .received(worker) }
                return canBindFresh ? .fresh : .duplicate(worker % received)
            }]
        }
        return stride(from: 0, to: received, by: workers).map { start in
            let count = min(workers, received - start)
            return (0..<workers).map { worker in
                worker < count ? .received(start + worker) : .duplicate(start + worker % count)
            }
        }
    }
}
