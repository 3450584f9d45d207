import CSwitchyard
import Glibc
import SwitchyardCore

// Routing by the server name of a TLS ClientHello (`route-by-sni`). The client's first bytes
// are received into provided buffers and copied at once into the pure `ClientHelloReader`, which
// keeps every byte fed (at most its 16 KiB limit plus one receive), and the buffers go back: a
// client trickling its ClientHello a byte at a time holds no shared buffer. Once the reader has
// an answer the connection takes the named service's picker, its bytes are parked (see
// Worker+Parking.swift), it connects, and they go to the backend first, unchanged. Nothing is
// decrypted, unless the route's service has `tls`: then the connection terminates TLS as that
// service's own listener would (Worker+TLS.swift), its TLS session fed first with the bytes read.

/// A connection's reading of its client's ClientHello.
struct SNIState {
    /// Reading the TLS ClientHello of a `route-by-sni` listener's client.
    var sniffing = false
    var reader: ClientHelloReader?
    /// When sniffing gives up (monotonic milliseconds).
    var deadline: Int64?
    /// The server name the ClientHello asked for, for the access log.
    var serverName: String?
    /// The route's service terminates TLS: its handshakes count under that service.
    var terminating = false
}

extension Worker {
    /// A routing listener's new client: read its ClientHello before choosing a service.
    /// `receiveArmed`: the client's receive is already armed (it was reading a PROXY header).
    func startSniffing(_ connection: Connection, timeout: Duration, receiveArmed: Bool = false) {
        connection.sni.sniffing = true
        connection.holdingClientBytes = true
        connection.sni.reader = ClientHelloReader()
        connection.sni.deadline = now + timeout.milliseconds
        if !receiveArmed { armReceive(connection, .clientToBackend) }
    }

    /// Bytes received while sniffing (already kept by the caller); routes once the reader knows.
    func sniffed(_ connection: Connection, _ bytes: UnsafeRawBufferPointer) {
        guard connection.sni.sniffing, var reader = connection.sni.reader else { return }
        let result = reader.feed(bytes)
        connection.sni.reader = reader
        giveBackHeldClientBuffers(connection)
        if case .needMoreData = result {
            // A multishot receive can end with data (no F_MORE); the rest still has to come.
            if !connection.direction(.clientToBackend).receiving { armReceive(connection, .clientToBackend) }
            return
        }
        routeByServerName(connection, result)
    }

    /// The provided buffers that hold the client's bytes go back: the reader has a copy.
    private func giveBackHeldClientBuffers(_ connection: Connection) {
        let ids = connection.withDirection(.clientToBackend) { state -> (UInt16?, Int) in
            defer {
                state.buffer = nil
                state.sent = 0
                state.received = 0
            }
            return (state.buffer, state.queue.count)
        }
        if let id = ids.0 { buffers.recycle(id) }
        if ids.1 > 0 {
            for queued in connection.direction(.clientToBackend).queue { buffers.recycle(queued.id) }
            connection.withDirection(.clientToBackend) { $0.queue.removeAll(keepingCapacity: true) }
        }
        feedStarved()
    }

    /// The client closed, or `sni-timeout` passed, before the reader had an answer.
    func sniffingEnded(_ connection: Connection) {
        guard connection.sni.sniffing else { return }
        routeByServerName(connection, connection.sni.reader?.result ?? .needMoreData)
    }

    /// Counts a handshake of `connection` under the service whose certificates it used: the one
    /// its route named (`sni.terminating`), else its listener's.
    func countHandshake(_ connection: Connection, _ count: (inout TLSHandshakeFigures) -> Void) {
        if connection.sni.terminating, let service = connection.service?.registry.service {
            count(&routedTLSHandshakes[service, default: TLSHandshakeFigures()])
        } else if let listener = connection.listener {
            count(&listener.tlsHandshakes)
        }
    }

    /// Chooses the service for `result`, counts the route, and terminates TLS with the service's
    /// own settings when it has `tls`, else connects (or closes when no route applies and there
    /// is no default).
    func routeByServerName(_ connection: Connection, _ result: ClientHelloResult) {
        connection.sni.sniffing = false
        connection.sni.deadline = nil
        let received = connection.sni.reader?.received ?? []
        connection.sni.reader = nil
        guard let table = connection.service?.snapshot.sniRoutes else {
            perform(connection.machine.close(.noBackend), on: connection)
            return
        }
        let decision = table.route(result)
        let label = switch decision.outcome {
        case let .matched(route): table.routes[route].pattern
        case .noServerName: "no_sni"
        case .noMatch: "no_match"
        case .malformed: "malformed"
        }
        connection.listener?.sniRoutes[label, default: 0] &+= 1
        if case let .hello(serverName, _) = result { connection.sni.serverName = serverName }
        guard let target = decision.target, let registry = serviceRegistries[target] else {
            logger.debug("no route for a TLS client", metadata: ["route": "\(label)"])
            perform(connection.machine.close(.noBackend), on: connection)
            return
        }
        let picker = picker(for: registry)
        adoptSnapshotIfNewer(picker)
        connection.service = picker
        if picker.needsClientKey {
            // The address of an accepted PROXY header is the client's.
            connection.clientKey = connection.proxyHeader.clientFromHeader
                ? connection.proxyHeader.source.stableHashKey : Socket.peerAddressKey(connection.clientFD)
        }
        if let tls = picker.tls {
            // Terminated here, as by the service's own listener: the hello read so far starts the
            // handshake, which has the service's tls-handshake-timeout from now (after at most
            // sni-timeout), and the client keeps the place it took at accept.
            connection.sni.terminating = true
            received.withUnsafeBytes { startTLS(connection, tls, timeout: picker.snapshot.settings.tlsHandshakeTimeout, received: $0) }
            return
        }
        // What the client sent so far goes to the backend first, from memory of its own.
        if !received.isEmpty, !received.withUnsafeBytes({ park(connection, .clientToBackend, appending: [$0]) }) {
            perform(connection.machine.close(.clientError), on: connection)
            return
        }
        connectNext(connection)
    }
}
