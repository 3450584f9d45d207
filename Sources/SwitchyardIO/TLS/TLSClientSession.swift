import CSwitchyard
import Glibc
import SwitchyardCore

/// One TLS client connection over memory BIOs: the caller owns the socket and moves bytes.
/// Ciphertext read from the socket goes in with `receiveCiphertext`, ciphertext to send comes
/// out of `sendCiphertext`; `advance()` runs the handshake as far as the bytes allow, then
/// plaintext goes in with `writePlaintext` and out with `readPlaintext`. Nothing here blocks
/// or touches a descriptor, so it serves a poll(2) loop and an io_uring worker alike.
///
/// Created with a server name, the session sends it as SNI and, when its context verifies,
/// checks the certificate is for that name. When verifying, a chain or name that fails turns
/// the completed handshake into `.failed` with OpenSSL's verification text; the certificate's
/// `notAfter` is known either way.
///
/// Bounded: at most `maximumBuffered` bytes of ciphertext wait in each direction (the limit
/// given to `init` for the peer's); more from the peer fails the session. Garbage from the
/// peer fails it with OpenSSL's reason.
///
/// Two ways to use it: `sendCiphertext`, `writePlaintext(_: [UInt8])` and `readPlaintext(limit:)`
/// for a health probe's few bytes; the record layer (`TLSRecordSession`: `takeCiphertext(into:)`,
/// `readPlaintext(into:)`, `writePlaintext(_: UnsafeRawBufferPointer)`), which allocates nothing
/// per record, for a worker's connection to a backend (`backend-tls`).
///
/// Thread: one thread at a time (not `Sendable`).
public final class TLSClientSession {
    public enum State: Equatable, Sendable {
        case handshaking
        /// The handshake completed (and verification passed when the context verifies).
        case established
        /// The peer closed the TLS session (close_notify) or the connection after the handshake.
        case closed
        /// The text says why: OpenSSL's reason, or the failed verification.
        case failed(String)
    }

    /// Ciphertext that may wait in each direction: room for a few full TLS records (16 KiB of
    /// payload each) and a certificate chain.
    public static let maximumBuffered = 64 * 1024

    public private(set) var state = State.handshaking
    /// The name sent as SNI and verified, if any.
    public let serverName: String?
    /// The peer certificate's `notAfter`, in seconds since the Unix epoch; nil until the
    /// handshake completed (or when the peer sent no certificate).
    public private(set) var certificateNotAfter: Int64?
    /// The negotiated protocol, such as `TLSv1.3`; nil until the handshake completed.
    public private(set) var protocolVersion: String?

    private let context: TLSContext
    let ssl: OpaquePointer
    /// What the peer sent, for OpenSSL to read. Owned by `ssl`.
    let incoming: OpaquePointer
    /// What OpenSSL wrote, for the peer. Owned by `ssl`.
    let outgoing: OpaquePointer
    /// Ciphertext from the peer that may wait undecrypted before the session fails.
    private let receiveLimit: Int
    /// Ciphertext taken out of `outgoing` that the socket has not accepted yet.
    private var unsent: [UInt8] = []

    /// `serverName` must be a host name (not an IP address) or nil; `receiveLimit`: the
    /// ciphertext from the peer that may wait (`maximumBuffered` unless the caller bounds it
    /// itself). Throws when OpenSSL cannot make the session (out of memory).
    public init(context: TLSContext, serverName: String?, receiveLimit: Int = maximumBuffered) throws(TLSError) {
        (ssl, incoming, outgoing) = try TLSError.makeSession(context.context)
        self.context = context
        self.serverName = serverName
        self.receiveLimit = receiveLimit
        SSL_set_connect_state(ssl)
        if let serverName {
            guard swy_ssl_set_server_name(ssl, serverName) == 1 else {
                throw TLSError("server name '\(serverName)': \(TLSError.takeQueue(fallback: "refused"))")
            }
            if context.verifiesPeer {
                guard SSL_set1_host(ssl, serverName) == 1 else {
                    throw TLSError("server name '\(serverName)': \(TLSError.takeQueue(fallback: "refused"))")
                }
            }
        }
    }

