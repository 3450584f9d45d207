import CSwitchyard
import Glibc
import SwitchyardCore

// The PROXY protocol, both ways (HAProxy's `doc/proxy-protocol.txt`).
//
// accept-proxy: a client of such a listener is held as for SNI routing (`holdingClientBytes`)
// and its first bytes are read by the pure parser (`ProxyHeader.parse`) before a backend is
// chosen, since ip-hash needs the address the header carries. Receives that end inside the header
// are copied into the connection's `proxyHeader.bytes` and their provided buffers go back at once,
// so a client dribbling its header a byte at a time holds no buffer. The header completes inside
// the latest receive, so whatever follows it there is client payload: that buffer is kept with
// its send offset past the header and goes to the backend first, intact. Nothing after the header
// is ever parsed, except on a `route-by-sni` listener (a ClientHello comes next) or one with `tls`
// (a handshake comes next, as behind HAProxy's `accept-proxy ssl`): those copy what follows the
// header into the reader or the TLS session, and the buffer goes back at once.
//
// send-proxy: once the backend's connect completes, one send(2) of the header (at most 107
// bytes, encoded inline without allocating) into the new socket's empty send buffer, before the
// relay submits anything; a failure counts as a failed connect of that backend.

/// A connection's PROXY protocol state, both ways.
struct ProxyHeaderState {
    /// Reading the PROXY header an `accept-proxy` listener requires, before anything else.
    var reading = false
    /// When that header must be complete (monotonic milliseconds).
    var deadline: Int64?
    /// The header's bytes so far, when it arrives over more than one receive (capacity kept).
    var bytes: [UInt8] = []
    /// The addresses a `send-proxy` header carries: the client's and the one it connected to,
    /// from the header the client sent, or read from the client socket when first needed.
    var source = PeerAddress.unknown
    var destination = PeerAddress.unknown
    var addressesKnown = false
    /// `source` came from the client's PROXY header: it is the client for ip-hash and logs.
    var clientFromHeader = false
    /// The header the chosen backend gets: its own `send-proxy`, else its service's; nil for none.
    var sendVersion: ProxyProtocolVersion?

    /// Back to a new connection's state, keeping the storage of `bytes`.
    mutating func reset() {
        bytes.removeAll(keepingCapacity: true)  // in place: emptied before it is shared
        let kept = bytes
        self = ProxyHeaderState()
        bytes = kept
    }
}

extension Worker {
    /// A new client of an `accept-proxy` listener: closes it if its peer may not send a header,
    /// else starts reading the header, within `settings.timeout`.
    func startReadingProxyHeader(_ connection: Connection, _ settings: AcceptProxySettings) {
        if !settings.trusted.isEmpty {
            let peer = Worker.socketAddress(connection.clientFD, peer: true)
            guard settings.trusts(peer) else {
                proxyHeaderFailed(connection, .untrusted)
                return
            }
        }
        connection.proxyHeader.reading = true
        connection.holdingClientBytes = true
        connection.proxyHeader.deadline = now + settings.timeout.milliseconds
        armReceive(connection, .clientToBackend)
    }

