import CSwitchyard
import Glibc
import SwitchyardCore

/// A health probe's TLS layer (`type: tls`, `check-tls`, issue 22): a `TLSClientSession` over
/// the probe's non-blocking socket, once its TCP connect completed.
///
/// The probe loop calls `exchange(fd:)` whenever poll(2) reports one of `pollEvents` (and once
/// right after the connect); it moves ciphertext both ways, runs the handshake, and collects
/// decrypted bytes for `takeReceived()`. Once `isEstablished`, the check's own bytes go in with
/// `send(_:fd:)` and count as sent when `hasUnsentBytes` is false. What the loop feeds its check
/// then: the handshake's end is the check's "connected", `takeReceived()` its replies,
/// `peerClosed` the backend's close.
///
/// Thread: the health checker's thread only.
final class HealthProbeTLS {
    let session: TLSClientSession
    /// Decrypted bytes not yet taken, at most `maximumReceived`.
    private var received: [UInt8] = []
    /// The backend closed the connection (or the TLS session) after the handshake.
    private(set) var peerClosed = false
    /// A socket error or the session's failure; the probe fails with it.
    private(set) var failure: String?

    /// Decrypted bytes held for the check: beyond the longest reply a check reads.
    static let maximumReceived = 2 * HealthCheckConfig.maximumReply
    /// Socket reads per `exchange` call: the loop comes back for more on its next turn.
    private static let readsPerExchange = 8

    init(context: TLSContext, serverName: String?) throws(TLSError) {
        session = try TLSClientSession(context: context, serverName: serverName)
    }

    /// Whether the handshake completed (and verification passed); stays true once the backend
    /// closes.
    private(set) var isEstablished = false

    /// Whether the check's bytes (or the handshake's) still wait to be written to the socket.
    var hasUnsentBytes: Bool { session.hasCiphertextToSend }

    /// What to poll the socket for: writable while ciphertext waits, readable always.
    var pollEvents: Int16 { Int16(POLLIN) | (hasUnsentBytes ? Int16(POLLOUT) : 0) }

    /// Writes what waits, reads what came, and advances the handshake or decrypts. Returns the
    /// failure, if any, that ends the probe.
    @discardableResult
    func exchange(fd: Int32) -> String? {
        guard failure == nil else { return failure }
        // The first call writes the ClientHello.
        advance()
        flush(fd: fd)
        var reads = 0
        var buffer = [UInt8](repeating: 0, count: 16 * 1024)
        while failure == nil, !peerClosed, reads < Self.readsPerExchange {
            reads += 1
            let count = buffer.withUnsafeMutableBytes { Socket.receive(fd, into: $0) }
            if count < 0 {
                let code = Int32(-count)
                if code != EAGAIN { failure = "recv: \(errnoPhrase(code))" }
                break
            }
            if count == 0 {
                session.receiveEnd()
            } else {
                buffer.withUnsafeBytes { session.receiveCiphertext(UnsafeRawBufferPointer(rebasing: $0[0..<count])) }
            }
            advance()
            if count == 0 {
                if failure == nil && session.state == .handshaking { failure = "connection closed during the TLS handshake" }
                peerClosed = true
            }
        }
        // The handshake's next flight (or an alert) goes out at once.
        flush(fd: fd)
        return failure
    }

    /// Encrypts the check's `bytes` and writes what the socket takes now; `exchange` writes the
    /// rest. Only once established. Returns the failure, if any.
    @discardableResult
    func send(_ bytes: [UInt8], fd: Int32) -> String? {
        session.writePlaintext(bytes)
        if case let .failed(reason) = session.state { failure = "TLS: \(reason)" }
        flush(fd: fd)
        return failure
    }

    /// The decrypted bytes received since the last call.
    func takeReceived() -> [UInt8] {
        defer { received.removeAll(keepingCapacity: true) }
        return received
    }

    /// For the check's text: `TLSv1.3 with db.example.com, certificate expires in 29d`.
    func handshakeSummary(now: Int64) -> String {
        var text = session.protocolVersion ?? "TLS"
        if let serverName = session.serverName { text += " with \(serverName)" }
        if let notAfter = session.certificateNotAfter {
            text += ", certificate \(CertificateExpiry.describe(notAfter: notAfter, now: now))"
        }
        return text
    }

    private func advance() {
        if session.state == .handshaking {
            if case let .failed(reason) = session.advance() {
                failure = "TLS handshake failed: \(reason)"
                return
            }
            isEstablished = session.state == .established
        }
        while session.state == .established {
            let bytes = session.readPlaintext()
            if bytes.isEmpty { break }
            guard received.count + bytes.count <= Self.maximumReceived else {
                failure = "TLS: the backend sent more than \(Self.maximumReceived) bytes unread"
                return
            }
            received += bytes
        }
        switch session.state {
        case .closed: peerClosed = true
        case let .failed(reason): failure = "TLS: \(reason)"
        case .handshaking, .established: break
        }
    }

    private func flush(fd: Int32) {
        guard failure == nil else { return }
        session.sendCiphertext { bytes in
            let sent = Socket.send(fd, bytes)
            if sent >= 0 { return sent }
            if sent != -Int(EAGAIN) { failure = "send: \(errnoPhrase(Int32(-sent)))" }
            return 0
        }
    }
}

/// The TLS contexts of a checker's probes, made on the checker's thread at their first TLS
/// probe: from the service's `ca-file` for a backend without `backend-tls`; for one with it,
/// from its `backend-tls` (CA, client certificate, `verify`), the health check's own `ca-file`
/// and `server-name` replacing the CA and the name when given. A context that cannot be made
/// fails every TLS probe that needs it with the reason (shown by `show backends`), so a bad path
/// is visible without stopping the service.
struct HealthTLSContext {
    private var made: Result<TLSContext, TLSError>?
    private var byBackendTLS: [BackendTLSSettings: Result<TLSContext, TLSError>] = [:]

    mutating func context(for config: HealthCheckTLS, backendTLS: BackendTLSSettings? = nil) -> Result<TLSContext, TLSError> {
        if let backendTLS {
            if let made = byBackendTLS[backendTLS] { return made }
            // Verified after the handshake (not aborting it): the check reports the certificate's
            // expiry even when it fails.
            let result = Result { () throws(TLSError) in
                try TLSContext.backend(backendTLS, caFile: config.caFile, abortsOnBadChain: false)
            }
            byBackendTLS[backendTLS] = result
            return result
        }
        if let made { return made }
        let result = Result { () throws(TLSError) in try TLSContext.client(caFile: config.caFile) }
        made = result
        return result
    }

    /// A probe's TLS layer for a check of `host` (a backend with `backendTLS`, if any), or the
    /// reason there is none.
    mutating func probe(for config: HealthCheckTLS, backendTLS: BackendTLSSettings? = nil, host: String) -> Result<HealthProbeTLS, TLSError> {
        switch context(for: config, backendTLS: backendTLS) {
        case let .failure(error): return .failure(error)
        case let .success(context):
            let serverName = config.serverName ?? backendTLS?.serverName(backendHost: host, clientServerName: nil)
                ?? config.serverName(forHost: host)
            return Result { () throws(TLSError) in
                try HealthProbeTLS(context: context, serverName: serverName)
            }
        }
    }
}

/// Seconds since the Unix epoch now, for certificate expiry.
func secondsSinceEpoch() -> Int64 {
    var now = timespec()
    clock_gettime(CLOCK_REALTIME, &now)
    return Int64(now.tv_sec)
}
