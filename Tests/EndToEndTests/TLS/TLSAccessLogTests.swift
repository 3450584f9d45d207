import Foundation
import Glibc
import Testing

extension EndToEnd {
    /// The access log of a terminating listener (issue 23): the TLS version, cipher, server
    /// name, ALPN protocol and client certificate subject of each session, as `openssl s_client`
    /// saw them.
    @Suite struct TLSAccessLogTests {
        @Test func eachLineNamesTheSessionsVersionCipherServerNameALPNAndClientSubject() throws {
            let peers = try TLSTerminationPeers()
            let server = try peers.certificate("logged", names: ["logged.test"], key: .ecdsa)
            let client = try peers.clientCertificate("app-one")
            let backend = try TestBackend(.echo)
            let listen = try Sockets.freeEndpoint()
            let log = peers.folder + "/access.log"
            let proxy = try ConfiguredProxy(yaml: """
                access-log: \(log)
                access-log-format: json
                services:
                  secure:
                    listen: [\(listen)]
                    backends: [\(backend.endpoint)]
                    health: off
                    tls:
                      certificates: [{cert: \(server.cert), key: \(server.key)}]
                      alpn: [redis, http/1.1]
                      client-ca: \(client.ca)
                      client-auth: optional

                """, listen: [listen], folder: peers.folder)
            _ = proxy

            func connect(_ arguments: [String]) throws -> String {
                let run = try SwitchyardProcess.runTool("/usr/bin/openssl", [
                    "s_client", "-connect", listen.description, "-servername", "logged.test", "-CAfile", server.cert,
                ] + arguments, timeout: 30)
                #expect(run.output.contains("Verify return code: 0"), "\(run.output)")
                return run.output
            }
            let first = try connect(["-tls1_3", "-alpn", "redis", "-cert", client.cert, "-key", client.key])
            let second = try connect(["-tls1_2"])
            func cipher(_ output: String) -> String? {
                output.split(separator: "\n").first { $0.contains("Cipher is ") }
                    .flatMap { $0.components(separatedBy: "Cipher is ").last }.map { $0.trimmingCharacters(in: .whitespaces) }
            }

            var lines: [[String: Any]] = []
            #expect(eventually(timeout: 10) {
                let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
                // The harness's readiness probe closes without a handshake: a line without TLS.
                lines = text.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
                    .filter { $0["tls_version"] is String }
                return lines.count >= 2
            }, "\(lines)")
            try #require(lines.count == 2)
            let mutual = try #require(lines.first { $0["tls_version"] as? String == "TLSv1.3" })
            #expect(mutual["server_name"] as? String == "logged.test")
            #expect(mutual["tls_cipher"] as? String == cipher(first), "\(mutual)")
            #expect(mutual["alpn"] as? String == "redis")
            #expect(mutual["client_subject"] as? String == "CN=app-one")
            let plain = try #require(lines.first { $0["tls_version"] as? String == "TLSv1.2" })
            #expect(plain["tls_cipher"] as? String == cipher(second), "\(plain)")
            #expect(plain["alpn"] is NSNull && plain["client_subject"] is NSNull, "\(plain)")
        }
    }
}
