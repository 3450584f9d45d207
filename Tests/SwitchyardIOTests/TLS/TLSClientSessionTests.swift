import Foundation
import Glibc
import Testing
@testable import SwitchyardCore
@testable import SwitchyardIO

/// `TLSClientSession` (through `HealthProbeTLS`, which moves its bytes over a non-blocking
/// socket as the health checker does) against real `openssl s_server`s on loopback, with
/// certificates the tests make with the `openssl` CLI (issue 22).
@Suite(.serialized) struct TLSClientSessionTests {
    /// A non-blocking socket connected to 127.0.0.1:`port`.
    static func connect(port: UInt16) throws -> Int32 {
        let fd = try TestDescriptors.connect(port: port)
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        return fd
    }

    /// Runs `tls` on `fd` until `done` holds or it fails; returns the failure, or `timeout`
    /// after `limit`.
    static func run(_ tls: HealthProbeTLS, fd: Int32, limit: Duration = .seconds(5), until done: () -> Bool) -> String? {
        let clock = ContinuousClock()
        let deadline = clock.now + limit
        while clock.now < deadline {
            if let failure = tls.exchange(fd: fd) { return failure }
            if done() { return nil }
            var entry = pollfd(fd: fd, events: tls.pollEvents, revents: 0)
            _ = poll(&entry, 1, 50)
        }
        return "timeout"
    }

    static func handshake(port: UInt16, caFile: String?, serverName: String?) throws -> (tls: HealthProbeTLS, failure: String?) {
        let fd = try connect(port: port)
        defer { close(fd) }
        let tls = try HealthProbeTLS(context: try TLSContext.client(caFile: caFile), serverName: serverName)
        let failure = run(tls, fd: fd) { tls.isEstablished }
        return (tls, failure)
    }

