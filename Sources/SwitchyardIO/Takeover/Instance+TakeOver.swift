import CSwitchyard
import Glibc
import Logging
import Synchronization
import SwitchyardCore

// The new process's side of a takeover (the overview is in `TakeoverState.swift`).
extension Instance {
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

    /// Once every worker accepts on every listener: `takeover commit`. On success the handed
    /// sockets no listener took are closed and the admin socket's path becomes this process's.
    /// On failure the running process carries on; connections accepted here meanwhile finish
    /// (within shutdown-grace) before this throws.
    func commitTakeover(_ session: TakeoverSession, workers: WorkerGroup, admin: AdminServer?) throws(ConfigError) {
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
            workers.stop(grace: state.withLock { $0.configuration.global.shutdownGrace })
            throw ConfigError(error.message)
        }
    }
}
