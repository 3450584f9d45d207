import CSwitchyard
import Glibc
import SwitchyardCore

/// One terminated TLS connection over memory BIOs, for a worker's ring: ciphertext received
/// from the client goes in with `receiveCiphertext` (the provided buffer goes back at once),
/// `advanceHandshake()` runs the handshake as far as it allows, then decrypted bytes come out
/// with `readPlaintext(into:)` and the backend's bytes go in with `writePlaintext(_:)`; what to
/// send the client comes out with `takeCiphertext(into:)` (the record layer, `TLSRecordSession`).
/// Nothing blocks or touches a socket.
///
/// Memory: the `SSL` object and its two memory BIOs, made once per connection; OpenSSL grows a
/// memory BIO to the most it ever held and reuses it, and the worker bounds what waits in each
/// (`TLSRelayState.bufferLimit`), so a flowing connection allocates nothing per record.
///
/// Thread: the worker's thread that accepted the connection (not `Sendable`).
final class TLSServerSession {
    enum HandshakeProgress: Equatable {
        case inProgress
        case completed
        case failed(TLSHandshakeFailure, String)
    }

    typealias ReadResult = TLSReadResult

    let context: TLSServerContext
    let ssl: OpaquePointer
    /// What the client sent, for OpenSSL to read. Owned by `ssl`.
    let incoming: OpaquePointer
    /// What OpenSSL wrote, for the client. Owned by `ssl`.
    let outgoing: OpaquePointer

    init(context: TLSServerContext) throws(TLSError) {
        self.context = context
        (ssl, incoming, outgoing) = try TLSError.makeSession(context.contexts[0])
        SSL_set_accept_state(ssl)
    }

    deinit { SSL_free(ssl) }

    // MARK: Handshake

    func advanceHandshake() -> HandshakeProgress {
        ERR_clear_error()
        let result = SSL_do_handshake(ssl)
        if result == 1 { return .completed }
        let code = SSL_get_error(ssl, result)
        switch code {
        case SSL_ERROR_WANT_READ, SSL_ERROR_WANT_WRITE:
            return .inProgress
        case SSL_ERROR_ZERO_RETURN:
            return .failed(.protocol, "the client closed during the handshake")
        case SSL_ERROR_SYSCALL where ERR_peek_error() == 0:
            return .failed(.protocol, "the client closed during the handshake")
        default:
            let error = ERR_peek_error()
            let failure = Self.classify(reason: error == 0 ? 0 : ERR_GET_REASON(error), verifyResult: SSL_get_verify_result(ssl))
            return .failed(failure, TLSError.takeQueue(fallback: "handshake error \(code)"))
        }
    }

    /// Whether the handshake resumed a session (from a ticket).
    var resumedSession: Bool { SSL_session_reused(ssl) == 1 }

    /// The server name the client asked for (SNI), if any.
    var serverName: String? { SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name).map { String(cString: $0) } }

    /// The negotiated protocol, such as `TLSv1.3`.
    /// The access log's fields for the completed handshake (strings made here, once).
    var accessLogFields: AccessLogTLS {
        let cipher = SSL_get_current_cipher(ssl).flatMap { SSL_CIPHER_get_name($0) }.map { String(cString: $0) } ?? "unknown"
        var protocolBytes: UnsafePointer<UInt8>?
        var length: UInt32 = 0
        SSL_get0_alpn_selected(ssl, &protocolBytes, &length)
        let alpn = protocolBytes.map { String(decoding: UnsafeBufferPointer(start: $0, count: Int(length)), as: UTF8.self) }
        var subject: String?
        if let certificate = SSL_get0_peer_certificate(ssl) {
            subject = Certificate.nameText(X509_get_subject_name(certificate))
        }
        return AccessLogTLS(version: protocolVersion, cipher: cipher, alpn: alpn.flatMap { $0.isEmpty ? nil : $0 }, clientSubject: subject)
    }

    var protocolVersion: String { SSL_get_version(ssl).map { String(cString: $0) } ?? "unknown" }

    /// The metrics' reason for an OpenSSL error reason code (`ERR_GET_REASON`) of a failed
    /// handshake: its own, or an alert the client sent (reason `SSL_AD_REASON_OFFSET + alert`).
    static func classify(reason: Int32, verifyResult: Int) -> TLSHandshakeFailure {
        switch reason {
        case SSL_R_NO_SHARED_CIPHER, SSL_R_NO_SHARED_GROUPS, SSL_R_UNSUPPORTED_PROTOCOL, SSL_R_NO_PROTOCOLS_AVAILABLE,
             SSL_R_VERSION_TOO_LOW, SSL_R_NO_SUITABLE_SIGNATURE_ALGORITHM:
            return .noSharedCipher
        case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE, SSL_R_SSLV3_ALERT_BAD_CERTIFICATE, SSL_R_SSLV3_ALERT_UNSUPPORTED_CERTIFICATE,
             SSL_R_SSLV3_ALERT_CERTIFICATE_REVOKED, SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED, SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN:
            return .badCertificate
        case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
            return .unknownCA
        case SSL_R_CERTIFICATE_VERIFY_FAILED:
            switch Int32(verifyResult) {
            case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT, X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY,
                 X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT, X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN, X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
                return .unknownCA
            default:
                return .badCertificate
            }
        default:
            return .protocol
        }
    }
}

extension TLSServerSession: TLSRecordSession {}
