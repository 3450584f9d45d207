import CSwitchyard
import Glibc
import Logging
import Synchronization
import SwitchyardCore


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
                var described = HandoverChannel.describe(
                    copies, configured: { Self.configuredEndpoint(byID[$0.id]!, in: configuration) },
                    adminSocket: (admin, path), overrides: overrides)
                described.0.instanceDrained = isDrained
                described.0.ticketKeys = ticketKeys.keys
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
        stopControlListeners()
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
