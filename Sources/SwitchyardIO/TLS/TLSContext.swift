import CSwitchyard
import SwitchyardCore

/// A failure of OpenSSL, with its own words (its error queue's reason, such as
/// `wrong version number`, or a verification result such as `Hostname mismatch`).
public struct TLSError: Error, Sendable, CustomStringConvertible {
    public let message: String

    public init(_ message: String) { self.message = message }

    public var description: String { message }

    /// Empties this thread's OpenSSL error queue and names its first (root) error: the reason
    /// text when OpenSSL has one, else its full error string; `fallback` when the queue is empty.
    static func takeQueue(fallback: String) -> String {
        let first = ERR_get_error()
        while ERR_get_error() != 0 {}
        guard first != 0 else { return fallback }
        if let reason = ERR_reason_error_string(first) { return String(cString: reason) }
        var text = [CChar](repeating: 0, count: 256)
        ERR_error_string_n(first, &text, text.count)
        return String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// A new `SSL` of `context` reading from and writing to two memory BIOs of its own (it
    /// frees them with itself): the shape of every session here, client and server.
    static func makeSession(_ context: OpaquePointer) throws(TLSError) -> (ssl: OpaquePointer, incoming: OpaquePointer, outgoing: OpaquePointer) {
        ERR_clear_error()
        guard let ssl = SSL_new(context) else {
            throw TLSError("SSL_new: \(TLSError.takeQueue(fallback: "out of memory"))")
        }
        let incoming = BIO_new(BIO_s_mem())
        let outgoing = BIO_new(BIO_s_mem())
        guard let incoming, let outgoing else {
            BIO_free(incoming)
            BIO_free(outgoing)
            SSL_free(ssl)
            throw TLSError("BIO_new: \(TLSError.takeQueue(fallback: "out of memory"))")
        }
        SSL_set_bio(ssl, incoming, outgoing)
        return (ssl, incoming, outgoing)
    }
}

/// An OpenSSL `SSL_CTX`: what every session made from it shares (protocol, trusted CAs).
/// Immutable once made, so any thread may make sessions from it (OpenSSL locks the context's
/// own reference counts); the sessions themselves belong to one thread.
public final class TLSContext: @unchecked Sendable {
    let context: OpaquePointer
    /// Whether sessions verify the peer's chain (and name) against the loaded CAs.
    public let verifiesPeer: Bool

    private init(context: OpaquePointer, verifiesPeer: Bool) {
        self.context = context
        self.verifiesPeer = verifiesPeer
    }

    deinit { SSL_CTX_free(context) }

    /// A client context: TLS 1.2 or later; with `caFile` (PEM, one or more certificates) the
    /// sessions verify the server's chain against it, without it they complete the handshake
    /// and verify nothing. Throws when the file cannot be read or holds no certificate.
    public static func client(caFile: String?) throws(TLSError) -> TLSContext {
        ERR_clear_error()
        guard let context = SSL_CTX_new(TLS_client_method()) else {
            throw TLSError("SSL_CTX_new: \(TLSError.takeQueue(fallback: "out of memory"))")
        }
        let made = TLSContext(context: context, verifiesPeer: caFile != nil)
        guard swy_ssl_ctx_set_min_proto_version(context, TLS1_2_VERSION) == 1 else {
            throw TLSError("SSL_CTX_set_min_proto_version: \(TLSError.takeQueue(fallback: "refused"))")
        }
        // The chain is verified in any case (the result is read after the handshake), never
        // aborting it: a health check reports the certificate's expiry even when it fails.
        SSL_CTX_set_verify(context, SSL_VERIFY_NONE, nil)
        if let caFile {
            guard SSL_CTX_load_verify_locations(context, caFile, nil) == 1 else {
                throw TLSError("cannot load CA file \(caFile): \(TLSError.takeQueue(fallback: "no certificate in it"))")
            }
        }
        return made
    }

    /// A context for connections to backends (`backend-tls`): TLS 1.2 or later, no
    /// renegotiation, a backend's end without close_notify taken as its stream's end (as a
    /// plaintext backend's FIN). With `verify`, the chain must lead to `ca` (a PEM file, or
    /// OpenSSL's default paths for `system`) and, when the session has a server name, carry
    /// that name; `abortsOnBadChain` fails the handshake itself with an alert to the backend (a
    /// connection), else the result is read once it completed (a health check, which reports
    /// the certificate's expiry either way). `cert` and `key` are the client certificate for
    /// backends that ask. `caFile` replaces `ca` (a health check's own `ca-file`).
    ///
    /// Throws, naming the file, for a CA file that holds no certificate, a certificate or key
    /// that cannot be read, a key that is encrypted or does not match its certificate.
    public static func backend(_ settings: BackendTLSSettings, caFile: String? = nil, abortsOnBadChain: Bool = true) throws(TLSError) -> TLSContext {
        ERR_clear_error()
        guard let context = SSL_CTX_new(TLS_client_method()) else {
            throw TLSError("SSL_CTX_new: \(TLSError.takeQueue(fallback: "out of memory"))")
        }
        let made = TLSContext(context: context, verifiesPeer: settings.verify)
        guard swy_ssl_ctx_set_min_proto_version(context, TLS1_2_VERSION) == 1 else {
            throw TLSError("SSL_CTX_set_min_proto_version: \(TLSError.takeQueue(fallback: "refused"))")
        }
        SSL_CTX_set_options(context, SWY_SSL_OP_NO_RENEGOTIATION | SWY_SSL_OP_IGNORE_UNEXPECTED_EOF)
        SSL_CTX_set_default_passwd_cb(context) { _, _, _, _ in 0 }
        if settings.verify {
            let authorities = caFile.map(BackendTLSSettings.Authorities.file) ?? settings.ca
            switch authorities {
            case .system:
                guard SSL_CTX_set_default_verify_paths(context) == 1 else {
                    throw TLSError("ca system: \(TLSError.takeQueue(fallback: "OpenSSL's default verify paths cannot be read"))")
                }
            case let .file(path):
                guard SSL_CTX_load_verify_locations(context, path, nil) == 1 else {
                    throw TLSError("ca \(path): \(TLSError.takeQueue(fallback: "no certificate in it"))")
                }
            }
            SSL_CTX_set_verify(context, abortsOnBadChain ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, nil)
        } else {
            SSL_CTX_set_verify(context, SSL_VERIFY_NONE, nil)
        }
        if let cert = settings.cert, let key = settings.key {
            _ = try TLSServerContext.load(TLSSettings.Certificate(cert: cert, key: key), into: context)
        }
        return made
    }
}
