import Foundation
import Glibc
import Testing

extension EndToEnd {
    /// TLS termination (`tls:` on a service, README "TLS termination") through the real binary.
    @Suite(.serialized, .timeLimit(.minutes(4))) struct TLSTermination {
        /// A terminating service in front of `backend` with `certificates` (cert, key) and `extra`
        /// keys, plus a metrics listener.
        static func proxy(_ peers: TLSTerminationPeers, backend: TCPEndpoint, certificates: [(cert: String, key: String)],
                          extra: String = "", workers: Int = 2, clientCA: String? = nil, clientAuth: String = "none",
                          alpn: [String] = []) throws -> (ConfiguredProxy, listen: TCPEndpoint, metrics: TCPEndpoint) {
            let listen = try Sockets.freeEndpoint(), metrics = try Sockets.freeEndpoint()
            let proxy = try ConfiguredProxy(yaml: yaml(listen: listen, metrics: metrics, backend: backend, certificates: certificates,
                                                       extra: extra, workers: workers, clientCA: clientCA, clientAuth: clientAuth,
                                                       alpn: alpn),
                                            listen: [listen], folder: peers.folder)
            return (proxy, listen, metrics)
        }

        /// The usual setup: one certificate for `name` and an echo backend behind a terminating
        /// service (`proxy` with its other arguments). Every part is returned so that it lives
        /// as long as the test holds it.
        struct EchoSetup {
            let peers: TLSTerminationPeers
            let certificate: (cert: String, key: String)
            let backend: TestBackend
            let proxy: ConfiguredProxy
            let listen: TCPEndpoint
            let metrics: TCPEndpoint
        }

        static func echo(_ name: String, key: TLSTerminationPeers.KeyType, extra: String = "", workers: Int = 2,
                         alpn: [String] = []) throws -> EchoSetup {
            let peers = try TLSTerminationPeers()
            let certificate = try peers.certificate(name, names: ["\(name).test"], key: key)
            let backend = try TestBackend(.echo)
            let (proxy, listen, metrics) = try proxy(peers, backend: backend.endpoint, certificates: [certificate], extra: extra,
                                                     workers: workers, alpn: alpn)
            return EchoSetup(peers: peers, certificate: certificate, backend: backend, proxy: proxy, listen: listen, metrics: metrics)
        }

        static func yaml(listen: TCPEndpoint, metrics: TCPEndpoint, backend: TCPEndpoint, certificates: [(cert: String, key: String)],
                         extra: String = "", workers: Int = 2, clientCA: String? = nil, clientAuth: String = "none",
                         alpn: [String] = []) -> String {
            let list = certificates.map { "{cert: \($0.cert), key: \($0.key)}" }.joined(separator: ", ")
            return """
                workers: \(workers)
                metrics: \(metrics)
                services:
                  secure:
                    listen: [\(listen)]
                    backends: [\(backend)]
                    health: off
                \(extra)    tls:
                      certificates: [\(list)]
                      client-auth: \(clientAuth)
                      alpn: [\(alpn.joined(separator: ", "))]
                \(clientCA.map { "      client-ca: \($0)\n" } ?? "")
                """
        }

        /// The subject `openssl s_client` was shown by `endpoint` for `serverName`.
        static func subjectShown(_ endpoint: TCPEndpoint, serverName: String) throws -> String {
            let output = try SwitchyardProcess.runTool("/usr/bin/openssl", [
                "s_client", "-connect", endpoint.description, "-brief", "-servername", serverName,
            ], timeout: 30).output
            return output.split(separator: "\n").first { $0.hasPrefix("Peer certificate: ") }.map { String($0.dropFirst(18)) } ?? output
        }

        @Test func aReloadServesReplacedCertificatesToNewHandshakesWhileAStreamGoesOn() throws {
            let peers = try TLSTerminationPeers()
            let old = try peers.certificate("old", names: ["service.test"], key: .ecdsa)
            let backend = try TestBackend(.echo)
            let listen = try Sockets.freeEndpoint(), metrics = try Sockets.freeEndpoint()
            let proxy = try ConfiguredProxy(yaml: Self.yaml(listen: listen, metrics: metrics, backend: backend.endpoint, certificates: [old]),
                                            listen: [listen], folder: peers.folder)
            #expect(try Self.subjectShown(listen, serverName: "service.test") == "CN = service.test")
            // A long exchange under the old certificate, going on across the reload.
            let stream = BackgroundTask {
                let outcome = try peers.exchange(listen, serverName: "service.test", trusting: old.cert, version: "1.3",
                                                 bytes: 48 << 20, closeNotify: true)
                guard outcome.received == outcome.sent, outcome.end == "close_notify" else { throw HarnessError("stream: \(outcome.fields)") }
            }
            #expect(eventually(timeout: 10) { (try? proxy.admin.send("show stats json").jsonObject()["open_connections"] as? Int) == 1 })
            // A new certificate in place of the old: new handshakes get it.
            let new = try peers.certificate("new", names: ["service.test", "renewed.test"], key: .rsa)
            try proxy.rewrite(Self.yaml(listen: listen, metrics: metrics, backend: backend.endpoint, certificates: [new]))
            #expect(try proxy.admin.send("reload").isOK)
            #expect(try Self.subjectShown(listen, serverName: "renewed.test") == "CN = service.test")
            #expect(try peers.exchange(listen, serverName: "renewed.test", trusting: new.cert, version: "1.2", bytes: 1 << 20,
                                       closeNotify: false).receivedBytes == 1 << 20)
            // A key that does not match is refused by the reload, and the certificate in force stays.
            try proxy.rewrite(Self.yaml(listen: listen, metrics: metrics, backend: backend.endpoint, certificates: [(new.cert, old.key)]))
            let refused = try proxy.admin.send("reload")
            #expect(!refused.isOK && "\(refused)".contains("does not match certificate"), "\(refused)")
            #expect(try peers.exchange(listen, serverName: "renewed.test", trusting: new.cert, version: "1.3", bytes: 1 << 16,
                                       closeNotify: true).receivedBytes == 1 << 16)
            #expect(stream.join(timeout: 120) == nil)
        }

        @Test func everyByteCrossesBothWaysWithHalfCloseOverTLS12And13AndTheCertificateTheSNINames() throws {
            let peers = try TLSTerminationPeers()
            let fallback = try peers.certificate("fallback", names: ["fallback.test"], key: .ecdsa)
            let rsa = try peers.certificate("rsa", names: ["rsa.test", "*.rsa.test"], key: .rsa)
            let ecdsa = try peers.certificate("ecdsa", names: ["ecdsa.test"], key: .ecdsa)
            let backend = try TestBackend(.echo)
            let (proxy, listen, metrics) = try Self.proxy(peers, backend: backend.endpoint, certificates: [fallback, rsa, ecdsa])
            _ = proxy
            let cases: [(name: String, trust: String, version: String, bytes: Int, notify: Bool)] = [
                ("rsa.test", rsa.cert, "1.3", 3 << 20, true),
                ("www.rsa.test", rsa.cert, "1.2", 2 << 20, false),
                ("ecdsa.test", ecdsa.cert, "1.2", 1 << 20, true),
                ("ecdsa.test", ecdsa.cert, "1.3", 4 << 20, false),
                ("other.test", fallback.cert, "1.3", 1 << 20, true),
            ]
            for item in cases {
                // The client checks the certificate against the one file it trusts, for the name it asked.
                let outcome = try peers.exchange(listen, serverName: item.name == "other.test" ? "fallback.test" : item.name,
                                                 trusting: item.trust, version: item.version, bytes: item.bytes, closeNotify: item.notify)
                #expect(outcome.version == "TLSv\(item.version)", "\(item.name)")
                #expect(outcome.receivedBytes == item.bytes, "\(item.name) TLS \(item.version)")
                #expect(outcome.received == outcome.sent, "\(item.name) TLS \(item.version): the echo differs")
                // The backend half-closed after the client's end reached it; that end came back as close_notify.
                #expect(outcome.end == "close_notify", "\(item.name) TLS \(item.version)")
            }
            var text = ""
            #expect(eventually(timeout: 5, interval: 0.1) {
                text = (try? httpGet(metrics, "/metrics")) ?? ""
                return metricValue(text, #"switchyard_tls_handshakes_total{service="secure",version="TLSv1.3",result="success"}"#) == 3
                    && metricValue(text, #"switchyard_tls_handshakes_total{service="secure",version="TLSv1.2",result="success"}"#) == 2
            }, "\(text.split(separator: "\n").filter { $0.contains("tls") })")
            // The certificates were made for 2 days.
            let expiry = metricValue(text, #"switchyard_tls_certificate_expiry_seconds{service="secure",certificate="\#(rsa.cert)",name="rsa.test"}"#)
            #expect(expiry.map { $0 > 86_400 && $0 <= 2 * 86_400 } == true, "\(String(describing: expiry))")
        }

        @Test func opensslSClientWithoutSNIGetsTheFirstCertificate() throws {
            let peers = try TLSTerminationPeers()
            let first = try peers.certificate("first", names: ["first.test"], key: .rsa)
            let second = try peers.certificate("second", names: ["second.test"], key: .ecdsa)
            let backend = try TestBackend(.echo)
            let (proxy, listen, _) = try Self.proxy(peers, backend: backend.endpoint, certificates: [first, second])
            _ = proxy
            for (arguments, subject) in [(["-noservername"], "first.test"), (["-servername", "second.test"], "second.test")] {
                let run = try SwitchyardProcess.runTool("/usr/bin/openssl", [
                    "s_client", "-connect", listen.description, "-brief", "-tls1_2",
                ] + arguments, timeout: 30)
                #expect(run.output.contains("Protocol version: TLSv1.2"), "\(run.output)")
                #expect(run.output.contains("CN = \(subject)"), "\(run.output)")
            }
        }

        @Test func alpnPicksTheFirstOfTheServicesProtocolsTheClientOffers() throws {
            let setup = try Self.echo("only", key: .ecdsa, alpn: ["redis", "http/1.1"])
            let listen = setup.listen
            for (offered, expected) in [("http/1.1,redis", "ALPN protocol: redis"), ("h2,http/1.1", "ALPN protocol: http/1.1"),
                                        ("h2", "No ALPN negotiated")] {
                let output = try SwitchyardProcess.runTool("/usr/bin/openssl", [
                    "s_client", "-connect", listen.description, "-servername", "only.test", "-alpn", offered,
                ], timeout: 30).output
                #expect(output.contains(expected), "offered \(offered): \(output.split(separator: "\n").filter { $0.contains("ALPN") })")
                #expect(output.contains("Verify return code") || output.contains("Protocol"), "the handshake completed")
            }
        }

        @Test func clientCertificatesAreRequiredAndCheckedAgainstTheClientCA() throws {
            let peers = try TLSTerminationPeers()
            let server = try peers.certificate("server", names: ["server.test"], key: .rsa)
            let client = try peers.clientCertificate("client")
            let stranger = try peers.certificate("stranger", names: ["stranger.test"], key: .ecdsa)
            let backend = try TestBackend(.echo)
            let (proxy, listen, metrics) = try Self.proxy(peers, backend: backend.endpoint, certificates: [server],
                                                          extra: "", clientCA: client.ca, clientAuth: "required")
            _ = proxy
            func connect(_ credentials: [String]) throws -> String {
                try SwitchyardProcess.runTool("/usr/bin/openssl", [
                    "s_client", "-connect", listen.description, "-brief", "-tls1_2", "-servername", "server.test",
                ] + credentials, timeout: 30).output
            }
            #expect(try connect(["-cert", client.cert, "-key", client.key]).contains("CONNECTION ESTABLISHED"))
            #expect(!(try connect(["-cert", stranger.cert, "-key", stranger.key]).contains("CONNECTION ESTABLISHED")))
            #expect(!(try connect([]).contains("CONNECTION ESTABLISHED")))
            var text = ""
            #expect(eventually(timeout: 5, interval: 0.1) {
                text = (try? httpGet(metrics, "/metrics")) ?? ""
                return metricValue(text, #"switchyard_tls_handshakes_total{service="secure",version="TLSv1.2",result="success"}"#) == 1
                    && metricValue(text, #"switchyard_tls_handshake_failures_total{service="secure",reason="unknown_ca"}"#) == 1
                    && metricValue(text, #"switchyard_tls_handshake_failures_total{service="secure",reason="bad_certificate"}"#) == 1
            }, "\(text.split(separator: "\n").filter { $0.contains("tls_handshake") })")
        }

        @Test func sessionTicketsResumeOnEitherWorker() throws {
            let setup = try Self.echo("only", key: .ecdsa)
            let (peers, certificate, listen, metrics) = (setup.peers, setup.certificate, setup.listen, setup.metrics)
            // SO_REUSEPORT spreads the connections over both workers; every ticket works on either.
            #expect(try peers.resumptions(listen, count: 8, serverName: "only.test", trusting: certificate.cert, version: "1.3") == 8)
            #expect(try peers.resumptions(listen, count: 8, serverName: "only.test", trusting: certificate.cert, version: "1.2") == 8)
            var text = ""
            #expect(eventually(timeout: 5, interval: 0.1) {
                text = (try? httpGet(metrics, "/metrics")) ?? ""
                return metricValue(text, #"switchyard_tls_resumed_handshakes_total{service="secure"}"#) == 16
                    && metricValue(text, #"switchyard_tls_handshake_duration_seconds_count{service="secure"}"#) == 18
            }, "\(text.split(separator: "\n").filter { $0.contains("resumed") || $0.contains("duration_seconds_count") })")
        }

        @Test func clientsThatStopReadingHoldNoSharedBufferAndOthersKeepRelaying() throws {
            let peers = try TLSTerminationPeers()
            let certificate = try peers.certificate("only", names: ["only.test"], key: .ecdsa)
            let flood = try TestBackend(.sendThenClose(byteCount: 64 << 20, seed: 7))
            let echo = try TestBackend(.echo)
            let listen = try Sockets.freeEndpoint(), metrics = try Sockets.freeEndpoint(), plain = try Sockets.freeEndpoint()
            // One worker, 64 buffers: 20 clients holding 4 each would take the whole pool.
            let yaml = Self.yaml(listen: listen, metrics: metrics, backend: flood.endpoint, certificates: [certificate], workers: 1)
                .replacingOccurrences(of: "workers: 1\n", with: "workers: 1\nbuffers: 64\nrelay: copy\n")
                + "  plain:\n    listen: [\(plain)]\n    backends: [\(echo.endpoint)]\n    health: off\n"
            let proxy = try ConfiguredProxy(yaml: yaml, listen: [listen, plain], folder: peers.folder)
            _ = proxy
            let stallers = try peers.startStallers(listen, count: 20, serverName: "only.test", trusting: certificate.cert)
            defer {
                Glibc.kill(stallers.processIdentifier, SIGKILL)
                stallers.waitUntilExit()
            }
            // Each staller's session holds what its client does not read; no provided buffer stays lent.
            var text = ""
            #expect(eventually(timeout: 10, interval: 0.1) {
                text = (try? httpGet(metrics, "/metrics")) ?? ""
                return metricValue(text, "switchyard_provided_buffers_in_use") == 0
                    && metricValue(text, #"switchyard_tls_handshakes_total{service="secure",version="TLSv1.3",result="success"}"#) == 20
            }, "\(text.split(separator: "\n").filter { $0.contains("buffers") || $0.contains("handshakes_total") })")
            for round in 0..<10 {
                let connection = try TCPConnection(to: plain, timeout: 5)
                try connection.roundTrip([UInt8](repeating: UInt8(round), count: 200_000))
                connection.close()
            }
        }

        @Test func handshakesThatTrickleOrStallAreResetAtTheTimeoutWhileOthersRelay() throws {
            let setup = try Self.echo("only", key: .ecdsa, extra: "    tls-handshake-timeout: 1s\n    idle-timeout: 60s\n", workers: 1)
            let (peers, certificate, listen, metrics) = (setup.peers, setup.certificate, setup.listen, setup.metrics)
            // A client that sends the start of a ClientHello and stops; one that sends nothing.
            let stalled = try TCPConnection(to: listen, timeout: 20)
            try stalled.send([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xFC, 0x03, 0x03])
            let silent = try TCPConnection(to: listen, timeout: 20)
            // One that trickles a byte every 100 ms: its whole hello would take over a minute.
            let trickler = try TCPConnection(to: listen, timeout: 20)
            let trickled = BackgroundTask {
                var header: [UInt8] = [0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xFC, 0x03, 0x03]
                header += [UInt8](repeating: 0x41, count: 600)
                for byte in header {
                    guard (try? trickler.send([byte])) != nil else { return }
                    usleep(100_000)
                }
                throw HarnessError("the whole hello was sent without a reset")
            }
            // Meanwhile a whole exchange goes through.
            let outcome = try peers.exchange(listen, serverName: "only.test", trusting: certificate.cert, version: "1.3",
                                             bytes: 1 << 20, closeNotify: true)
            #expect(outcome.received == outcome.sent && outcome.receivedBytes == 1 << 20)
            #expect(stalled.readToEnd(timeout: 15).end == .reset)
            #expect(silent.readToEnd(timeout: 15).end == .reset)
            #expect(trickler.readToEnd(timeout: 15).end == .reset)
            #expect(trickled.join(timeout: 70) == nil, "the trickler is cut before its hello is sent")
            var text = ""
            #expect(eventually(timeout: 5, interval: 0.1) {
                text = (try? httpGet(metrics, "/metrics")) ?? ""
                return metricValue(text, #"switchyard_tls_handshake_failures_total{service="secure",reason="timeout"}"#) == 3
            }, "\(text.split(separator: "\n").filter { $0.contains("tls_handshake") })")
        }

        @Test func garbageInsteadOfAClientHelloIsResetAndCountedAsProtocol() throws {
            let setup = try Self.echo("only", key: .rsa)
            let (backend, listen, metrics) = (setup.backend, setup.listen, setup.metrics)
            let client = try TCPConnection(to: listen, timeout: 10)
            try client.send("GET / HTTP/1.1\r\nHost: only.test\r\n\r\n")
            #expect(client.readToEnd(timeout: 10).end == .reset)
            var text = ""
            #expect(eventually(timeout: 5, interval: 0.1) {
                text = (try? httpGet(metrics, "/metrics")) ?? ""
                return metricValue(text, #"switchyard_tls_handshake_failures_total{service="secure",reason="protocol"}"#) == 1
                    && metricValue(text, #"switchyard_tls_handshakes_total{service="secure",version="unknown",result="failure"}"#) == 1
            }, "\(text.split(separator: "\n").filter { $0.contains("tls_handshake") })")
            #expect(backend.acceptedCount == 0, "a failed handshake reaches no backend")
        }

        @Test func redisCliOverTLSReachesAPlainRedisServer() throws {
            let peers = try TLSTerminationPeers()
            let certificate = try peers.certificate("redis", names: ["redis.test"], key: .ecdsa)
            let redis = try RedisServer()
            let (proxy, listen, _) = try Self.proxy(peers, backend: redis.endpoint, certificates: [certificate])
            _ = proxy
            let cli = ["-h", listen.host, "-p", "\(listen.port)", "--tls", "--cacert", certificate.cert, "--sni", "redis.test"]
            let set = try SwitchyardProcess.runTool("/usr/bin/redis-cli", cli + ["SET", "offloaded", "yes"], timeout: 10)
            #expect(set.status == 0 && set.output.contains("OK"), "\(set.output)")
            let get = try SwitchyardProcess.runTool("/usr/bin/redis-cli", cli + ["GET", "offloaded"], timeout: 10)
            #expect(get.output.contains("yes"), "\(get.output)")
            #expect(try redis.command(["GET", "offloaded"]).contains("yes"), "the plain server holds what came over TLS")
        }

        /// Writes a self-signed ECDSA certificate valid from 3 days ago to 1 day ago (`openssl req`
        /// cannot date one in the past).
        static let expiredCertificateScript = """
            import datetime, sys
            from cryptography import x509
            from cryptography.hazmat.primitives import hashes, serialization
            from cryptography.hazmat.primitives.asymmetric import ec
            from cryptography.x509.oid import NameOID
            key = ec.generate_private_key(ec.SECP256R1())
            name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "expired.test")])
            now = datetime.datetime.now(datetime.timezone.utc)
            certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=3))
                .not_valid_after(now - datetime.timedelta(hours=25))
                .add_extension(x509.SubjectAlternativeName([x509.DNSName("expired.test")]), critical=False)
                .sign(key, hashes.SHA256()))
            open(sys.argv[1], "wb").write(certificate.public_bytes(serialization.Encoding.PEM))
            open(sys.argv[2], "wb").write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                            serialization.NoEncryption()))
            """

        @Test func curlDownloadsAFileThroughATerminatingListenerFromAPlainHTTPServer() throws {
            let peers = try TLSTerminationPeers()
            let certificate = try peers.certificate("web", names: ["web.test"], key: .rsa)
            let site = peers.folder + "/site"
            try FileManager.default.createDirectory(atPath: site, withIntermediateDirectories: true)
            var generator = DeterministicBytes(seed: 23)
            let body = generator.next(3 << 20)
            try Data(body).write(to: URL(fileURLWithPath: site + "/file.bin"))
            let web = try Sockets.freeEndpoint()
            let server = try ForegroundServer("/usr/bin/env", ["python3", "-m", "http.server", "\(web.port)", "--bind", "127.0.0.1",
                                                               "--directory", site], folder: site)
            try server.waitUntilListening(web, timeout: 10)
            let (proxy, listen, _) = try Self.proxy(peers, backend: web, certificates: [certificate])
            _ = proxy
            let downloaded = peers.folder + "/downloaded.bin"
            let run = try SwitchyardProcess.runTool("/usr/bin/curl", [
                "-sS", "--http1.1", "--cacert", certificate.cert, "--resolve", "web.test:\(listen.port):127.0.0.1",
                "-o", downloaded, "https://web.test:\(listen.port)/file.bin",
            ], timeout: 60)
            #expect(run.status == 0, "\(run.output)")
            let got = try [UInt8](Data(contentsOf: URL(fileURLWithPath: downloaded)))
            #expect(Checksum.of(got) == Checksum.of(body) && got.count == body.count, "\(got.count) bytes")
        }

        @Test func testsslFindsNoVulnerabilityAndNoProtocolBelowTLS12WithTheDefaults() throws {
            let setup = try Self.echo("audit", key: .rsa)
            let listen = setup.listen
            let run = try SwitchyardProcess.runTool("/usr/bin/testssl", [
                "--protocols", "--vulnerable", "--quiet", "--color", "0", "--warnings", "off", "--ip", "one", listen.description,
            ], timeout: 200)
            let lines = run.output.split(separator: "\n").map(String.init)
            for old in ["SSLv2", "SSLv3", "TLS 1 ", "TLS 1.1"] {
                #expect(lines.contains { $0.hasPrefix(" \(old)") && $0.contains("not offered") }, "\(old): \(lines.filter { $0.contains(old) })")
            }
            #expect(lines.contains { $0.hasPrefix(" TLS 1.2") && $0.contains("offered (OK)") })
            #expect(lines.contains { $0.hasPrefix(" TLS 1.3") && $0.contains("offered (OK)") })
            // testssl writes VULNERABLE in capitals for a finding (and "not vulnerable" otherwise).
            #expect(!lines.contains { $0.contains("VULNERABLE") }, "\(lines.filter { $0.contains("VULNERABLE") })")
            #expect(lines.contains { $0.contains("Heartbleed") && $0.contains("not vulnerable") }, "the vulnerabilities were tested")
        }

        @Test func checkConfigRefusesEncryptedOrMismatchedKeysMisorderedChainsAndExpiredCertificates() throws {
            let peers = try TLSTerminationPeers()
            let locked = try peers.certificate("locked", names: ["locked.test"], key: .rsa, encrypted: true)
            let one = try peers.certificate("one", names: ["one.test"], key: .ecdsa)
            let two = try peers.certificate("two", names: ["two.test"], key: .ecdsa)
            func check(_ pair: (cert: String, key: String), _ name: String) throws -> (Int32?, String) {
                try ConfiguredProxy.write("""
                    services:
                      secure:
                        listen: [127.0.0.1:1]
                        backends: [127.0.0.1:2]
                        tls: {certificates: [{cert: \(pair.cert), key: \(pair.key)}]}
                    """, to: "\(peers.folder)/\(name).yaml")
                let process = try SwitchyardProcess(arguments: ["check-config", "\(peers.folder)/\(name).yaml"])
                return (process.waitForExit(timeout: 30), process.standardError)
            }
            let (lockedStatus, lockedError) = try check(locked, "locked")
            #expect(lockedStatus == 1)
            #expect(lockedError.contains("service secure: tls: key \(locked.key) is encrypted"), "\(lockedError)")
            let (mixedStatus, mixedError) = try check((one.cert, two.key), "mixed")
            #expect(mixedStatus == 1)
            #expect(mixedError.contains("key \(two.key) does not match certificate \(one.cert)"), "\(mixedError)")
            // A leaf followed by a certificate that did not issue it.
            let chained = "\(peers.folder)/chained.crt"
            try ConfiguredProxy.write(try String(contentsOfFile: one.cert, encoding: .utf8) + String(contentsOfFile: two.cert, encoding: .utf8),
                                      to: chained)
            let (chainStatus, chainError) = try check((chained, one.key), "chained")
            #expect(chainStatus == 1)
            #expect(chainError.contains("certificate \(chained): the chain is out of order"), "\(chainError)")
            // A certificate that expired yesterday.
            let expired = (cert: "\(peers.folder)/expired.crt", key: "\(peers.folder)/expired.key")
            let made = try SwitchyardProcess.runTool("/usr/bin/env", ["python3", "-c", Self.expiredCertificateScript, expired.cert, expired.key])
            #expect(made.status == 0, "\(made.output)")
            let (expiredStatus, expiredError) = try check(expired, "expired")
            #expect(expiredStatus == 1)
            #expect(expiredError.contains("certificate \(expired.cert) expired 25h ago: clients will refuse it"), "\(expiredError)")
            let (goodStatus, goodError) = try check(one, "good")
            #expect(goodStatus == 0, "\(goodError)")
        }
    }
}
