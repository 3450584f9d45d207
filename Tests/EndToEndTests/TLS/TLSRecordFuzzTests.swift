import Foundation
import Glibc
import Testing

extension EndToEnd {
    /// The record path fuzzed through the binary (issue 23): `Scripts/tls-record-fuzz` sends
    /// intact and damaged records (bit flips, inserted bytes, a record twice, a wrong length, a
    /// cut inside a record, garbage) after real TLS 1.2 and 1.3 handshakes. Damage must end in a
    /// reset with only a prefix of what was sent ever echoed; intact records in random fragments
    /// must come back whole and end with close_notify; and the listener serves on.
    @Suite struct TLSRecordFuzzTests {
        @Test func damagedRecordsEndInAResetNeverBecomeBytesAndIntactOnesComeBackWhole() throws {
            let peers = try TLSTerminationPeers()
            let certificate = try peers.certificate("fuzz", names: ["fuzz.test"], key: .ecdsa)
            let backend = try TestBackend(.echo)
            let listen = try Sockets.freeEndpoint()
            let proxy = try ConfiguredProxy(yaml: """
                workers: 2
                services:
                  fuzzed:
                    listen: [\(listen)]
                    backends: [\(backend.endpoint)]
                    health: off
                    tls:
                      certificates: [{cert: \(certificate.cert), key: \(certificate.key)}]

                """, listen: [listen], folder: peers.folder)

            let script = SwitchyardProcess.repositoryRoot.appendingPathComponent("Scripts/tls-record-fuzz").path
            let run = try SwitchyardProcess.runTool("/usr/bin/env", [
                "python3", script, listen.host, String(listen.port), certificate.cert, "fuzz.test",
                "--cases", "70", "--seconds", "60", "--seed", "23",
            ], timeout: 120)
            let line = run.output.split(separator: "\n").last.map(String.init) ?? ""
            let result = try #require(try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], "\(run.output)")
            let tally = result["tally"] as? [String: [String: Int]] ?? [:]
            #expect(result["violation_count"] as? Int == 0, "\(line)")
            // Every kind of damage was tried at least once, even on a slow machine.
            #expect(Set(tally.keys) == ["intact", "flip", "insert", "duplicate", "length", "truncate", "garbage"], "\(line)")

            // The listener serves on, and nothing stays open.
            let after = try peers.exchange(listen, serverName: "fuzz.test", trusting: certificate.cert, version: "1.3",
                                           bytes: 100_000, closeNotify: true)
            #expect(after.received == after.sent && after.end == "close_notify", "\(after.fields)")
            #expect(eventually(timeout: 10) {
                (try? proxy.admin.send("show stats json").jsonObject()["open_connections"] as? Int) == 0
            })
        }
    }
}
