import Foundation
import Glibc
import Testing

extension EndToEnd {
    /// `show certificates [json]` (issue 23): each certificate file the terminating services
    /// loaded, once, with the services presenting it; a reload shows the replaced file.
    @Suite struct TLSCertificateListTests {
        /// `openssl x509`'s own reading of `field` (`enddate`, `issuer`, `subject`).
        static func openssl(_ cert: String, _ field: String) throws -> String {
            let run = try SwitchyardProcess.runTool("/usr/bin/openssl", ["x509", "-in", cert, "-noout", "-\(field)", "-nameopt", "RFC2253", "-dateopt", "iso_8601"])
            guard run.status == 0, let value = run.output.split(separator: "=", maxSplits: 1).last else { throw HarnessError("openssl x509: \(run.output)") }
            return value.trimmingCharacters(in: .whitespacesAndNewlines)
        }

        @Test func everyCertificateIsListedOnceWithItsServicesNamesIssuerAndExpiryAndAReloadShowsTheNewFile() throws {
            let peers = try TLSTerminationPeers()
            let shared = try peers.certificate("shared", names: ["a.test", "b.test"], key: .ecdsa)
            let own = try peers.certificate("own", names: ["c.test"], key: .rsa)
            let backend = try TestBackend(.echo)
            let listens = try (0..<3).map { _ in try Sockets.freeEndpoint() }
            func service(_ name: String, _ listen: TCPEndpoint, _ certificate: (cert: String, key: String)) -> String {
                """
                  \(name):
                    listen: [\(listen)]
                    backends: [\(backend.endpoint)]
                    health: off
                    tls:
                      certificates: [{cert: \(certificate.cert), key: \(certificate.key)}]

                """
            }
            let yaml = "services:\n" + service("alpha", listens[0], shared) + service("beta", listens[1], shared) + service("gamma", listens[2], own)
            let proxy = try ConfiguredProxy(yaml: yaml, listen: listens, folder: peers.folder)

            func listing() throws -> [[String: Any]] {
                try proxy.admin.send("show certificates json").jsonObject()["certificates"] as? [[String: Any]] ?? []
            }
            var rows = try listing()
            #expect(rows.count == 2, "\(rows)")
            let sharedRow = rows.first { $0["path"] as? String == shared.cert }
            #expect(sharedRow?["services"] as? [String] == ["alpha", "beta"])
            #expect(sharedRow?["names"] as? [String] == ["a.test", "b.test"])
            #expect(sharedRow?["issuer"] as? String == (try Self.openssl(shared.cert, "issuer")))
            #expect(sharedRow?["subject"] as? String == "CN=a.test")
            let expiry = try Self.openssl(shared.cert, "enddate").replacingOccurrences(of: " ", with: "T")
            #expect(sharedRow?["not_after"] as? String == expiry)
            let left = sharedRow?["expires_in_seconds"] as? Int ?? 0
            #expect(left > 86_400 && left <= 2 * 86_400, "\(left)")
            #expect(rows.first { $0["path"] as? String == own.cert }?["services"] as? [String] == ["gamma"])

            let text = try proxy.admin.send("show certificates")
            #expect(text.isOK && text.body.count == 3, "\(text.body)")
            #expect(text.body.contains { $0.contains("alpha,beta") && $0.contains("a.test,b.test") && $0.contains(expiry) }, "\(text.body)")

            // The file is replaced and reloaded: the listing is what new handshakes get.
            try peers.certificate("own", names: ["d.test"], key: .ecdsa)
            #expect(try proxy.admin.send("reload").isOK)
            rows = try listing()
            #expect(rows.first { $0["path"] as? String == own.cert }?["names"] as? [String] == ["d.test"], "\(rows)")
        }
    }
}
