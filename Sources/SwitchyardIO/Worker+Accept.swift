import CSwitchyard
import Glibc
import SwitchyardCore

// Accepting clients on this worker's listeners.
extension Worker {
    func armAccept(_ listener: Int) {
        acceptArmed[listener] = true
        ring.submit(.acceptMultishot(listener: listeners[listener]),
                    userData: UserData(slot: UInt32(listener), generation: 0, kind: .accept).packed)
    }

    func handleAccept(listener: Int, result: Int32, flags: UInt32) {
        if flags & IORING_CQE_F_MORE == 0 {
            // The multishot accept ended: re-arm it, after a pause if descriptors ran out.
            acceptArmed[listener] = false
            if stopping {
                closeListener(listener)
            } else if [EMFILE, ENFILE, ENOBUFS, ENOMEM].contains(-result) {
                if !acceptBackoffArmed {
                    acceptBackoffArmed = true
                    ring.submit(.timeout(backoffInterval), userData: UserData(slot: 0, generation: 0, kind: .acceptBackoff).packed)
                }
            } else {
                armAccept(listener)
            }
        }
        guard result >= 0 else {
            if result != -ECANCELED && result != -EINVAL {
                warnOccasionally("accept", "accept failed: \(Errno.describeResult(result)); retrying in 100ms")
            }
            return
        }
        let clientFD = result
        if stopping {
            close(clientFD)
            return
        }
        let open = context.openConnections.add(1, ordering: .relaxed).newValue
        if open > configuration.maxConnections {
            context.openConnections.subtract(1, ordering: .relaxed)
            close(clientFD)
            warnOccasionally("maxconn", "--max-connections \(configuration.maxConnections) reached; closing new clients")
            return
        }
        context.totalConnections.add(1, ordering: .relaxed)
        let connection = takeSlot()
        connection.begin(clientFD: clientFD, now: now)
        openHere += 1
        if needsClientKey {
            connection.clientKey = Socket.peerAddressKey(clientFD)
        }
        connectNext(connection)
    }

    func closeListener(_ listener: Int) {
        guard listenerOpen[listener] else { return }
        close(listeners[listener])
        listenerOpen[listener] = false
    }

    func takeSlot() -> Connection {
        if let slot = freeSlots.popLast() { return connections[Int(slot)] }
        let connection = Connection(slot: UInt32(connections.count))
        connections.append(connection)
        return connection
    }
}
