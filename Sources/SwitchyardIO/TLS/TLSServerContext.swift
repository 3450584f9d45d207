import CSwitchyard
import Glibc
import SwitchyardCore

/// What a terminating service's handshakes share: one OpenSSL `SSL_CTX` per certificate, all
/// with the service's `tls` settings, and the table that picks one by SNI. Sessions are made
/// from the first (the default); the server name callback moves a session to the context of
/// the certificate its SNI names (`SSL_set_SSL_CTX(3)`, as nginx and HAProxy do).
///
/// Made on the control thread at start and at each reload (which reads the files again, so new
/// handshakes get replaced certificates while open connections keep theirs); immutable after,
/// so every worker makes sessions from it without a lock of ours (OpenSSL's context reference
/// counts are atomic). Ticket keys are the process's `TLSTicketKeys` when given (shared by
/// every worker and service, kept across reloads and takeovers), else the default context's.
/// A ticket resumes only at the service, client-auth and client CA it was issued under: the
/// session id context is a digest of them.
public final class TLSServerContext: @unchecked Sendable {
    /// One certificate as loaded: its DNS names, subject, issuer and when it expires.
    public struct LoadedCertificate: Sendable {
        public let path: String
        public let names: [String]
        /// RFC 2253 text, such as `CN=db.example.com,O=Example`.
        public let subject: String
        public let issuer: String
        /// Seconds since the Unix epoch.
        public let notAfter: Int64?
    }

    let contexts: [OpaquePointer]
    let choice: CertificateChoice
    public let certificates: [LoadedCertificate]
    public let settings: TLSSettings
    /// The keys tickets are made with; nil: OpenSSL's own, per context.
    let ticketKeys: TLSTicketKeys?
    /// The ALPN protocols in wire format (length-prefixed), read by the selection callback.
    private let alpnWire: UnsafeMutableBufferPointer<UInt8>

    private init(contexts: [OpaquePointer], certificates: [LoadedCertificate], settings: TLSSettings, ticketKeys: TLSTicketKeys?) {
        self.contexts = contexts
        self.ticketKeys = ticketKeys
        self.certificates = certificates
        self.settings = settings
        choice = CertificateChoice(names: certificates.map(\.names))
        var wire: [UInt8] = []
        for name in settings.alpn { wire += [UInt8(name.utf8.count)] + Array(name.utf8) }
        let storage = UnsafeMutableBufferPointer<UInt8>.allocate(capacity: max(1, wire.count))
        _ = storage.initialize(from: wire)
        alpnWire = UnsafeMutableBufferPointer(rebasing: storage[0..<wire.count])
    }

    deinit {
        for context in contexts { SSL_CTX_free(context) }
        alpnWire.baseAddress.map { $0.deallocate() }
    }

