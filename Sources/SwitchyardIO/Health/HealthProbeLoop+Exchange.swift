import CSwitchyard
import Glibc
import Logging
import SwitchyardCore

// One probe's exchange with its backend: connect, the PROXY header, TLS, then the dialog's
// sends and reads. On the checker thread.
extension HealthProbeLoop {
    /// `entry` is read again from `scheduled`, whose `nextStart` has moved on since.
    mutating func startProbe(id: Int, entry _: Scheduled, now: ContinuousClock.Instant) {
        guard var entry = scheduled[id] else { return }
        if entry.address == nil {
            if entry.endpoint.address != nil {
                entry.address = try? SocketAddress.resolve(entry.endpoint)  // An IP literal: no lookup.
                scheduled[id] = entry
            } else {
                // getaddrinfo(3) can block for seconds: run it on a thread of its own so that
                // one slow DNS answer never delays the other backends' checks.
                startLookup(id: id, endpoint: entry.endpoint)
                return
            }
        }
        guard let address = entry.address else { return }
        let fd = Socket.openStream(family: address.family)
        guard fd >= 0 else {
            let code = -fd
            // Out of descriptors is this process's shortage, not the backend's failure.
            if code == EMFILE || code == ENFILE {
                skipForWantOfDescriptors(code: code, now: now)
            } else {
                finish(id: id, .failure(reason: "socket: \(errnoPhrase(code))"))
            }
            return
        }
        // With `source`, a check leaves from the same addresses as the clients' connects, so a
        // backend (or firewall) that admits only those sees its checks too.
        if !sources.isEmpty, let target = address.ipAddress {
            guard let source = SourceBinding.next(of: sources, reaching: target, turn: &nextSource) else {
                closeDescriptor(fd)
                finish(id: id, .failure(reason: "source has no \(target.isIPv6 ? "IPv6" : "IPv4") address to check \(entry.endpoint) from"))
                return
            }
            let code = SourceBinding.bind(fd, to: source)
            if code != 0 {
                closeDescriptor(fd)
                finish(id: id, .failure(reason: "bind to source \(source): \(errnoPhrase(code))"))
                return
            }
        }
        let result = Socket.connect(fd, to: address)
        let code = -result
        inFlight[id] = Probe(
            fd: fd, phase: .connecting, dialog: config.dialog(checking: entry.endpoint), started: now, deadline: now + config.timeout)
        if result == 0 {
            connected(id: id)
        } else if code != EINPROGRESS && code != EINTR {
            finish(id: id, .failure(reason: errnoPhrase(code)))
        }
    }

    /// Handles poll events of one probe.
    mutating func advance(id: Int, revents: Int32) {
        guard let probe = inFlight[id] else { return }
        if probe.tls != nil {
            advanceTLS(id: id)
            return
        }
        switch probe.phase {
        case .connecting:
            let error = Socket.connectError(probe.fd)
            if error != 0 {
                finish(id: id, .failure(reason: errnoPhrase(error)))
            } else if revents & (POLLERR | POLLHUP) != 0 && revents & POLLOUT == 0 {
                finish(id: id, .failure(reason: "connection failed"))
            } else {
                connected(id: id)
            }
        case .sending:
            write(id: id)
        case .receiving:
            receive(id: id)
        case .handshaking:
            break
        }
    }

    /// The TCP connect completed: the PROXY header first when the backend wants one, then TLS
    /// when the check uses it, then the dialog.
    mutating func connected(id: Int) {
        guard let probe = inFlight[id], let entry = scheduled[id] else { return }
        guard let version = entry.proxyHeader else {
            transportReady(id: id)
            return
        }
        // The check's own addresses, as HAProxy's check-send-proxy sends them.
        let header = ProxyHeader.encode(
            version, source: Worker.socketAddress(probe.fd, peer: false), destination: Worker.socketAddress(probe.fd, peer: true))
        inFlight[id]?.phase = .sending(bytes: header.array, offset: 0, then: .connected)
        write(id: id)
    }

    /// The connection (and its PROXY header) is in place: the TLS handshake, or the dialog.
    mutating func transportReady(id: Int) {
        guard let entry = scheduled[id] else { return }
        if entry.usesTLS {
            startTLS(id: id, host: entry.endpoint.host, backendTLS: entry.backendTLS)
        } else {
            feed(id: id, .connected)
        }
    }

    /// Tells the probe's dialog what happened and does what it answers.
    mutating func feed(id: Int, _ event: HealthDialogEvent) {
        guard var probe = inFlight[id] else { return }
        let action = probe.dialog.advance(event)
        inFlight[id] = probe
        switch action {
        case let .send(bytes):
            guard !bytes.isEmpty else { return feed(id: id, .sent) }
            inFlight[id]?.phase = .sending(bytes: bytes, offset: 0, then: .sent)
            if let tls = probe.tls {
                if let failure = tls.send(bytes, fd: probe.fd) { return finish(id: id, .failure(reason: failure)) }
                return advanceTLS(id: id)
            }
            write(id: id)
        case .receive:
            inFlight[id]?.phase = .receiving
            // A dialog that waits after the close would only be told of the close again.
            if probe.closedSeen { finish(id: id, .failure(reason: "closed by the backend; \(probe.dialog.progress)")) }
        case let .pass(text):
            succeed(id: id, what: text)
        case let .fail(text):
            finish(id: id, .failure(reason: text))
        }
    }

