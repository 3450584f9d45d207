import Foundation
import Testing

extension EndToEnd {
    /// TLS in health checks (issue 22) through the binary, against `openssl s_server`s with
    /// certificates the tests make: `type: tls` (handshake, verification, certificate expiry on
    /// /metrics) and `check-tls` (the check's send/expect inside TLS).
    @Suite struct HealthTLS {
        static func rows(_ proxy: ConfiguredProxy) -> [String: [String: Any]] {
            (try? proxy.admin.backends()) ?? [:]
        }

        static func health(_ proxy: ConfiguredProxy, _ backend: TCPEndpoint) -> (health: String, lastCheck: String)? {
            guard let row = rows(proxy)[backend.description], let health = row["health"] as? String else { return nil }
            return (health, row["last_check"] as? String ?? "")
        }

        @Test func aTLSBackendIsUpAndACertificateAboutToExpireShowsOnTheMetrics() throws {
            let servers = try TLSServers()
            let soonCA = try servers.certificate(for: "soon.test", days: 1)
            let soon = try servers.serve("soon.test")
            try servers.certificate(for: "later.test", days: 90)
            let later = try servers.serve("later.test")
            let listen = try Sockets.freeEndpoint()
            let metrics = try Sockets.freeEndpoint()
            let proxy = try ConfiguredProxy(yaml: """
                metrics: "\(metrics)"
                services:
                  soon:
                    listen: ["\(listen)"]
                    health: {type: tls, server-name: soon.test, ca-file: "\(soonCA)", interval: 100ms, timeout: 2s, rise: 1, fall: 1}
                    backends: ["\(soon)"]
                  later:
                    listen: ["\(try Sockets.freeEndpoint())"]
                    health: {type: tls, interval: 100ms, timeout: 2s, rise: 1, fall: 1}
                    backends: ["\(later)"]

                """, listen: [listen])
            #expect(eventually(timeout: 10) {
                Self.health(proxy, soon)?.lastCheck.hasPrefix("TLS handshake (TLSv1.3 with soon.test, certificate expires in 2") == true
            }, "\(Self.rows(proxy))")
            #expect(Self.health(proxy, soon)?.health == "up")
            // No server name for an IP address: no SNI, and nothing verified without ca-file.
            #expect(eventually(timeout: 10) {
                Self.health(proxy, later)?.lastCheck.hasPrefix("TLS handshake (TLSv1.3, certificate expires in 89d) in ") == true
            }, "\(Self.rows(proxy))")
            #expect(Self.health(proxy, later)?.health == "up")

            let text = try httpGet(metrics, "/metrics")
            let soonLeft = try #require(metricValue(text, #"switchyard_backend_certificate_expiry_seconds{service="soon",backend="\#(soon)"}"#), "\(text)")
            #expect(soonLeft < 86_400 && soonLeft > 86_400 - 600, "below a day: \(soonLeft)")
            let laterLeft = try #require(metricValue(text, #"switchyard_backend_certificate_expiry_seconds{service="later",backend="\#(later)"}"#))
            #expect(laterLeft > 89 * 86_400 && laterLeft <= 90 * 86_400)
            #expect(text.components(separatedBy: "# TYPE switchyard_backend_certificate_expiry_seconds gauge").count == 2)
        }

        @Test func aWrongCAOrServerNameIsDownWithOpenSSLsReason() throws {
            let servers = try TLSServers()
            let backendCA = try servers.certificate(for: "backend.test", days: 30)
            let tlsBackend = try servers.serve("backend.test")
            let strangerCA = try servers.certificate(for: "stranger.test", days: 30)
            let plain = try TestBackend(.echo)
            let listen = try Sockets.freeEndpoint()
            let proxy = try ConfiguredProxy(yaml: """
                services:
                  wrong-ca:
                    listen: ["\(listen)"]
                    health: {type: tls, server-name: backend.test, ca-file: "\(strangerCA)", interval: 100ms, timeout: 2s, rise: 1, fall: 1}
                    backends: ["\(tlsBackend)"]
                  wrong-name:
                    listen: ["\(try Sockets.freeEndpoint())"]
                    health: {type: tls, server-name: other.test, ca-file: "\(backendCA)", interval: 100ms, timeout: 2s, rise: 1, fall: 1}
                    backends: ["\(tlsBackend)"]
                  not-tls:
                    listen: ["\(try Sockets.freeEndpoint())"]
                    health: {type: tls, interval: 100ms, timeout: 2s, rise: 1, fall: 1}
                    backends: ["\(plain.endpoint)"]

                """, listen: [listen])
            func rowsOf(_ service: String) -> [[String: Any]] {
                let reply = (try? proxy.admin.send("show backends \(service) json").jsonObject()) ?? [:]
                return reply["backends"] as? [[String: Any]] ?? []
            }
            func lastCheck(_ service: String) -> String? {
                guard let row = rowsOf(service).first, row["health"] as? String == "down" else { return nil }
                return row["last_check"] as? String
            }
            #expect(eventually(timeout: 10) { lastCheck("wrong-ca") != nil && lastCheck("wrong-name") != nil && lastCheck("not-tls") != nil },
                    "\(rowsOf("wrong-ca")) \(rowsOf("wrong-name")) \(rowsOf("not-tls"))")
            #expect(lastCheck("wrong-ca") == "TLS handshake failed: certificate verify failed: self-signed certificate")
            #expect(lastCheck("wrong-name") == "TLS handshake failed: certificate verify failed: hostname mismatch")
            // An echo server hands the ClientHello back: not a server's answer.
            #expect(lastCheck("not-tls")?.hasPrefix("TLS handshake failed: ") == true, "\(lastCheck("not-tls") ?? "")")
            plain.stop()
        }

        @Test func checkTLSRunsSendAndExpectInsideTLSAndABackendMayTurnItOff() throws {
            let servers = try TLSServers()
            try servers.certificate(for: "www.test", days: 30)
            let www = try servers.serve("www.test")
            let plainlyChecked = try servers.serve("www.test")
            let listen = try Sockets.freeEndpoint()
            let metrics = try Sockets.freeEndpoint()
            // Two alike TLS servers: one checked inside TLS, one (check-tls: false) in plain text.
            func yaml(wwwCheckTLS: String) -> String {
                """
                metrics: "\(metrics)"
                services:
                  web:
                    listen: ["\(listen)"]
                    health:
                      check-tls: true
                      server-name: www.test
                      send: "GET / HTTP/1.0\\r\\n\\r\\n"
                      expect: "HTTP/1.0 200 ok"
                      expect-match: prefix
                      interval: 100ms
                      timeout: 2s
                      rise: 1
                      fall: 1
                    backends:
                      - {address: "\(www)", check-tls: \(wwwCheckTLS)}
                      - {address: "\(plainlyChecked)", check-tls: false}

                """
            }
            let proxy = try ConfiguredProxy(yaml: yaml(wwwCheckTLS: "true"), listen: [listen])
            let plainName = plainlyChecked.description
            func row(_ name: String) -> (health: String, lastCheck: String)? {
                guard let row = Self.rows(proxy)[name], let health = row["health"] as? String else { return nil }
                return (health, row["last_check"] as? String ?? "")
            }
            #expect(eventually(timeout: 10) {
                row(www.description)?.lastCheck.hasPrefix("expected reply in ") == true && row(plainName)?.health == "down"
            }, "\(Self.rows(proxy))")
            #expect(row(www.description)?.health == "up")
            // Checked in the clear, the plain server's answer is not what the check expects.
            #expect(row(plainName)?.lastCheck.hasPrefix("step 2 (expect prefix 'HTTP/1.0 200 ok'): got") == true,
                    "\(row(plainName)?.lastCheck ?? "")")
            let expirySeries = #"switchyard_backend_certificate_expiry_seconds{service="web",backend="\#(www)"}"#
            #expect(metricValue(try httpGet(metrics, "/metrics"), expirySeries) != nil)
            #expect(metricValue(try httpGet(metrics, "/metrics"), #"switchyard_backend_certificate_expiry_seconds{service="web",backend="\#(plainName)"}"#) == nil,
                    "never checked over TLS")

            // A reload turns TLS off for the first one too: checked in plain text, it goes down,
            // and its certificate's expiry is no longer shown.
            try proxy.rewrite(yaml(wwwCheckTLS: "false"))
            let reload = try proxy.admin.send("reload")
            #expect(reload.description.contains("web: backend \(www) check-tls true -> false"), "\(reload)")
            #expect(eventually(timeout: 10) { row(www.description)?.health == "down" }, "\(Self.rows(proxy))")
            #expect(metricValue(try httpGet(metrics, "/metrics"), expirySeries) == nil)
        }
    }
}