    @Test func aHandshakeWithoutCAFileCompletesAndReadsTheExpiry() throws {
        let folder = try TLSTestFolder()
        try folder.makeCertificate(for: "backend.test", days: 1)
        let port = try folder.startServer(for: "backend.test")
        let before = secondsSinceEpoch()
        let (tls, failure) = try Self.handshake(port: port, caFile: nil, serverName: "backend.test")
        #expect(failure == nil)
        #expect(tls.isEstablished)
        #expect(tls.session.protocolVersion == "TLSv1.3")
        // `-days 1`: notAfter is a day after the certificate was made, a moment before `before`.
        let notAfter = try #require(tls.session.certificateNotAfter)
        #expect((before + 86_400 - 120...before + 86_400 + 5).contains(notAfter), "notAfter \(notAfter), now \(before)")
        #expect(["TLSv1.3 with backend.test, certificate expires in 23h", "TLSv1.3 with backend.test, certificate expires in 24h"]
            .contains(tls.handshakeSummary(now: before)))
    }

    @Test func theCheckSpeaksInsideTLS() throws {
        let folder = try TLSTestFolder()
        let caFile = try folder.makeCertificate(for: "www.test")
        let port = try folder.startServer(for: "www.test")
        let fd = try Self.connect(port: port)
        defer { close(fd) }
        let tls = try HealthProbeTLS(context: try TLSContext.client(caFile: caFile), serverName: "www.test")
        #expect(Self.run(tls, fd: fd) { tls.isEstablished } == nil)
        #expect(tls.send(Array("GET / HTTP/1.0\r\n\r\n".utf8), fd: fd) == nil)
        var reply: [UInt8] = []
        // s_server -www answers with a status page and closes.
        let failure = Self.run(tls, fd: fd) {
            reply += tls.takeReceived()
            return tls.peerClosed
        }
        #expect(failure == nil)
        #expect(String(decoding: reply, as: UTF8.self).hasPrefix("HTTP/1.0 200 ok\r\n"))
        #expect(!tls.hasUnsentBytes)
    }

    @Test func aCertificateFromAnotherCAFailsWithOpenSSLsReasonAndStillShowsItsExpiry() throws {
        let folder = try TLSTestFolder()
        try folder.makeCertificate(for: "backend.test", days: 10)
        let otherCA = try folder.makeCertificate(for: "other.test")
        let port = try folder.startServer(for: "backend.test")
        let (tls, failure) = try Self.handshake(port: port, caFile: otherCA, serverName: "backend.test")
        #expect(failure == "TLS handshake failed: certificate verify failed: self-signed certificate")
        #expect(!tls.isEstablished)
        #expect(tls.session.certificateNotAfter != nil, "the expiry is known even when verification fails")
    }

    @Test func aWrongServerNameFailsVerification() throws {
        let folder = try TLSTestFolder()
        let caFile = try folder.makeCertificate(for: "backend.test")
        let port = try folder.startServer(for: "backend.test")
        #expect(try Self.handshake(port: port, caFile: caFile, serverName: "backend.test").failure == nil)
        let (_, failure) = try Self.handshake(port: port, caFile: caFile, serverName: "wrong.test")
        #expect(failure == "TLS handshake failed: certificate verify failed: hostname mismatch")
    }

    @Test func aPlainTCPServerIsAPromptFailureNotAHang() throws {
        // A server that answers anything in plain text: a TLS record it cannot be.
        let talker = try TestBackend(.answering(Array("HTTP/1.1 400 Bad Request\r\n\r\n".utf8)))
        defer { talker.close() }
        let clock = ContinuousClock()
        let started = clock.now
        let (tls, failure) = try Self.handshake(port: talker.port, caFile: nil, serverName: "backend.test")
        #expect(failure == "TLS handshake failed: wrong version number")
        #expect(clock.now - started < .seconds(4), "failed on the reply, not at the time limit")
        #expect(tls.session.certificateNotAfter == nil)
        // One that reads the hello and closes without a word.
        let closer = try TestBackend(.answering(nil))
        defer { closer.close() }
        let closed = try Self.handshake(port: closer.port, caFile: nil, serverName: nil).failure
        #expect(closed?.hasPrefix("TLS handshake failed: ") == true || closed == "connection closed during the TLS handshake", "\(closed ?? "none")")
    }

    @Test func garbageBeyondTheBoundFailsTheSessionCleanly() throws {
        let context = try TLSContext.client(caFile: nil)
        let session = try TLSClientSession(context: context, serverName: "backend.test")
        session.advance()
        #expect(session.hasCiphertextToSend, "the ClientHello")
        // A record header announcing a huge handshake message, then more than the bound.
        let garbage = [UInt8](repeating: 0x16, count: TLSClientSession.maximumBuffered + 1)
        garbage.withUnsafeBytes { session.receiveCiphertext($0) }
        guard case let .failed(reason) = session.state else {
            Issue.record("state \(session.state)")
            return
        }
        #expect(reason.contains("more than \(TLSClientSession.maximumBuffered) bytes"))
        // Garbage within the bound is OpenSSL's failure, with its words.
        let second = try TLSClientSession(context: context, serverName: nil)
        second.advance()
        [UInt8](repeating: 0xFF, count: 4096).withUnsafeBytes { second.receiveCiphertext($0) }
        #expect(second.advance() == .failed("wrong version number"))
    }

    @Test func randomBytesFromThePeerEndInAFailureOrAWaitNeverACrash() throws {
        let context = try TLSContext.client(caFile: nil)
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        func next() -> UInt64 {
            state ^= state << 13
            state ^= state >> 7
            state ^= state << 17
            return state
        }
        var failures = 0
        for round in 0..<300 {
            let session = try TLSClientSession(context: context, serverName: "backend.test")
            session.advance()
            session.sendCiphertext { $0.count }
            // Half the rounds start like a real handshake record (type 22, TLS 1.2) so that
            // OpenSSL reads past the header into the garbage.
            var bytes = (0..<Int(next() % 2048)).map { _ in UInt8(truncatingIfNeeded: next()) }
            if round % 2 == 0 { bytes = [0x16, 0x03, 0x03, UInt8(truncatingIfNeeded: next() % 64), UInt8(truncatingIfNeeded: next())] + bytes }
            bytes.withUnsafeBytes { session.receiveCiphertext($0) }
            if round % 3 == 0 { session.receiveEnd() }
            switch session.advance() {
            case .failed: failures += 1
            case .handshaking: break
            case .established, .closed: Issue.record("round \(round): garbage made a session")
            }
            #expect(session.readPlaintext().isEmpty)
        }
        #expect(failures > 150, "most garbage is refused at once: \(failures) of 300")
    }

    @Test func anUnreadableCAFileIsAnError() {
        #expect {
            _ = try TLSContext.client(caFile: "/nonexistent/ca.pem")
        } throws: { error in
            (error as? TLSError)?.message.hasPrefix("cannot load CA file /nonexistent/ca.pem: ") == true
        }
    }
}