    /// Loads `settings`' certificates and keys and makes the contexts. Throws a message naming
    /// the file for: a file that cannot be read, a key that is encrypted (there is nobody to ask
    /// for its passphrase) or does not match its certificate, a cipher string OpenSSL takes
    /// nothing from, an unreadable `client-ca`. `scope` (the service's name) keeps its
    /// tickets from resuming at another service sharing `ticketKeys`.
    public static func make(_ settings: TLSSettings, scope: String = "", ticketKeys: TLSTicketKeys? = nil) throws(TLSError) -> TLSServerContext {
        var contexts: [OpaquePointer] = []
        var loaded: [LoadedCertificate] = []
        let sessionContext = sessionIDContext(settings, scope: scope)
        do {
            for certificate in settings.certificates {
                let context = try makeContext(settings, sessionContext: sessionContext)
                contexts.append(context)
                loaded.append(try load(certificate, into: context))
            }
        } catch {
            for context in contexts { SSL_CTX_free(context) }
            throw error
        }
        let made = TLSServerContext(contexts: contexts, certificates: loaded, settings: settings,
                                    ticketKeys: settings.sessionTickets ? ticketKeys : nil)
        let argument = Unmanaged.passUnretained(made).toOpaque()
        for context in contexts {
            // Read by the ticket key callback, whichever context SNI chose.
            _ = SSL_CTX_set_ex_data(context, 0, argument)
            if let keys = made.ticketKeys { keys.install(on: context) }
        }
        swy_ssl_ctx_set_servername_callback(contexts[0], { ssl, _, argument in
            guard let ssl, let argument else { return SSL_TLSEXT_ERR_OK }
            let context = Unmanaged<TLSServerContext>.fromOpaque(argument).takeUnretainedValue()
            let name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name).map { String(cString: $0) }
            let index = context.choice.certificate(for: name)
            if index != 0 { _ = SSL_set_SSL_CTX(ssl, context.contexts[index]) }
            return SSL_TLSEXT_ERR_OK
        }, argument)
        if !settings.alpn.isEmpty {
            for context in contexts {
                SSL_CTX_set_alpn_select_cb(context, { _, selected, selectedLength, offered, offeredLength, argument in
                    guard let argument, let selected, let selectedLength else { return SSL_TLSEXT_ERR_NOACK }
                    let context = Unmanaged<TLSServerContext>.fromOpaque(argument).takeUnretainedValue()
                    var chosen: UnsafeMutablePointer<UInt8>?
                    var length: UInt8 = 0
                    // The server's order of preference first (RFC 7301 leaves the choice to it).
                    let result = SSL_select_next_proto(&chosen, &length, context.alpnWire.baseAddress,
                                                       UInt32(context.alpnWire.count), offered, offeredLength)
                    guard result == OPENSSL_NPN_NEGOTIATED, let chosen else { return SSL_TLSEXT_ERR_NOACK }
                    selected.pointee = UnsafePointer(chosen)
                    selectedLength.pointee = length
                    return SSL_TLSEXT_ERR_OK
                }, argument)
            }
        }
        return made
    }

    /// A server context with the settings every certificate's context shares.
    /// SHA-256 of what a resumed session must not cross: the scope, client-auth and the client
    /// CA file. OpenSSL refuses a ticket whose session id context differs (a full handshake).
    private static func sessionIDContext(_ settings: TLSSettings, scope: String) -> [UInt8] {
        let text = Array("switchyard\0\(scope)\0\(settings.clientAuth)\0\(settings.clientCA ?? "")".utf8)
        var digest = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var length: UInt32 = 0
        guard EVP_Digest(text, text.count, &digest, &length, EVP_sha256(), nil) == 1 else {
            return Array(text.prefix(Int(SSL_MAX_SID_CTX_LENGTH)))
        }
        return Array(digest.prefix(Int(min(length, UInt32(SSL_MAX_SID_CTX_LENGTH)))))
    }

    private static func makeContext(_ settings: TLSSettings, sessionContext: [UInt8]) throws(TLSError) -> OpaquePointer {
        ERR_clear_error()
        guard let context = SSL_CTX_new(TLS_server_method()) else {
            throw TLSError("SSL_CTX_new: \(TLSError.takeQueue(fallback: "out of memory"))")
        }
        func fail(_ message: String) -> TLSError {
            SSL_CTX_free(context)
            return TLSError(message)
        }
        let version = settings.minVersion == .tls13 ? TLS1_3_VERSION : TLS1_2_VERSION
        guard swy_ssl_ctx_set_min_proto_version(context, version) == 1 else {
            throw fail("min-version: \(TLSError.takeQueue(fallback: "refused"))")
        }
        // No renegotiation (a client could make the server redo its costliest work at will); the
        // server's cipher order; a client's end without close_notify is its stream's end (a TCP
        // half-close, as plaintext clients do), not a fatal error that would stop the other
        // direction; a private key's prompt never reaches the terminal.
        SSL_CTX_set_options(context, SWY_SSL_OP_NO_RENEGOTIATION | SWY_SSL_OP_CIPHER_SERVER_PREFERENCE | SWY_SSL_OP_IGNORE_UNEXPECTED_EOF)
        SSL_CTX_set_default_passwd_cb(context) { _, _, _, _ in 0 }
        // Resumption by tickets only: OpenSSL's session cache is a locked table shared by workers.
        _ = swy_ssl_ctx_set_session_cache_mode(context, Int(SSL_SESS_CACHE_OFF))
        if !settings.sessionTickets {
            SSL_CTX_set_options(context, SWY_SSL_OP_NO_TICKET)
            _ = SSL_CTX_set_num_tickets(context, 0)
        }
        _ = SSL_CTX_set_session_id_context(context, sessionContext, UInt32(sessionContext.count))
        let ciphers = settings.ciphers ?? TLSSettings.defaultCiphers
        if SSL_CTX_set_cipher_list(context, ciphers) != 1 {
            throw fail("ciphers '\(ciphers)': OpenSSL knows none of them (\(TLSError.takeQueue(fallback: "no cipher match")))")
        }
        if let suites = settings.ciphersuites, SSL_CTX_set_ciphersuites(context, suites) != 1 {
            throw fail("ciphersuites '\(suites)': OpenSSL knows none of them (\(TLSError.takeQueue(fallback: "no cipher match")))")
        }
        if let clientCA = settings.clientCA, settings.clientAuth != .none {
            guard SSL_CTX_load_verify_locations(context, clientCA, nil) == 1,
                  let names = SSL_load_client_CA_file(clientCA) else {
                throw fail("client-ca \(clientCA): \(TLSError.takeQueue(fallback: "no certificate in it"))")
            }
            SSL_CTX_set_client_CA_list(context, names)
            let mode = SSL_VERIFY_PEER | (settings.clientAuth == .required ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0)
            SSL_CTX_set_verify(context, mode, nil)
        }
        return context
    }

    /// Loads one certificate (with its chain) and its key into `context` (also a client
    /// context's, for `backend-tls`).
    static func load(_ certificate: TLSSettings.Certificate, into context: OpaquePointer) throws(TLSError) -> LoadedCertificate {
        guard SSL_CTX_use_certificate_chain_file(context, certificate.cert) == 1 else {
            throw TLSError("certificate \(certificate.cert): \(TLSError.takeQueue(fallback: "cannot be read"))")
        }
        if let text = try? readTextFile(certificate.key), text.contains("ENCRYPTED") {
            throw TLSError("key \(certificate.key) is encrypted: there is no one to ask for its passphrase; store it decrypted (openssl pkey -in ENCRYPTED -out KEY) with tight file permissions")
        }
        guard SSL_CTX_use_PrivateKey_file(context, certificate.key, SSL_FILETYPE_PEM) == 1 else {
            let reason = TLSError.takeQueue(fallback: "cannot be read")
            if reason.contains("values mismatch") || reason.contains("key values mismatch") {
                throw TLSError("key \(certificate.key) does not match certificate \(certificate.cert)")
            }
            throw TLSError("key \(certificate.key): \(reason)")
        }
        guard SSL_CTX_check_private_key(context) == 1 else {
            _ = TLSError.takeQueue(fallback: "")
            throw TLSError("key \(certificate.key) does not match certificate \(certificate.cert)")
        }
        guard let x509 = SSL_CTX_get0_certificate(context) else {
            throw TLSError("certificate \(certificate.cert): no certificate in it")
        }
        // The file is the leaf, then each certificate's issuer: clients get the chain as written.
        var chain: OpaquePointer?
        _ = swy_ssl_ctx_get0_chain_certs(context, &chain)
        if let chain {
            var issued = x509
            for index in 0..<OPENSSL_sk_num(chain) {
                guard let issuer = OPENSSL_sk_value(chain, index).map(OpaquePointer.init) else { continue }
                guard X509_check_issued(issuer, issued) == X509_V_OK else {
                    throw TLSError("certificate \(certificate.cert): the chain is out of order: certificate \(index + 2) in the file did not issue certificate \(index + 1) (the leaf comes first, then each issuer)")
                }
                issued = issuer
            }
        }
        return LoadedCertificate(path: certificate.cert, names: Certificate.dnsNames(x509),
                                 subject: Certificate.nameText(X509_get_subject_name(x509)),
                                 issuer: Certificate.nameText(X509_get_issuer_name(x509)), notAfter: Certificate.notAfter(x509))
    }
}