    /// Writes what the `.sending` phase holds, as far as the socket takes it.
    mutating func write(id: Int) {
        guard let probe = inFlight[id], case let .sending(bytes, offset, then) = probe.phase else { return }
        let sent = bytes.withUnsafeBytes { Socket.send(probe.fd, UnsafeRawBufferPointer(rebasing: $0[offset...])) }
        if sent < 0 {
            let code = Int32(-sent)
            if code != EAGAIN {
                let what = then == .connected ? "the PROXY header" : probe.dialog.progress
                finish(id: id, .failure(reason: "send: \(errnoPhrase(code)); \(what)"))
            }
        } else if offset + sent < bytes.count {
            inFlight[id]?.phase = .sending(bytes: bytes, offset: offset + sent, then: then)
        } else if then == .connected {
            transportReady(id: id)  // The PROXY header is out.
        } else {
            feed(id: id, then)
        }
    }

    /// Reads one chunk for the dialog: at most `HealthCheckConfig.maximumProbeRead` bytes per
    /// probe, so that a backend that floods its check fails it instead of growing our memory.
    mutating func receive(id: Int) {
        guard let probe = inFlight[id] else { return }
        var chunk = [UInt8](repeating: 0, count: 4096)
        let count = chunk.withUnsafeMutableBytes { Socket.receive(probe.fd, into: $0) }
        if count < 0 {
            let code = Int32(-count)
            if code != EAGAIN {
                finish(id: id, .failure(reason: "recv: \(errnoPhrase(code)); \(probe.dialog.progress)"))
            }
            return
        }
        if count == 0 {
            inFlight[id]?.closedSeen = true
            feed(id: id, .closed)
            return
        }
        let total = probe.bytesRead + count
        guard total <= HealthCheckConfig.maximumProbeRead else {
            finish(id: id, .failure(reason: "read over \(HealthCheckConfig.maximumProbeRead) bytes without a verdict; \(probe.dialog.progress)"))
            return
        }
        inFlight[id]?.bytesRead = total
        feed(id: id, .received(Array(chunk[0..<count])))
    }

    // MARK: TLS checks (issue 22); the TLS layer itself is HealthProbeTLS (HealthChecker+TLS.swift).

    /// Starts the TLS handshake on the probe's connected socket.
    mutating func startTLS(id: Int, host: String, backendTLS: BackendTLSSettings?) {
        switch tlsContext.probe(for: config.tls, backendTLS: backendTLS, host: host) {
        case let .failure(error):
            finish(id: id, .failure(reason: "TLS: \(error.message)"))
        case let .success(tls):
            inFlight[id]?.tls = tls
            inFlight[id]?.phase = .handshaking
            advanceTLS(id: id)
        }
    }

    /// The socket of a TLS probe is ready: moves bytes, then tells the dialog of the handshake's
    /// end (the whole check for `type: tls`), of its bytes sent, of a reply or of the close.
    mutating func advanceTLS(id: Int) {
        guard let probe = inFlight[id], let tls = probe.tls else { return }
        let failure = tls.exchange(fd: probe.fd)
        if case .handshaking = probe.phase, let notAfter = tls.session.certificateNotAfter, tls.isEstablished || failure != nil {
            checker.recordCertificate(backendID: id, notAfter: notAfter)
        }
        if let failure { return finish(id: id, .failure(reason: failure)) }
        switch probe.phase {
        case .handshaking:
            guard tls.isEstablished else { return }
            if config.tls.handshakeOnly {
                return succeed(id: id, what: "TLS handshake (\(tls.handshakeSummary(now: secondsSinceEpoch())))")
            }
            feed(id: id, .connected)
            // A server that speaks first may have sent its banner with the handshake's end.
            if case .receiving = inFlight[id]?.phase { deliverTLS(id: id) }
        case .sending:
            guard !tls.hasUnsentBytes else { return }
            feed(id: id, .sent)
            if case .receiving = inFlight[id]?.phase { deliverTLS(id: id) }
        case .receiving:
            deliverTLS(id: id)
        case .connecting:
            break
        }
    }

    /// Gives the dialog what the TLS layer decrypted, then the backend's close if it came.
    mutating func deliverTLS(id: Int) {
        guard let probe = inFlight[id], let tls = probe.tls else { return }
        let bytes = tls.takeReceived()
        if !bytes.isEmpty {
            let total = probe.bytesRead + bytes.count
            guard total <= HealthCheckConfig.maximumProbeRead else {
                return finish(id: id, .failure(reason: "read over \(HealthCheckConfig.maximumProbeRead) bytes without a verdict; \(probe.dialog.progress)"))
            }
            inFlight[id]?.bytesRead = total
            feed(id: id, .received(bytes))
        }
        if tls.peerClosed, let after = inFlight[id], case .receiving = after.phase, !after.closedSeen {
            inFlight[id]?.closedSeen = true
            feed(id: id, .closed)
        }
    }
}