    deinit { SSL_free(ssl) }

    // MARK: Ciphertext

    /// Bytes read from the socket. Past the receive limit waiting, the session fails; false
    /// once it has failed.
    @discardableResult
    public func receiveCiphertext(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard !bytes.isEmpty else { return isOpen }
        guard isOpen else { return false }
        guard BIO_ctrl_pending(incoming) + bytes.count <= receiveLimit else {
            fail("the peer sent more than \(receiveLimit) bytes the session could not take")
            return false
        }
        // A memory BIO takes everything it is given (it grows), or fails for want of memory.
        guard BIO_write(incoming, bytes.baseAddress, Int32(bytes.count)) == Int32(bytes.count) else {
            fail(TLSError.takeQueue(fallback: "BIO_write failed"))
            return false
        }
        return true
    }

    /// Whether ciphertext waits to be sent.
    public var hasCiphertextToSend: Bool { !unsent.isEmpty || BIO_ctrl_pending(outgoing) > 0 }

    /// Hands waiting ciphertext to `write`, which returns how many bytes it took (0 when the
    /// socket would block, or on an error it keeps to itself); stops when `write` takes less
    /// than offered. Returns how many bytes still wait.
    @discardableResult
    public func sendCiphertext(_ write: (UnsafeRawBufferPointer) -> Int) -> Int {
        while true {
            if unsent.isEmpty {
                let pending = Int(BIO_ctrl_pending(outgoing))
                guard pending > 0 else { return 0 }
                unsent = [UInt8](repeating: 0, count: min(pending, Self.maximumBuffered))
                let read = unsent.withUnsafeMutableBytes { BIO_read(outgoing, $0.baseAddress, Int32($0.count)) }
                unsent.removeLast(unsent.count - max(0, Int(read)))
                if unsent.isEmpty { return 0 }
            }
            let taken = max(0, min(unsent.count, unsent.withUnsafeBytes(write)))
            unsent.removeFirst(taken)
            if !unsent.isEmpty { return unsent.count + Int(BIO_ctrl_pending(outgoing)) }
        }
    }

    // MARK: Handshake

    /// Runs the handshake as far as the received ciphertext allows; returns the new state.
    /// Once the handshake completed, does nothing.
    @discardableResult
    public func advance() -> State {
        guard state == .handshaking else { return state }
        ERR_clear_error()
        let result = SSL_do_handshake(ssl)
        if result == 1 {
            handshakeCompleted()
            return state
        }
        let code = SSL_get_error(ssl, result)
        switch code {
        case SSL_ERROR_WANT_READ, SSL_ERROR_WANT_WRITE:
            break
        case SSL_ERROR_ZERO_RETURN, SSL_ERROR_SYSCALL:
            fail(TLSError.takeQueue(fallback: "connection closed during the handshake"))
        default:
            let reason = TLSError.takeQueue(fallback: "handshake error \(code)")
            // A context that aborts on a bad chain (`backend-tls`) says only "certificate verify
            // failed"; the verification's own words say what was wrong.
            let verified = SSL_get_verify_result(ssl)
            if context.verifiesPeer, verified != Int(X509_V_OK) {
                fail("certificate verify failed: \(Self.verifyText(verified))")
            } else {
                fail(reason)
            }
        }
        return state
    }

    /// OpenSSL's words for a verification result (`Hostname mismatch`, ...).
    private static func verifyText(_ result: Int) -> String {
        X509_verify_cert_error_string(result).map { String(cString: $0) } ?? "error \(result)"
    }