/// Facts read from an X.509 certificate.
enum Certificate {
    /// Its `notAfter` in seconds since the Unix epoch; nil when OpenSSL cannot read it.
    static func notAfter(_ certificate: OpaquePointer) -> Int64? {
        guard let notAfter = X509_get0_notAfter(certificate) else { return nil }
        var time = tm()
        guard ASN1_TIME_to_tm(notAfter, &time) == 1 else { return nil }
        return CertificateExpiry.secondsSinceEpoch(
            year: Int(time.tm_year) + 1900, month: Int(time.tm_mon) + 1, day: Int(time.tm_mday),
            hour: Int(time.tm_hour), minute: Int(time.tm_min), second: Int(time.tm_sec))
    }

    /// A subject or issuer name as RFC 2253 text (`CN=a,O=b`); empty when there is none.
    static func nameText(_ name: OpaquePointer?) -> String {
        guard let name, let memory = BIO_new(BIO_s_mem()) else { return "" }
        defer { BIO_free(memory) }
        guard X509_NAME_print_ex(memory, name, 0, swy_xn_flag_rfc2253()) >= 0 else { return "" }
        var text = [UInt8](repeating: 0, count: Int(BIO_ctrl_pending(memory)))
        let read = text.withUnsafeMutableBytes { BIO_read(memory, $0.baseAddress, Int32($0.count)) }
        return String(decoding: text.prefix(max(0, Int(read))), as: UTF8.self)
    }

    /// The DNS names of its subjectAltName; when it has none, its subject's common name.
    static func dnsNames(_ certificate: OpaquePointer) -> [String] {
        var names: [String] = []
        if let raw = X509_get_ext_d2i(certificate, NID_subject_alt_name, nil, nil) {
            let stack = OpaquePointer(raw)
            for index in 0..<OPENSSL_sk_num(stack) {
                guard let entry = OPENSSL_sk_value(stack, index) else { continue }
                var length: Int32 = 0
                if let bytes = swy_general_name_dns(entry.assumingMemoryBound(to: GENERAL_NAME.self), &length) {
                    names.append(String(decoding: UnsafeBufferPointer(start: bytes, count: Int(length)), as: UTF8.self))
                }
            }
            GENERAL_NAMES_free(stack)
        }
        if names.isEmpty, let subject = X509_get_subject_name(certificate) {
            var text = [CChar](repeating: 0, count: 256)
            let length = X509_NAME_get_text_by_NID(subject, NID_commonName, &text, Int32(text.count))
            if length > 0 { names.append(String(decoding: text.prefix(Int(length)).map { UInt8(bitPattern: $0) }, as: UTF8.self)) }
        }
        return names
    }
}
