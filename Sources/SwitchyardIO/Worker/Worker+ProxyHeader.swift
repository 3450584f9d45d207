import CSwitchyard
import Glibc
import SwitchyardCore

// The PROXY protocol, both ways (HAProxy's `doc/proxy-protocol.txt`).
//
// accept-proxy: a client of such a listener is held as for SNI routing (`holdingClientBytes`)
// and its first bytes are read by the pure parser (`ProxyHeader.parse`) before a backend is
// chosen, since ip-hash needs the address the header carries. Receives that end inside the header
// are copied into the connection's `proxyHeaderBytes` and their provided buffers go back at once,
// so a client dribbling its header a byte at a time holds no buffer. The header completes inside
// the latest receive, so whatever follows it there is client payload: that buffer is kept with
// its send offset past the header and goes to the backend first, intact. Nothing after the header
// is ever parsed (except a ClientHello on a `route-by-sni` listener, which comes next).
//
// send-proxy: once the backend's connect completes, one send(2) of the header (at most 107
// bytes, encoded inline without allocating) into the new socket's empty send buffer, before the
// relay submits anything; a failure counts as a failed connect of that backend.
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
        connection.readingProxyHeader = true
        connection.holdingClientBytes = true
        connection.proxyHeaderDeadline = now + settings.timeout.milliseconds
        armReceive(connection, .clientToBackend)
    }

    /// `length` bytes received into provided buffer `id` while reading the header (the caller has
    /// taken the buffer from the pool): parses what has arrived, and on a whole header strips it
    /// and goes on to routing or connecting.
    func proxyHeaderReceived(_ connection: Connection, buffer id: UInt16, length: Int) {
        let maximum = AcceptProxySettings.maximumHeaderLength
        let chunk = UnsafeBufferPointer(start: buffers.address(of: id).assumingMemoryBound(to: UInt8.self), count: length)
        let prior = connection.proxyHeaderBytes.count
        let result: ProxyHeaderParseResult
        if prior == 0 {
            // The usual case: the whole header in the first segment, parsed where it lies.
            result = ProxyHeader.parse(chunk.span, maximumLength: maximum)
            if case .needMoreData = result { connection.proxyHeaderBytes.append(contentsOf: chunk) }
        } else {
            // Never more than the limit: a header that would not fit is refused as too long.
            connection.proxyHeaderBytes.append(contentsOf: chunk.prefix(maximum - prior))
            result = ProxyHeader.parse(connection.proxyHeaderBytes, maximumLength: maximum)
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
            let payloadStart = header.byteCount - prior
            if payloadStart < length {
                connection.withDirection(.clientToBackend) { state in
                    precondition(state.buffer == nil, "client bytes held before the PROXY header was read")
                    state.buffer = id
                    state.sent = payloadStart
                    state.received = length
                    state.unflushedBytes += length - payloadStart
                }
            } else {
                buffers.recycle(id)
            }
            proxyHeaderRead(connection, header)
            let payload = UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(chunk)[min(payloadStart, length)...])
            if connection.sniffing && !payload.isEmpty { sniffed(connection, payload) }
        }
    }

    /// A whole valid header: takes its addresses as the client's (unless it is LOCAL or carries
    /// none), then routes by SNI or connects.
    func proxyHeaderRead(_ connection: Connection, _ header: ProxyHeader) {
        connection.readingProxyHeader = false
        connection.proxyHeaderDeadline = nil
        if connection.proxyHeaderBytes.capacity > 512 {
            connection.proxyHeaderBytes = [] // a rare long header does not stay with the slot
        } else {
            connection.proxyHeaderBytes.removeAll(keepingCapacity: true)
        }
        guard let service = connection.service else { return }
        if header.command == .proxy, let source = header.source, let destination = header.destination {
            connection.proxySource = PeerAddress(source)
            connection.proxyDestination = PeerAddress(destination)
            connection.proxyAddressesKnown = true
            connection.clientFromProxyHeader = true
            connection.client = connection.proxySource
            connection.clientKey = connection.proxySource.stableHashKey
        } else if service.needsClientKey {
            // LOCAL (a health check of the proxy in front), v1 UNKNOWN, UNSPEC or UNIX: the
            // connection's own peer is the client.
            connection.clientKey = Socket.peerAddressKey(connection.clientFD)
        }
        guard admitProxiedClient(connection) else { return }
        let settings = service.snapshot.settings
        if settings.routing != nil {
            startSniffing(connection, timeout: settings.sniTimeout, receiveArmed: connection.direction(.clientToBackend).receiving)
            return
        }
        connectNext(connection)
    }

    /// Closes a client whose header is missing, malformed, oversized, late or untrusted, and
    /// counts it by cause on its listener. Nothing else is affected.
    func proxyHeaderFailed(_ connection: Connection, _ failure: ProxyHeaderFailure) {
        connection.readingProxyHeader = false
        connection.proxyHeaderDeadline = nil
        connection.listener?.figures.recordProxyHeaderError(failure)
        warnOccasionally("proxy-header", "closing a client of an accept-proxy listener: PROXY header \(failure)")
        perform(connection.machine.close(.clientError), on: connection)
    }

    /// Sends the header `connection.sendProxy` names to its newly connected backend; returns 0,
    /// or a negative errno when the send failed (a short send, impossible into a new socket's
    /// empty buffer, counts as `-EAGAIN`).
    func sendProxyHeader(_ connection: Connection) -> Int32 {
        guard let version = connection.sendProxy else { return 0 }
        if !connection.proxyAddressesKnown {
            connection.proxySource = Worker.socketAddress(connection.clientFD, peer: true)
            connection.proxyDestination = Worker.socketAddress(connection.clientFD, peer: false)
            connection.proxyAddressesKnown = true
        }
        let header = ProxyHeader.encode(version, source: connection.proxySource, destination: connection.proxyDestination)
        let count = header.count
        let sent = header.bytes.span.withUnsafeBytes { raw in
            send(connection.backendFD, raw.baseAddress, count, Int32(MSG_NOSIGNAL))
        }
        if sent == count { return 0 }
        return sent < 0 ? -swy_errno() : -EAGAIN
    }

    /// The peer's (`peer`) or the local address of a socket, without allocating; `.unknown`
    /// when it cannot be read or is not IPv4 or IPv6.
    static func socketAddress(_ fd: Int32, peer: Bool) -> PeerAddress {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let got = withUnsafeMutablePointer(to: &storage) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                peer ? getpeername(fd, $0, &length) : getsockname(fd, $0, &length)
            }
        }
        guard got == 0 else { return .unknown }
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
