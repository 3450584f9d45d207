import Foundation
import Testing
@testable import SwitchyardCore
@testable import SwitchyardIO

/// The contexts of TLS to backends (`backend-tls`): a session made from one verifies the chain
/// and the name (failing with OpenSSL's own words), carries records through the shared record
/// layer, takes a backend's end without close_notify as its stream's end; and the table the
/// workers read keeps the previous configuration's contexts one reload longer.
@Suite(.serialized) struct BackendTLSContextTests {
    @Test func aSessionVerifiesTheNameAndSaysWhyItFailed() throws {
        let folder = try TLSTestFolder()
        let cert = try folder.makeCertificate(for: "backend.test")
        let server = try TLSServerContext.make(TLSSettings(certificates: [TLSServerSessionTests.entry(folder, "backend.test")]))
        let context = try TLSContext.backend(BackendTLSSettings(ca: .file(cert)))
        let misnamed = try TLSClientSession(context: context, serverName: "elsewhere.test")
        TLSServerSessionTests.pump(misnamed, try TLSServerSession(context: server))
        #expect(misnamed.state == .failed("certificate verify failed: hostname mismatch"), "\(misnamed.state)")
        // Another CA: the chain fails.
        let other = try folder.makeCertificate(for: "other.test")
        let untrusting = try TLSClientSession(context: try TLSContext.backend(BackendTLSSettings(ca: .file(other))), serverName: "backend.test")
        TLSServerSessionTests.pump(untrusting, try TLSServerSession(context: server))
        guard case let .failed(reason) = untrusting.state else {
            Issue.record("an untrusted chain was taken: \(untrusting.state)")
            return
        }
        #expect(reason.hasPrefix("certificate verify failed: "), "\(reason)")
    }

    @Test func theSystemsCAsAreTheDefaultAndDoNotTrustASelfSignedBackend() throws {
        let folder = try TLSTestFolder()
        try folder.makeCertificate(for: "backend.test")
        let server = try TLSServerContext.make(TLSSettings(certificates: [TLSServerSessionTests.entry(folder, "backend.test")]))
        let client = try TLSClientSession(context: try TLSContext.backend(BackendTLSSettings()), serverName: "backend.test")
        TLSServerSessionTests.pump(client, try TLSServerSession(context: server))
        guard case let .failed(reason) = client.state else {
            Issue.record("a self-signed certificate was trusted by the system's CAs: \(client.state)")
            return
        }
        #expect(reason.hasPrefix("certificate verify failed: "), "\(reason)")
        // Without verification the same backend is taken.
        let trusting = try TLSClientSession(context: try TLSContext.backend(BackendTLSSettings(verify: false)), serverName: "backend.test")
        TLSServerSessionTests.pump(trusting, try TLSServerSession(context: server))
        #expect(trusting.state == .established, "\(trusting.state)")
    }

    @Test func recordsCrossThroughTheRecordLayerAndABackendsEndIsTheStreamsEnd() throws {
        let folder = try TLSTestFolder()
        let cert = try folder.makeCertificate(for: "backend.test")
        let server = try TLSServerSession(context: try TLSServerContext.make(TLSSettings(certificates: [TLSServerSessionTests.entry(folder, "backend.test")])))
        let client = try TLSClientSession(context: try TLSContext.backend(BackendTLSSettings(ca: .file(cert))), serverName: "backend.test")
        #expect(TLSServerSessionTests.pump(client, server) == .completed)
        #expect(client.state == .established)
        #expect(Array("ping".utf8).withUnsafeBytes { client.writePlaintext($0) })
        TLSServerSessionTests.pump(client, server)
        var buffer = [UInt8](repeating: 0, count: 64)
        #expect(buffer.withUnsafeMutableBytes { server.readPlaintext(into: $0) } == .bytes(4))
        #expect(Array("pong".utf8).withUnsafeBytes { server.writePlaintext($0) })
        let count = buffer.withUnsafeMutableBytes { server.takeCiphertext(into: $0) }
        #expect(count > 0 && buffer.withUnsafeBytes { client.receiveCiphertext(UnsafeRawBufferPointer(rebasing: $0[0..<count])) })
        var read = [UInt8](repeating: 0, count: 64)
        #expect(read.withUnsafeMutableBytes { client.readPlaintext(into: $0) } == .bytes(4))
        #expect(Array(read.prefix(4)) == Array("pong".utf8))
        // The backend's socket ends without close_notify: the end of its stream, not an error.
        client.receiveEnd()
        #expect(read.withUnsafeMutableBytes { client.readPlaintext(into: $0) } == .ended)
    }

    @Test func theTableKeepsThePreviousConfigurationsContextsOneReloadLonger() throws {
        let (a, b, c) = (BackendTLSSettings(serverName: .name("a.test"), verify: false), BackendTLSSettings(serverName: .name("b.test"), verify: false),
                         BackendTLSSettings(serverName: .name("c.test"), verify: false))
        let table = BackendTLSContexts()
        table.replace(with: [a: try TLSContext.backend(a)])
        let first = try #require(table.tableIfNewer(than: 0))
        #expect(Set(first.table.keys) == [a])
        #expect(table.tableIfNewer(than: first.version) == nil, "unchanged: nothing to take")
        table.replace(with: [b: try TLSContext.backend(b)])
        #expect(Set(try #require(table.tableIfNewer(than: first.version)).table.keys) == [a, b], "a worker may still hold a's snapshot")
        table.replace(with: [c: try TLSContext.backend(c)])
        #expect(Set(try #require(table.tableIfNewer(than: first.version)).table.keys) == [b, c])
    }
}
