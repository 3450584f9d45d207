import Testing
@testable import SwitchyardCore

/// `show certificates [json]`: one row per certificate file, the services presenting it, the
/// soonest to expire first.
@Suite struct ShowCertificatesTests {
    static func controller(_ rows: [CertificateRow]) -> AdminController {
        AdminController(services: { [] }, processStats: {
            ProcessStats(uptime: .zero, workers: 1, relayMode: "copy", balance: "-", openConnections: 0, totalConnections: 0, bytesFromClients: 0, bytesToClients: 0)
        }, certificates: { rows })
    }

    static let rows = [
        CertificateRow(path: "/etc/b.pem", names: ["b.test", "*.b.test"], subject: "CN=b.test", issuer: "CN=Example CA",
                       notAfter: 1_796_371_200, secondsLeft: 30 * 86_400, services: ["web"]),
        CertificateRow(path: "/etc/a.pem", names: ["a.test"], subject: "CN=a.test", issuer: "CN=a.test",
                       notAfter: 1_767_225_600, secondsLeft: -86_400 * 3, services: ["redis"]),
        CertificateRow(path: "/etc/b.pem", names: ["b.test", "*.b.test"], subject: "CN=b.test", issuer: "CN=Example CA",
                       notAfter: 1_796_371_200, secondsLeft: 30 * 86_400, services: ["api"]),
    ]

    @Test func aFileUsedByTwoServicesIsOneRowAndTheSoonestToExpireComesFirst() {
        let reply = Self.controller(Self.rows).execute(.showCertificates(json: false), now: .now)
        guard case let .reply(answer) = reply else { Issue.record("no reply"); return }
        #expect(answer.ok)
        #expect(answer.body.count == 3, "\(answer.body)")
        #expect(answer.body[0].hasPrefix("NOT AFTER"))
        #expect(answer.body[1].contains("2026-01-01T00:00:00Z") && answer.body[1].contains("expired 3d ago") && answer.body[1].contains("redis"))
        #expect(answer.body[2].contains("2026-12-04T08:00:00Z") && answer.body[2].contains("expires in 30d"))
        #expect(answer.body[2].contains("api,web") && answer.body[2].contains("b.test,*.b.test") && answer.body[2].contains("CN=Example CA"))
    }

    @Test func theJSONFormNamesEveryField() {
        guard case let .reply(answer) = Self.controller(Self.rows).execute(.showCertificates(json: true), now: .now) else { return }
        #expect(answer.body == [
            #"{"certificates":[{"path":"/etc/a.pem","names":["a.test"],"subject":"CN=a.test","issuer":"CN=a.test","not_after":"2026-01-01T00:00:00Z","expires_in_seconds":-259200,"services":["redis"]},"#
                + #"{"path":"/etc/b.pem","names":["b.test","*.b.test"],"subject":"CN=b.test","issuer":"CN=Example CA","not_after":"2026-12-04T08:00:00Z","expires_in_seconds":2592000,"services":["api","web"]}]}"#,
        ])
    }

    @Test func withoutTerminatingServicesItSaysSo() {
        guard case let .reply(answer) = Self.controller([]).execute(.showCertificates(json: false), now: .now) else { return }
        #expect(answer.body == ["no certificates (no service terminates TLS)"])
        #expect(AdminCommand.showCertificates(json: true).isReadOnly)
    }

    @Test(arguments: [Int64(0), 86_399, 951_782_400, 1_796_371_200, 4_102_444_799, -1])
    func timestampsReadBackAsTheSecondsTheyWereMadeFrom(_ seconds: Int64) {
        let text = CertificateExpiry.timestamp(seconds)
        let parts = text.split { "-T:Z".contains($0) }.map { Int($0)! }
        #expect(CertificateExpiry.secondsSinceEpoch(year: parts[0], month: parts[1], day: parts[2], hour: parts[3], minute: parts[4], second: parts[5]) == seconds, "\(text)")
    }
}
