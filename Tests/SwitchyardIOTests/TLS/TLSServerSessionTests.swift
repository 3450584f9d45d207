import CSwitchyard
import Foundation
import Glibc
import Testing
@testable import SwitchyardCore
@testable import SwitchyardIO

/// `TLSServerContext` and `TLSServerSession` against `TLSClientSession`, both over memory
/// BIOs and joined in memory: certificate choice by SNI, records both ways, close_notify, and
/// the reasons failures are counted under.
@Suite(.serialized) struct TLSServerSessionTests {
    /// The folder's certificate `name` as a `tls` certificate entry.
    static func entry(_ folder: TLSTestFolder, _ name: String) -> TLSSettings.Certificate {
        .init(cert: "\(folder.path)/\(name)-cert.pem", key: "\(folder.path)/\(name)-key.pem")
    }

    /// Moves bytes between the two until neither has any to give; returns the server's progress.
    @discardableResult
    static func pump(_ client: TLSClientSession, _ server: TLSServerSession) -> TLSServerSession.HandshakeProgress {
        var progress = TLSServerSession.HandshakeProgress.inProgress
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        for _ in 0..<20 {
            var moved = false
            client.advance()
            client.sendCiphertext { bytes in
                moved = moved || !bytes.isEmpty
                return server.receiveCiphertext(bytes) ? bytes.count : 0
            }
            if progress == .inProgress { progress = server.advanceHandshake() }
            let count = buffer.withUnsafeMutableBytes { server.takeCiphertext(into: $0) }
            if count > 0 {
                moved = true
                buffer.withUnsafeBytes { client.receiveCiphertext(UnsafeRawBufferPointer(rebasing: $0[0..<count])) }
            }
            if !moved { break }
        }
        client.advance()
        return progress
    }

    @Test func theCertificateNamedBySNIAnswersAndBytesCrossBothWaysUntilCloseNotify() throws {
        let folder = try TLSTestFolder()
        try folder.makeCertificate(for: "first.test")
        let second = try folder.makeCertificate(for: "second.test")
        let context = try TLSServerContext.make(TLSSettings(certificates: [Self.entry(folder, "first.test"), Self.entry(folder, "second.test")]))
        #expect(context.certificates.map(\.names) == [["first.test"], ["second.test"]])
        // The client trusts only the second certificate and checks the name.
        let client = try TLSClientSession(context: try TLSContext.client(caFile: second), serverName: "second.test")
        let server = try TLSServerSession(context: context)
        #expect(Self.pump(client, server) == .completed)
        #expect(client.state == .established, "\(client.state)")
        #expect(server.serverName == "second.test")
        #expect(server.protocolVersion == "TLSv1.3")

        client.writePlaintext(Array("ping".utf8))
        Self.pump(client, server)
        var buffer = [UInt8](repeating: 0, count: 64)
        let read = buffer.withUnsafeMutableBytes { server.readPlaintext(into: $0) }
        #expect(read == .bytes(4))
        #expect(Array(buffer.prefix(4)) == Array("ping".utf8))
        #expect(Array("pong".utf8).withUnsafeBytes { server.writePlaintext($0) })
        server.writeCloseNotify()
        Self.pump(client, server)
        #expect(client.readPlaintext() == Array("pong".utf8))
        #expect(client.readPlaintext().isEmpty)
        #expect(client.state == .closed, "the server's close_notify ends the client's stream")
        // The client's end without close_notify is its stream's end too.
        server.receiveEnd()
        #expect(buffer.withUnsafeMutableBytes { server.readPlaintext(into: $0) } == .ended)
    }

    @Test func garbageFailsTheHandshakeAsProtocol() throws {
        let folder = try TLSTestFolder()
        try folder.makeCertificate(for: "only.test")
        let server = try TLSServerSession(context: try TLSServerContext.make(TLSSettings(certificates: [Self.entry(folder, "only.test")])))
        #expect(Array("GET / HTTP/1.1\r\n\r\n".utf8).withUnsafeBytes { server.receiveCiphertext($0) })
        guard case let .failed(reason, text) = server.advanceHandshake() else {
            Issue.record("garbage was taken for a handshake")
            return
        }
        #expect(reason == .protocol, "\(text)")
    }

    @Test func encryptedAndMismatchedKeysAreRefusedNamingTheFile() throws {
        let folder = try TLSTestFolder()
        try folder.makeCertificate(for: "a.test")
        try folder.makeCertificate(for: "b.test")
        let mixed = TLSSettings.Certificate(cert: "\(folder.path)/a.test-cert.pem", key: "\(folder.path)/b.test-key.pem")
        do {
            _ = try TLSServerContext.make(TLSSettings(certificates: [mixed]))
            Issue.record("a key of another certificate was accepted")
        } catch {
            #expect(error.message == "key \(mixed.key) does not match certificate \(mixed.cert)")
        }
        let locked = "\(folder.path)/locked-key.pem"
        try TLSTestFolder.run("/usr/bin/openssl", ["pkey", "-in", "\(folder.path)/a.test-key.pem", "-aes256", "-passout", "pass:x", "-out", locked])
        do {
            _ = try TLSServerContext.make(TLSSettings(certificates: [.init(cert: mixed.cert, key: locked)]))
            Issue.record("an encrypted key was accepted")
        } catch {
            #expect(error.message.hasPrefix("key \(locked) is encrypted"), "\(error.message)")
        }
        var settings = TLSSettings(certificates: [Self.entry(folder, "a.test")])
        settings.ciphers = "NO-SUCH-CIPHER"
        #expect(throws: TLSError.self) { try TLSServerContext.make(settings) }
    }

    /// OpenSSL's reason codes (and the alerts a client sends) to the metrics' reasons.
    @Test func failureReasonsArePinned() {
        let table: [(Int32, Int, TLSHandshakeFailure)] = [
            (SSL_R_NO_SHARED_CIPHER, 0, .noSharedCipher),
            (SSL_R_UNSUPPORTED_PROTOCOL, 0, .noSharedCipher),
            (SSL_R_VERSION_TOO_LOW, 0, .noSharedCipher),
            (SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE, 0, .badCertificate),
            (SSL_R_SSLV3_ALERT_BAD_CERTIFICATE, 0, .badCertificate),
            (SSL_R_TLSV1_ALERT_UNKNOWN_CA, 0, .unknownCA),
            (SSL_R_CERTIFICATE_VERIFY_FAILED, Int(X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT), .unknownCA),
            (SSL_R_CERTIFICATE_VERIFY_FAILED, Int(X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY), .unknownCA),
            (SSL_R_CERTIFICATE_VERIFY_FAILED, Int(X509_V_ERR_CERT_HAS_EXPIRED), .badCertificate),
            (SSL_R_WRONG_VERSION_NUMBER, 0, .protocol),
            (0, 0, .protocol),
        ]
        for (reason, verify, expected) in table {
            #expect(TLSServerSession.classify(reason: reason, verifyResult: verify) == expected, "reason \(reason)")
        }
    }
}