    /// `length` bytes received into provided buffer `id` while reading the header (the caller has
    /// taken the buffer from the pool): parses what has arrived, and on a whole header strips it
    /// and goes on to routing or connecting.
    func proxyHeaderReceived(_ connection: Connection, buffer id: UInt16, length: Int) {
        let maximum = AcceptProxySettings.maximumHeaderLength
        let chunk = UnsafeBufferPointer(start: buffers.address(of: id).assumingMemoryBound(to: UInt8.self), count: length)
        let prior = connection.proxyHeader.bytes.count
        let result: ProxyHeaderParseResult
        if prior == 0 {
            // The usual case: the whole header in the first segment, parsed where it lies.
            result = ProxyHeader.parse(chunk.span, maximumLength: maximum)
            if case .needMoreData = result { connection.proxyHeader.bytes.append(contentsOf: chunk) }
        } else {
            // Never more than the limit: a header that would not fit is refused as too long.
            connection.proxyHeader.bytes.append(contentsOf: chunk.prefix(maximum - prior))
            result = ProxyHeader.parse(connection.proxyHeader.bytes, maximumLength: maximum)
        }
        switch result {
        case .needMoreData:
            buffers.recycle(id)
            feedStarved()
            // A multishot receive can end with data (no F_MORE); the header still has to come.
            if !connection.direction(.clientToBackend).receiving { armReceive(connection, .clientToBackend) }
        case let .invalid(error):
            buffers.recycle(id)
            logger.debug("PROXY header refused", metadata: ["slot": "\(connection.slot)", "error": "\(error)"])
            proxyHeaderFailed(connection, ProxyHeaderFailure(error))
        case let .complete(header):
            // The header ends inside this chunk (it was incomplete without it).
            let payloadStart = min(header.byteCount - prior, length)
            let payload = UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(chunk)[payloadStart...])
            connection.withDirection(.clientToBackend) { $0.unflushedBytes += payload.count }
            if let service = connection.service, service.snapshot.settings.routing != nil || service.tls != nil {
                // Read on (a ClientHello, a TLS handshake): the next stage copies the payload.
                proxyHeaderRead(connection, header, payload: payload)
                buffers.recycle(id)
                feedStarved()
            } else if payload.isEmpty {
                buffers.recycle(id)
                proxyHeaderRead(connection, header)
            } else {
                connection.withDirection(.clientToBackend) { state in
                    precondition(state.buffer == nil, "client bytes held before the PROXY header was read")
                    state.buffer = id
                    state.sent = payloadStart
                    state.received = length
                }
                proxyHeaderRead(connection, header)
            }
        }
    }

    /// A whole valid header: takes its addresses as the client's (unless it is LOCAL or carries
    /// none), then routes by SNI (reading `payload` first), starts TLS (fed first with `payload`),
    /// or connects (the payload then waits in the client's held buffer).
    func proxyHeaderRead(_ connection: Connection, _ header: ProxyHeader,
                         payload: UnsafeRawBufferPointer = UnsafeRawBufferPointer(start: nil, count: 0)) {
        connection.proxyHeader.reading = false
        connection.proxyHeader.deadline = nil
        if connection.proxyHeader.bytes.capacity > 512 {
            connection.proxyHeader.bytes = [] // a rare long header does not stay with the slot
        } else {
            connection.proxyHeader.bytes.removeAll(keepingCapacity: true)
        }
        guard let service = connection.service else { return }
        if header.command == .proxy, let source = header.source, let destination = header.destination {
            connection.proxyHeader.source = PeerAddress(source)
            connection.proxyHeader.destination = PeerAddress(destination)
            connection.proxyHeader.addressesKnown = true
            connection.proxyHeader.clientFromHeader = true
            connection.client = connection.proxyHeader.source
            connection.clientKey = connection.proxyHeader.source.stableHashKey
        } else if service.needsClientKey {
            // LOCAL (a health check of the proxy in front), v1 UNKNOWN, UNSPEC or UNIX: the
            // connection's own peer is the client.
            connection.clientKey = Socket.peerAddressKey(connection.clientFD)
        }
        guard admitProxiedClient(connection) else { return }
        let settings = service.snapshot.settings
        if settings.routing != nil {
            startSniffing(connection, timeout: settings.sniTimeout, receiveArmed: connection.direction(.clientToBackend).receiving)
            if !payload.isEmpty { sniffed(connection, payload) }
            return
        }
        if let tls = service.tls {
            // HAProxy's `accept-proxy ssl`: the header in the clear, then the handshake.
            startTLS(connection, tls, timeout: settings.tlsHandshakeTimeout, received: payload)
            return
        }
        connectNext(connection)
    }

    /// Closes a client whose header is missing, malformed, oversized, late or untrusted, and
    /// counts it by cause on its listener. Nothing else is affected.
    func proxyHeaderFailed(_ connection: Connection, _ failure: ProxyHeaderFailure) {
        connection.proxyHeader.reading = false
        connection.proxyHeader.deadline = nil
        connection.listener?.figures.recordProxyHeaderError(failure)
        warnOccasionally("proxy-header", "closing a client of an accept-proxy listener: PROXY header \(failure)")
        perform(connection.machine.close(.clientError), on: connection)
    }

    /// Sends the header `proxyHeader.sendVersion` names to the newly connected backend; returns 0,
    /// or a negative errno when the send failed (a short send, impossible into a new socket's
    /// empty buffer, counts as `-EAGAIN`).
    func sendProxyHeader(_ connection: Connection) -> Int32 {
        guard let version = connection.proxyHeader.sendVersion else { return 0 }
        if !connection.proxyHeader.addressesKnown {
            connection.proxyHeader.source = Worker.socketAddress(connection.clientFD, peer: true)
            connection.proxyHeader.destination = Worker.socketAddress(connection.clientFD, peer: false)
            connection.proxyHeader.addressesKnown = true
        }
        let header = ProxyHeader.encode(version, source: connection.proxyHeader.source, destination: connection.proxyHeader.destination)
        let count = header.count
        let sent = header.bytes.span.withUnsafeBytes { raw in
            Socket.send(connection.backendFD, UnsafeRawBufferPointer(rebasing: raw[..<count]))
        }
        if sent == count { return 0 }
        return sent < 0 ? Int32(sent) : -EAGAIN
    }

    /// The peer's (`peer`) or the local address of a socket, without allocating; `.unknown`
    /// when it cannot be read or is not IPv4 or IPv6.
    static func socketAddress(_ fd: Int32, peer: Bool) -> PeerAddress {
        var storage = sockaddr_storage()
        guard Socket.address(of: fd, peer: peer, into: &storage) == 0 else { return .unknown }
        let family = Int32(storage.ss_family)
        return withUnsafeBytes(of: &storage) { raw -> PeerAddress in
            switch family {
            case AF_INET:
                let address = raw.load(as: sockaddr_in.self)
                return withUnsafeBytes(of: address.sin_addr) { bytes in
                    PeerAddress(ipv4: bytes[0], bytes[1], bytes[2], bytes[3], port: UInt16(bigEndian: address.sin_port))
                }
            case AF_INET6:
                let address = raw.load(as: sockaddr_in6.self)
                var bytes = InlineArray<16, UInt8>(repeating: 0)
                withUnsafeBytes(of: address.sin6_addr) { source in
                    for index in 0..<16 { bytes[index] = source[index] }
                }
                return PeerAddress(ipv6: bytes, port: UInt16(bigEndian: address.sin6_port))
            default:
                return .unknown
            }
        }
    }
}
