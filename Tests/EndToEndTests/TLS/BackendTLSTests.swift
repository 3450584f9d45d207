import Foundation
import Glibc
import Testing

extension EndToEnd {
    /// TLS to backends (`backend-tls`, README "Re-encryption to backends") through the real
    /// binary: Python `ssl` backends that check the server name they are sent (and, for mTLS,
    /// the client certificate), clients in TLS (`TLSTerminationPeers`) and in plaintext, every
    /// byte checksummed both ways.
    @Suite(.serialized, .timeLimit(.minutes(4))) struct BackendTLS {
        /// Certificates made once per test: the front's (clients trust it) and the backends'
        /// (self-signed, each its own CA).
        struct Setup {
            let peers: TLSTerminationPeers
            let front: (cert: String, key: String)
            let backend: (cert: String, key: String)
            let metrics: TCPEndpoint

            init() throws {
                peers = try TLSTerminationPeers()
                front = try peers.certificate("front", names: ["front.test", "a.front.test", "b.front.test"], key: .ecdsa)
                backend = try peers.certificate("backend", names: ["backend.test", "a.front.test", "b.front.test"], key: .ecdsa)
                metrics = try Sockets.freeEndpoint()
            }

            /// The usual `backend-tls`: the backends' certificate as the CA, and the name they serve.
            var checked: String { "{ca: \(backend.cert), server-name: backend.test}" }
            /// The front's terminating `tls`.
            var terminating: String { "{certificates: [{cert: \(front.cert), key: \(front.key)}]}" }

            /// A service under `services:` with `listen`, `backends`, no health checks and `keys`
            /// (each `key: value`).
            static func service(_ name: String, listen: TCPEndpoint, backends: [TCPEndpoint], _ keys: String...) -> String {
                "  \(name):\n    listen: [\(listen)]\n    backends: [\(backends.map(\.description).joined(separator: ", "))]\n    health: off\n"
                    + keys.map { "    \($0)\n" }.joined()
            }

            /// A TLS echo backend with the backends' certificate that takes only `names`.
            func echoBackend(_ name: String, names: [String], clientCA: String? = nil) throws -> TLSEchoBackend {
                try TLSEchoBackend(folder: peers.folder, name: name, cert: backend.cert, key: backend.key, names: names, clientCA: clientCA)
            }

            /// The proxy with `services` (YAML under `services:`) and a metrics listener.
            func proxy(_ services: String, listen: [TCPEndpoint], workers: Int = 2) throws -> ConfiguredProxy {
                try ConfiguredProxy(yaml: "workers: \(workers)\nmetrics: \(metrics)\nservices:\n" + services, listen: listen,
                                    extraArguments: ["--log-level", "debug"], folder: peers.folder)
            }

            /// `value` of `series` once the metrics show it (nil when they never do).
            func metric(_ series: String, equals value: Double) -> Bool {
                eventually(timeout: 5, interval: 0.1) { metricValue((try? httpGet(metrics, "/metrics")) ?? "", series) == value }
            }

            /// The exposition's lines that contain `text` (for messages).
            func metrics(containing text: String) -> [String] {
                ((try? httpGet(metrics, "/metrics")) ?? "").split(separator: "\n").filter { $0.contains(text) && !$0.hasPrefix("#") }.map(String.init)
            }

            func metric(_ series: String) -> Double? { metricValue((try? httpGet(metrics, "/metrics")) ?? "", series) }
        }

        /// A plaintext client's exchange through `endpoint`: `count` bytes up, the half-close, and
        /// the same bytes back followed by the backend's end.
        static func plainEcho(_ endpoint: TCPEndpoint, seed: UInt64, count: Int) throws {
            try TCPConnection(to: endpoint, timeout: 10).verifyEchoStream(seed: seed, count: count, timeout: 60)
        }

        /// How a plaintext client's exchange through `endpoint` ends when the proxy cuts it.
        static func plainEnd(_ endpoint: TCPEndpoint) throws -> StreamEnd {
            let connection = try TCPConnection(to: endpoint, timeout: 10)
            do {
                try connection.send("hello")
                try connection.shutdownWrite()
            } catch {
                // The proxy may cut the client before its bytes or its half-close leave: the
                // reset reached the send (ECONNRESET, EPIPE or ENOTCONN) rather than the read.
                let text = "\(error)"
                if ["errno 104", "errno 32", "errno 107"].contains(where: text.contains) { return .reset }
                throw error
            }
            return connection.readToEnd(timeout: 20).end
        }

        @Test func reEncryptionCarriesEveryByteBothWaysWithHalfCloseAndSendsTheConfiguredName() throws {
            let setup = try Setup()
            let backend = try setup.echoBackend("checked", names: ["backend.test"])
            let listen = try Sockets.freeEndpoint()
            let services = Setup.service("secure", listen: listen, backends: [backend.endpoint],
                                         "tls: \(setup.terminating)", "backend-tls: \(setup.checked)")
            let proxy = try setup.proxy(services, listen: [listen])
            _ = proxy
            let cases: [(version: String, bytes: Int, notify: Bool)] = [("1.3", 3 << 20, true), ("1.2", 2 << 20, false), ("1.3", 1, false)]
            for item in cases {
                let outcome = try setup.peers.exchange(listen, serverName: "front.test", trusting: setup.front.cert, version: item.version,
                                                       bytes: item.bytes, closeNotify: item.notify)
                #expect(outcome.receivedBytes == item.bytes, "TLS \(item.version)")
                #expect(outcome.received == outcome.sent, "TLS \(item.version): the echo differs")
                // The client's end reached the backend as close_notify, whose own came back.
                #expect(outcome.end == "close_notify", "TLS \(item.version)")
            }
            // Several at once, on both workers.
            let streams = (0..<4).map { index in
                BackgroundTask {
                    let outcome = try setup.peers.exchange(listen, serverName: "front.test", trusting: setup.front.cert, version: "1.3",
                                                           bytes: (512 << 10) + index, closeNotify: index % 2 == 0)
                    guard outcome.received == outcome.sent, outcome.receivedBytes == (512 << 10) + index, outcome.end == "close_notify" else {
                        throw HarnessError("stream \(index): \(outcome.fields)")
                    }
                }
            }
            for stream in streams { #expect(stream.join(timeout: 120) == nil) }
            // (The harness's readiness probe sent no handshake: it never reached a backend.)
            #expect(eventually(timeout: 5) { backend.log.filter { $0.hasPrefix("closed ") }.count == 7 }, "\(backend.log)")
            #expect(backend.log.filter { $0.hasPrefix("sni ") } == Array(repeating: "sni backend.test", count: 7))
            #expect(Set(backend.log.filter { $0.hasPrefix("closed ") }).isSuperset(of: ["closed \(3 << 20)", "closed \(2 << 20)", "closed 1"]))
            #expect(setup.metric(#"switchyard_backend_tls_handshakes_total{service="secure",backend="\#(backend.endpoint)",result="ok"}"#, equals: 7))
            #expect(setup.metric(#"switchyard_backend_tls_handshakes_total{service="secure",backend="\#(backend.endpoint)",result="failed"}"#) == 0)
        }

        @Test func plaintextClientsReachATLSBackendWithEveryByteChecked() throws {
            let setup = try Setup()
            let backend = try setup.echoBackend("plain-in", names: ["backend.test"])
            let listen = try Sockets.freeEndpoint()
            let services = Setup.service("offload", listen: listen, backends: [backend.endpoint], "backend-tls: \(setup.checked)")
            let proxy = try setup.proxy(services, listen: [listen])
            _ = proxy
            try Self.plainEcho(listen, seed: 11, count: 4 << 20)
            try Self.plainEcho(listen, seed: 12, count: 1)
            // Several at once, on both workers.
            let streams = (0..<6).map { index in BackgroundTask { try Self.plainEcho(listen, seed: 100 + UInt64(index), count: 512 << 10) } }
            for stream in streams { #expect(stream.join(timeout: 120) == nil) }
            // (The harness's readiness probe connects once more and sends nothing: `closed 0`.)
            #expect(eventually(timeout: 5) { backend.log.filter { $0.hasPrefix("closed ") && $0 != "closed 0" }.count == 8 },
                    "\(backend.log)\n\(proxy.process.standardError)")
            #expect(!backend.log.contains { $0.hasPrefix("cut ") || $0.hasPrefix("refused ") }, "\(backend.log)")
        }

        @Test func theCommandLinesBackendTLSFlagOriginatesTLS() throws {
            let setup = try Setup()
            let backend = try setup.echoBackend("flag", names: ["backend.test"])
            let proxy = try SwitchyardProcess(options: ["--backend-tls", setup.checked], backends: [backend.endpoint.description])
            try Self.plainEcho(proxy.listen, seed: 41, count: 256 << 10)
            #expect(eventually(timeout: 5) { backend.log.contains("closed \(256 << 10)") }, "\(backend.log)")
            #expect(backend.log.contains("sni backend.test"))
        }

        @Test func eachWorkerResumesItsSessionsWithABackend() throws {
            let setup = try Setup()
            let backend = try setup.echoBackend("resuming", names: ["backend.test"])
            let listen = try Sockets.freeEndpoint()
            let services = Setup.service("resuming", listen: listen, backends: [backend.endpoint], "backend-tls: \(setup.checked)")
            let proxy = try setup.proxy(services, listen: [listen], workers: 1)
            for seed in 0..<4 { try Self.plainEcho(listen, seed: UInt64(seed), count: 64 << 10) }
            // The first connection (the harness's readiness probe, or the first client) makes a
            // full handshake; the next ones offer the session it left.
            #expect(eventually(timeout: 5) { backend.log.filter { $0.hasPrefix("closed ") }.count == 5 }, "\(backend.log)")
            #expect(backend.log.filter { $0 == "resumed" }.count >= 3, "\(backend.log)")
            #expect(backend.log.filter { $0 == "sni backend.test" }.count == 5)
            // A reload makes the context again: its first connection does not resume an older session.
            try proxy.rewrite("workers: 1\nmetrics: \(setup.metrics)\nservices:\n"
                              + Setup.service("resuming", listen: listen, backends: [backend.endpoint],
                                              "backend-tls: \(setup.checked)", "idle-timeout: 1h"))
            #expect(try proxy.admin.send("reload").isOK)
            let before = backend.log.filter { $0 == "resumed" }.count
            try Self.plainEcho(listen, seed: 9, count: 1024)
            #expect(eventually(timeout: 5) { backend.log.filter { $0.hasPrefix("closed ") }.count == 6 })
            #expect(backend.log.filter { $0 == "resumed" }.count == before, "\(backend.log.suffix(4))")
        }

        @Test func fromClientSNISendsTheNameEachClientAskedFor() throws {
            let setup = try Setup()
            // The backend takes a.front.test and b.front.test only: the front's own name is refused.
            let backend = try setup.echoBackend("by-sni", names: ["a.front.test", "b.front.test"])
            let listen = try Sockets.freeEndpoint()
            let services = Setup.service("secure", listen: listen, backends: [backend.endpoint],
                                         "tls: \(setup.terminating)", "backend-tls: {ca: \(setup.backend.cert), server-name: from-client-sni}")
            let proxy = try setup.proxy(services, listen: [listen])
            _ = proxy
            for name in ["a.front.test", "b.front.test", "a.front.test"] {
                let outcome = try setup.peers.exchange(listen, serverName: name, trusting: setup.front.cert, version: "1.3",
                                                       bytes: 64 << 10, closeNotify: true)
                #expect(outcome.received == outcome.sent && outcome.receivedBytes == 64 << 10, "\(name)")
            }
            #expect(backend.log.filter { $0.hasPrefix("sni ") } == ["sni a.front.test", "sni b.front.test", "sni a.front.test"])
        }

        @Test func aBackendThatFailsItsHandshakeIsCountedAndTheNextOneServesOrTheClientIsReset() throws {
            let setup = try Setup()
            let good = try setup.echoBackend("good", names: ["backend.test"])
            // Takes any name: Switchyard's own check of the name must refuse it.
            let anyName = try setup.echoBackend("any-name", names: [])
            // Another key under the same name: its chain does not lead to the configured CA.
            let impostor = try setup.peers.certificate("impostor", names: ["backend.test"], key: .ecdsa)
            let untrusted = try TLSEchoBackend(folder: setup.peers.folder, name: "untrusted", cert: impostor.cert, key: impostor.key, names: [])
            // Accepts the connection and never answers the ClientHello.
            let silent = try TestBackend(.silent)
            let (failover, alone, misnamed, terminating) = (try Sockets.freeEndpoint(), try Sockets.freeEndpoint(),
                                                            try Sockets.freeEndpoint(), try Sockets.freeEndpoint())
            let services = Setup.service("failover", listen: failover, backends: [untrusted.endpoint, silent.endpoint, good.endpoint],
                                         "connect-timeout: 1s", "backend-tls: \(setup.checked)")
                + Setup.service("alone", listen: alone, backends: [untrusted.endpoint], "backend-tls: \(setup.checked)")
                + Setup.service("misnamed", listen: misnamed, backends: [anyName.endpoint],
                                "backend-tls: {ca: \(setup.backend.cert), server-name: elsewhere.test}")
                + Setup.service("terminating", listen: terminating, backends: [untrusted.endpoint, good.endpoint],
                                "tls: \(setup.terminating)", "backend-tls: \(setup.checked)")
            let proxy = try setup.proxy(services, listen: [failover, alone, misnamed, terminating], workers: 1)
            // Round robin starts at each backend in turn: every client still reaches the good one.
            for seed in 0..<3 { try Self.plainEcho(failover, seed: UInt64(seed), count: 256 << 10) }
            // Every connection the good one took completed its handshake (the harness's readiness probe too).
            let goodOK = setup.metric(#"switchyard_backend_tls_handshakes_total{service="failover",backend="\#(good.endpoint)",result="ok"}"#) ?? 0
            #expect(goodOK >= 3 && goodOK == setup.metric(#"switchyard_backend_connections_total{service="failover",backend="\#(good.endpoint)"}"#),
                    "\(setup.metrics(containing: "tls_handshakes"))")
            let untrustedFailed = setup.metric(#"switchyard_backend_tls_handshakes_total{service="failover",backend="\#(untrusted.endpoint)",result="failed"}"#) ?? 0
            let silentFailed = setup.metric(#"switchyard_backend_tls_handshakes_total{service="failover",backend="\#(silent.endpoint)",result="failed"}"#) ?? 0
            #expect(untrustedFailed >= 1 && silentFailed >= 1, "untrusted \(untrustedFailed), silent \(silentFailed)")
            #expect(setup.metric(#"switchyard_backend_tls_handshakes_total{service="failover",backend="\#(untrusted.endpoint)",result="ok"}"#) == 0)
            #expect((setup.metric(#"switchyard_backend_failures_total{service="failover",backend="\#(untrusted.endpoint)"}"#) ?? 0) >= 1)
            // A TLS client waits in its session while the next backend is tried, then relays.
            for version in ["1.3", "1.2"] {
                let outcome = try setup.peers.exchange(terminating, serverName: "front.test", trusting: setup.front.cert, version: version,
                                                       bytes: 256 << 10, closeNotify: true)
                #expect(outcome.received == outcome.sent && outcome.receivedBytes == 256 << 10 && outcome.end == "close_notify", "TLS \(version)")
            }
            #expect((setup.metric(#"switchyard_backend_tls_handshakes_total{service="terminating",backend="\#(untrusted.endpoint)",result="failed"}"#) ?? 0) >= 1)
            // No backend left: a reset, never a clean end; the name check failed as well.
            #expect(try Self.plainEnd(alone) == .reset)
            #expect(try Self.plainEnd(misnamed) == .reset)
            #expect(eventually(timeout: 5) {
                let text = proxy.process.standardError
                return text.contains("certificate verify failed") && text.contains("hostname mismatch") && text.contains("TLS handshake timed out after 1s")
            }, "\(proxy.process.standardError)")
            // The misnamed service's backend took the name; Switchyard refused its certificate.
            #expect(anyName.log.contains("sni elsewhere.test") && anyName.log.contains { $0.hasPrefix("refused ") }, "\(anyName.log)")
            #expect(!anyName.log.contains { $0.hasPrefix("connected ") }, "\(anyName.log)")
        }

        @Test func aPROXYHeaderGoesInPlaintextBeforeTheClientHello() throws {
            let setup = try Setup()
            let backend = try TLSEchoBackend(folder: setup.peers.folder, name: "proxied", cert: setup.backend.cert, key: setup.backend.key,
                                             names: ["backend.test"], proxyHeader: true)
            let listen = try Sockets.freeEndpoint()
            let services = Setup.service("proxied", listen: listen, backends: [backend.endpoint], "send-proxy: v1", "backend-tls: \(setup.checked)")
            let proxy = try setup.proxy(services, listen: [listen])
            _ = proxy
            try Self.plainEcho(listen, seed: 21, count: 1 << 20)
            #expect(eventually(timeout: 5) { backend.log.contains("closed \(1 << 20)") }, "\(backend.log)")
            #expect(backend.log.contains { $0.hasPrefix("proxy PROXY TCP4 127.0.0.1 127.0.0.1 ") }, "\(backend.log)")
        }

        @Test func mutualTLSToABackendThatRequiresAClientCertificate() throws {
            let setup = try Setup()
            let client = try setup.peers.clientCertificate("balancer")
            let backend = try setup.echoBackend("mtls", names: ["backend.test"], clientCA: client.ca)
            let (with, without) = (try Sockets.freeEndpoint(), try Sockets.freeEndpoint())
            let services = Setup.service("with", listen: with, backends: [backend.endpoint],
                                         "backend-tls: {ca: \(setup.backend.cert), server-name: backend.test, cert: \(client.cert), key: \(client.key)}")
                + Setup.service("without", listen: without, backends: [backend.endpoint], "backend-tls: \(setup.checked)")
            let proxy = try setup.proxy(services, listen: [with, without])
            _ = proxy
            try Self.plainEcho(with, seed: 5, count: 1 << 20)
            #expect(backend.log.contains("connected with-client-certificate"), "\(backend.log)")
            // Without one the backend refuses (in TLS 1.3 after Switchyard's Finished): a reset.
            #expect(try Self.plainEnd(without) == .reset)
            #expect(eventually(timeout: 5) { backend.log.contains { $0.hasPrefix("refused ") } }, "\(backend.log)")
        }

        @Test func backendTLSFalseOnOneBackendSendsItPlaintext() throws {
            let setup = try Setup()
            let secure = try setup.echoBackend("secure", names: ["backend.test"])
            let plain = try TestBackend(.echo)
            let listen = try Sockets.freeEndpoint()
            let proxy = try setup.proxy("""
                  mixed:
                    listen: [\(listen)]
                    backends:
                      - \(secure.endpoint)
                      - {address: \(plain.endpoint), backend-tls: false}
                    health: off
                    backend-tls: {ca: \(setup.backend.cert), server-name: backend.test}
                """, listen: [listen], workers: 1)
            for seed in 0..<4 { try Self.plainEcho(listen, seed: UInt64(seed), count: 128 << 10) }
            let labels = (secure: #"service="mixed",backend="\#(secure.endpoint)""#, plain: #"service="mixed",backend="\#(plain.endpoint)""#)
            // Two clients each (the harness's readiness probe went to the first: `closed 0`).
            #expect(setup.metric("switchyard_backend_connections_total{\(labels.plain)}", equals: 2), "\(setup.metrics(containing: "connections_total"))")
            #expect(setup.metric("switchyard_backend_tls_handshakes_total{\(labels.secure),result=\"ok\"}") == 3)
            #expect(setup.metric("switchyard_backend_received_bytes_total{\(labels.plain)}") == Double(2 * 128 << 10), "plaintext both ways")
            #expect(setup.metric("switchyard_backend_failures_total{\(labels.plain)}") == 0)
            // The plaintext backend has no TLS series at all.
            #expect(setup.metric("switchyard_backend_tls_handshakes_total{\(labels.plain),result=\"ok\"}") == nil)
            #expect(secure.log.filter { $0.hasPrefix("closed ") && $0 != "closed 0" } == ["closed \(128 << 10)", "closed \(128 << 10)"])
        }

        @Test func healthChecksWithCheckTLSUseTheBackendTLSSettings() throws {
            let setup = try Setup()
            let client = try setup.peers.clientCertificate("checker")
            let backend = try setup.echoBackend("checked", names: ["backend.test"], clientCA: client.ca)
            let (first, second) = (try Sockets.freeEndpoint(), try Sockets.freeEndpoint())
            let tls = "{ca: \(setup.backend.cert), server-name: backend.test, cert: \(client.cert), key: \(client.key)}"
            let proxy = try setup.proxy("""
                  inherits:
                    listen: [\(first)]
                    backends: [\(backend.endpoint)]
                    health: {check-tls: true, interval: 200ms, send: "ping\\n", expect: "ping"}
                    backend-tls: \(tls)
                  overridden:
                    listen: [\(second)]
                    backends: [\(backend.endpoint)]
                    health: {check-tls: true, interval: 200ms, server-name: other.test, send: "ping\\n", expect: "ping"}
                    backend-tls: \(tls)
                """, listen: [first, second])
            // The check sends the backend-tls name and client certificate, and its steps pass inside TLS.
            #expect(setup.metric(#"switchyard_backend_up{service="inherits",backend="\#(backend.endpoint)"}"#, equals: 1))
            #expect(setup.metric(#"switchyard_backend_last_check_success{service="inherits",backend="\#(backend.endpoint)"}"#, equals: 1))
            // The health check's own server-name replaces it: the backend refuses that name.
            #expect(eventually(timeout: 10, interval: 0.1) {
                setup.metric(#"switchyard_backend_up{service="overridden",backend="\#(backend.endpoint)"}"#) == 0
            })
            #expect(backend.log.contains("sni other.test") && backend.log.contains("connected with-client-certificate"))
            try Self.plainEcho(first, seed: 9, count: 64 << 10)
            _ = proxy
        }

        @Test func aReloadThatReplacesTheCAFileReachesTheHealthChecksToo() throws {
            let setup = try Setup()
            let backend = try setup.echoBackend("rechecked", names: ["backend.test"])
            let listen = try Sockets.freeEndpoint()
            // The CA file is a copy the test can replace under the same path.
            let ca = "\(setup.peers.folder)/trusted-ca.pem"
            try FileManager.default.copyItem(atPath: setup.backend.cert, toPath: ca)
            let proxy = try setup.proxy("""
                  rechecked:
                    listen: [\(listen)]
                    backends: [\(backend.endpoint)]
                    health: {check-tls: true, interval: 200ms, fall: 1}
                    backend-tls: {ca: \(ca), server-name: backend.test}
                """, listen: [listen])
            let up = #"switchyard_backend_up{service="rechecked",backend="\#(backend.endpoint)"}"#
            #expect(setup.metric(up, equals: 1))
            // Same configuration, another CA in the file: after the reload neither new connections
            // nor the checks trust the backend (before, the checks kept the CA they had read).
            let stranger = try setup.peers.certificate("stranger", names: ["backend.test"], key: .ecdsa)
            try FileManager.default.removeItem(atPath: ca)
            try FileManager.default.copyItem(atPath: stranger.cert, toPath: ca)
            #expect(try proxy.admin.send("reload").isOK)
            #expect(eventually(timeout: 10, interval: 0.1) { setup.metric(up) == 0 }, "\(setup.metrics(containing: "rechecked"))")
            // No backend is left: the client is reset.
            #expect(try Self.plainEnd(listen) == .reset)
        }

        @Test func aReloadPutsNewBackendTLSSettingsInForceAndRefusesAMissingCA() throws {
            let setup = try Setup()
            let backend = try setup.echoBackend("reloaded", names: ["backend.test"])
            let listen = try Sockets.freeEndpoint()
            func services(_ tls: String) -> String {
                Setup.service("reloaded", listen: listen, backends: [backend.endpoint], "backend-tls: \(tls)")
            }
            let proxy = try setup.proxy(services("{ca: \(setup.backend.cert), server-name: elsewhere.test}"), listen: [listen])
            #expect(try Self.plainEnd(listen) == .reset)
            try proxy.rewrite("workers: 2\nmetrics: \(setup.metrics)\nservices:\n" + services("{ca: \(setup.backend.cert), server-name: backend.test}"))
            #expect(try proxy.admin.send("reload").isOK)
            try Self.plainEcho(listen, seed: 31, count: 256 << 10)
            let missing = "\(setup.peers.folder)/missing.pem"
            try proxy.rewrite("workers: 2\nmetrics: \(setup.metrics)\nservices:\n" + services("{ca: \(missing), server-name: backend.test}"))
            let refused = try proxy.admin.send("reload")
            #expect(!refused.isOK && "\(refused)".contains("backend-tls: ca \(missing)"), "\(refused)")
            try Self.plainEcho(listen, seed: 32, count: 256 << 10)
            #expect(backend.log.filter { $0.hasPrefix("sni ") }.suffix(2) == ["sni backend.test", "sni backend.test"])
        }

        @Test func checkConfigRefusesUnreadableEncryptedOrMismatchedBackendTLSFiles() throws {
            let setup = try Setup()
            let locked = try setup.peers.certificate("locked", names: ["locked.test"], key: .rsa, encrypted: true)
            let other = try setup.peers.certificate("other", names: ["other.test"], key: .ecdsa)
            func check(_ service: String, _ name: String) throws -> (Int32?, String) {
                try ConfiguredProxy.write("services:\n  s:\n    listen: [127.0.0.1:1]\n" + service, to: "\(setup.peers.folder)/\(name).yaml")
                let process = try SwitchyardProcess(arguments: ["check-config", "\(setup.peers.folder)/\(name).yaml"])
                return (process.waitForExit(timeout: 30), process.standardError)
            }
            let missing = "\(setup.peers.folder)/missing.pem"
            var (status, error) = try check("    backends: [127.0.0.1:2]\n    backend-tls: {ca: \(missing)}\n", "missing")
            #expect(status == 1 && error.contains("service s: backend-tls: ca \(missing):"), "\(error)")
            (status, error) = try check("    backends: [127.0.0.1:2]\n    backend-tls: {cert: \(locked.cert), key: \(locked.key)}\n", "locked")
            #expect(status == 1 && error.contains("key \(locked.key) is encrypted"), "\(error)")
            (status, error) = try check("    backends: [{address: 127.0.0.1:2, backend-tls: {cert: \(setup.backend.cert), key: \(other.key)}}]\n", "mixed")
            #expect(status == 1 && error.contains("service s: backend 127.0.0.1:2: backend-tls: key \(other.key) does not match certificate \(setup.backend.cert)"),
                    "\(error)")
            (status, error) = try check("    backends: [127.0.0.1:2]\n    backend-tls: {cert: \(setup.backend.cert)}\n", "half")
            #expect(status == 1 && error.contains("backend-tls needs cert and key together"), "\(error)")
            (status, error) = try check("    backends: [127.0.0.1:2]\n    backend-tls: {ca: \(setup.backend.cert), cert: \(setup.backend.cert), key: \(setup.backend.key)}\n", "good")
            #expect(status == 0, "\(error)")
        }
    }
}
