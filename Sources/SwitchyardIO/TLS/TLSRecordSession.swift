import CSwitchyard
import Glibc

/// What reading a session's plaintext gave.
enum TLSReadResult: Equatable {
    /// This many bytes were decrypted into the buffer.
    case bytes(Int)
    /// No whole record is waiting.
    case wantMore
    /// The peer ended its stream: close_notify, or its socket's end after whole records (when
    /// the context ignores a missing close_notify).
    case ended
    /// A bad record, or an end in the middle of one.
    case failed(String)
}

/// The record layer every session here shares, server (`TLSServerSession`) and client
/// (`TLSClientSession`): one `SSL` over two memory BIOs of its own (`TLSError.makeSession`).
/// Ciphertext from the peer goes in with `receiveCiphertext`, ciphertext for the peer comes out
/// with `takeCiphertext(into:)`; once the handshake completed, `readPlaintext(into:)` decrypts
/// and `writePlaintext(_:)` encrypts. Nothing blocks or touches a socket, and nothing allocates
/// per record: OpenSSL grows a memory BIO to the most it ever held and reuses it, and the caller
/// bounds what waits in each.
///
/// Thread: the one thread that owns the session (not `Sendable`).
protocol TLSRecordSession: AnyObject {
    var ssl: OpaquePointer { get }
    /// What the peer sent, for OpenSSL to read. Owned by `ssl`.
    var incoming: OpaquePointer { get }
    /// What OpenSSL wrote, for the peer. Owned by `ssl`.
    var outgoing: OpaquePointer { get }
    /// Copies bytes received from the peer into the session. False when it could not take them.
    func receiveCiphertext(_ bytes: UnsafeRawBufferPointer) -> Bool
}

extension TLSRecordSession {
    /// Copies bytes received from the peer into the session. False when OpenSSL could not take
    /// them (out of memory).
    func receiveCiphertext(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard !bytes.isEmpty else { return true }
        return BIO_write(incoming, bytes.baseAddress, Int32(bytes.count)) == Int32(bytes.count)
    }

    /// The peer's socket reached its end: OpenSSL sees it once it has read what came before.
    func receiveEnd() {
        _ = swy_bio_set_mem_eof_return(incoming, 0)
    }

    /// Ciphertext received and not yet decrypted.
    var pendingCiphertextIn: Int { Int(BIO_ctrl_pending(incoming)) }

    /// Ciphertext written for the peer and not yet taken.
    var pendingCiphertextOut: Int { Int(BIO_ctrl_pending(outgoing)) }

    /// Moves waiting ciphertext into `buffer`; returns how many bytes (0: none waits).
    func takeCiphertext(into buffer: UnsafeMutableRawBufferPointer) -> Int {
        guard pendingCiphertextOut > 0 else { return 0 }
        return max(0, Int(BIO_read(outgoing, buffer.baseAddress, Int32(buffer.count))))
    }

    /// Decrypts into `buffer` what whole records allow.
    func readPlaintext(into buffer: UnsafeMutableRawBufferPointer) -> TLSReadResult {
        var count = 0
        ERR_clear_error()
        if SSL_read_ex(ssl, buffer.baseAddress, buffer.count, &count) == 1 { return .bytes(count) }
        switch SSL_get_error(ssl, 0) {
        case SSL_ERROR_WANT_READ, SSL_ERROR_WANT_WRITE:
            return .wantMore
        case SSL_ERROR_ZERO_RETURN:
            // close_notify, or the socket's end (the context ignores a missing close_notify).
            // An end inside a record (some of it buffered, or bytes after the close) is a cut
            // stream, not its end: a clean end would tell the other side the stream was whole.
            if SSL_has_pending(ssl) == 1 || BIO_ctrl_pending(incoming) > 0 {
                return .failed("the stream ended inside a TLS record")
            }
            return .ended
        default:
            return .failed(TLSError.takeQueue(fallback: "connection closed"))
        }
    }

    /// Encrypts all of `bytes` for the peer (memory BIOs never refuse a write); false when
    /// OpenSSL failed (out of memory, or the session already failed).
    func writePlaintext(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard !bytes.isEmpty else { return true }
        var written = 0
        ERR_clear_error()
        guard SSL_write_ex(ssl, bytes.baseAddress, bytes.count, &written) == 1, written == bytes.count else {
            _ = TLSError.takeQueue(fallback: "")
            return false
        }
        return true
    }

    /// Writes close_notify for the peer (it comes out of `takeCiphertext`).
    func writeCloseNotify() {
        ERR_clear_error()
        _ = SSL_shutdown(ssl)
        _ = TLSError.takeQueue(fallback: "")
    }
}