    private func handshakeCompleted() {
        protocolVersion = SSL_get_version(ssl).map { String(cString: $0) }
        if let certificate = SSL_get1_peer_certificate(ssl) {
            defer { X509_free(certificate) }
            certificateNotAfter = Certificate.notAfter(certificate)
        } else if context.verifiesPeer {
            fail("certificate verify failed: the server sent no certificate")
            return
        }
        if context.verifiesPeer {
            let result = SSL_get_verify_result(ssl)
            guard result == Int(X509_V_OK) else {
                fail("certificate verify failed: \(Self.verifyText(result))")
                return
            }
        }
        state = .established
    }

    // MARK: Plaintext

    /// Encrypts `bytes` for the peer (they come out of `sendCiphertext`). Only once established;
    /// fails the session when more than `maximumBuffered` bytes would wait.
    public func writePlaintext(_ bytes: [UInt8]) {
        guard state == .established, !bytes.isEmpty else { return }
        guard unsent.count + Int(BIO_ctrl_pending(outgoing)) + bytes.count <= Self.maximumBuffered else {
            fail("more than \(Self.maximumBuffered) bytes to send are waiting")
            return
        }
        ERR_clear_error()
        var written = 0
        let result = bytes.withUnsafeBytes { SSL_write_ex(ssl, $0.baseAddress, $0.count, &written) }
        if result != 1 { fail(TLSError.takeQueue(fallback: "SSL_write failed")) }
    }

    /// Decrypted bytes, at most `limit`; empty when none are complete yet, or when the state
    /// became `.closed` or `.failed`.
    public func readPlaintext(limit: Int = 16 * 1024) -> [UInt8] {
        guard state == .established, limit > 0 else { return [] }
        var plaintext = [UInt8](repeating: 0, count: limit)
        var count = 0
        ERR_clear_error()
        let result = plaintext.withUnsafeMutableBytes { SSL_read_ex(ssl, $0.baseAddress, $0.count, &count) }
        if result == 1 {
            plaintext.removeLast(limit - count)
            return plaintext
        }
        switch SSL_get_error(ssl, 0) {
        case SSL_ERROR_WANT_READ, SSL_ERROR_WANT_WRITE:
            break
        case SSL_ERROR_ZERO_RETURN:
            state = .closed
        default:
            // An end of stream without close_notify is how most servers close; a check reads
            // it as the peer's close, not as an attack on a truncated reply.
            let reason = TLSError.takeQueue(fallback: "connection closed")
            state = reason == "unexpected eof while reading" || reason == "connection closed" ? .closed : .failed(reason)
        }
        return []
    }

    private var isOpen: Bool { state == .handshaking || state == .established }

    private func fail(_ reason: String) {
        state = .failed(reason)
    }
}

// MARK: Resumption (`backend-tls`: a worker resumes its sessions with each backend)

extension TLSClientSession {
    /// Offers `session`, from an earlier connection with the same context and server name, for
    /// resumption; before the handshake. A server that declines makes a full handshake.
    func offer(_ session: TLSResumableSession) {
        _ = SSL_set_session(ssl, session.pointer)
    }

    /// Whether the handshake resumed a session.
    var resumedSession: Bool { SSL_session_reused(ssl) == 1 }

    /// The session to offer the next connection, once established and when the server gave
    /// one that can be resumed (in TLS 1.3, a ticket it sent after the handshake).
    func resumableSession() -> TLSResumableSession? {
        guard state == .established, let session = SSL_get1_session(ssl) else { return nil }
        guard SSL_SESSION_is_resumable(session) == 1 else {
            SSL_SESSION_free(session)
            return nil
        }
        return TLSResumableSession(session)
    }
}

/// An OpenSSL `SSL_SESSION` kept to be resumed, freed with this. Thread: its owner's.
final class TLSResumableSession {
    let pointer: OpaquePointer

    init(_ pointer: OpaquePointer) { self.pointer = pointer }

    deinit { SSL_SESSION_free(pointer) }
}

extension TLSClientSession: TLSRecordSession {}