/// The health checker's TLS checks (issue 22) against real TLS servers.
@Suite(.serialized) struct HealthCheckerTLSTests {
    @Test func aServerThatSpeaksFirstInsideTLSPassesAnExpectOnlyCheck() throws {
        let folder = try TLSTestFolder()
        try folder.makeCertificate(for: "mail.test", days: 30)
        let port = try folder.startBannerServer(for: "mail.test", banner: "220 mail.test ready")
        let registry = BackendRegistry(backends: [try BackendSpec(parsing: "127.0.0.1:\(port)")], algorithm: .roundRobin)
        var config = HealthCheckConfig(interval: .milliseconds(100), timeout: .seconds(2), rise: 1, fall: 1,
                                       expect: Array("220 ".utf8), expectMatch: .prefix)
        config.tls = HealthCheckTLS(checkTLS: true, serverName: "mail.test")
        let checker = try HealthChecker(registry: registry, config: config)
        try checker.start()
        defer { checker.stop() }
        // The banner comes right behind the handshake: judged at once, not left for a timeout.
        let passed = timeUntil(.seconds(5)) { checker.lastCheckText(backendID: 0)?.hasPrefix("expected reply in ") == true }
        #expect(passed != nil, "\(checker.lastCheckText(backendID: 0) ?? "no check yet")")
        let notAfter = try #require(checker.checkFigures(backendID: 0)?.certificateNotAfter)
        #expect(notAfter > secondsSinceEpoch() + 29 * 86_400)
    }

    @Test func typeTLSRecordsTheExpiryAndTheHandshakeText() throws {
        let folder = try TLSTestFolder()
        let caFile = try folder.makeCertificate(for: "backend.test", days: 1)
        let port = try folder.startServer(for: "backend.test")
        let registry = BackendRegistry(backends: [try BackendSpec(parsing: "127.0.0.1:\(port)")], algorithm: .roundRobin)
        var config = HealthCheckConfig(interval: .milliseconds(100), timeout: .seconds(2), rise: 1, fall: 1)
        config.tls = HealthCheckTLS(handshakeOnly: true, serverName: "backend.test", caFile: caFile)
        let checker = try HealthChecker(registry: registry, config: config)
        try checker.start()
        defer { checker.stop() }
        let passed = timeUntil(.seconds(5)) { checker.lastCheckText(backendID: 0)?.hasPrefix("TLS handshake (TLSv1.3 with backend.test, certificate expires in 2") == true }
        #expect(passed != nil, "\(checker.lastCheckText(backendID: 0) ?? "no check yet")")
        #expect(checker.checkFigures(backendID: 0)?.lastSucceeded == true)
        let left = try #require(checker.checkFigures(backendID: 0)?.certificateNotAfter) - secondsSinceEpoch()
        #expect(left <= 86_400 && left > 86_400 - 600, "\(left)")
    }
}
