import Foundation
import Glibc
import SwitchyardCore
import Testing

extension EndToEnd {
    /// `route-by-sni` whose routes name terminating services, and `accept-proxy` with `tls`
    /// (README "TLS termination", "Routed by server name, or behind a proxy"), through the real
    /// binary. Certificates and the passthrough TLS echo server come from `TLSPeers` (their
    /// fingerprints say which certificate a client was shown); the clients are
    /// `TLSTerminationPeers.exchange` (verifies the certificate for the name it asked, every byte
    /// checksummed both ways, half-close) and `ProxyProtocol.headerThenHelloClient` (a PROXY
    /// header and the ClientHello in one send).
    @Suite(.serialized, .timeLimit(.minutes(4))) struct TLSRouting {
        /// `{certificates: [{cert, key}]}` for a `TLSPeers` certificate.
        static func tls(_ certificate: (String, String)) -> String {
            "{certificates: [{cert: \(certificate.0), key: \(certificate.1)}]}"
        }

        /// The usual setup: `edge` routes by SNI (`routes`, after `edgeKeys`) and `a` terminates with
        /// a.example's certificate (from `peers`) in front of a plain echo backend (with `aKeys`);
        /// `more` adds services and `global` top-level keys. Every part is returned so that it
        /// lives as long as the test holds it.
        struct Setup {
            let peers: TLSPeers
            let clients: TLSTerminationPeers
            let a: (cert: String, key: String)
            let echo: TestBackend
            let edge: TCPEndpoint
            let metrics: TCPEndpoint
            let proxy: ConfiguredProxy
        }

        static func setup(_ peers: TLSPeers, routes: String, edgeKeys: String = "", aKeys: String = "", more: String = "",
                          global: String = "") throws -> Setup {
            let clients = try TLSTerminationPeers()
            let a = try peers.certificate(for: "a.example")
            let echo = try TestBackend(.echo)
            let edge = try Sockets.freeEndpoint(), metrics = try Sockets.freeEndpoint()
            let proxy = try ConfiguredProxy(yaml: """
                metrics: \(metrics)
                \(global)defaults: {health: off}
                services:
                  edge:
                    listen: ["\(edge)"]
                \(edgeKeys)    route-by-sni: \(routes)
                  a:
                    backends: ["\(echo.endpoint)"]
                \(aKeys)    tls: \(Self.tls(a))
                \(more)
                """, listen: [edge], folder: peers.folder)
            return Setup(peers: peers, clients: clients, a: a, echo: echo, edge: edge, metrics: metrics, proxy: proxy)
        }

        /// The `Peer certificate:` line `openssl s_client` shows for `arguments` (`-servername
        /// NAME` or `-noservername`).
        static func subjectShown(_ endpoint: TCPEndpoint, _ arguments: [String]) throws -> String {
            let output = try SwitchyardProcess.runTool("/usr/bin/openssl", ["s_client", "-connect", endpoint.description, "-brief"] + arguments,
                                                       timeout: 30).output
            return output.split(separator: "\n").first { $0.hasPrefix("Peer certificate: ") }.map { String($0.dropFirst(18)) } ?? output
        }

        /// `headerThenHelloClient` through `endpoint`: `header` then a TLS client asking for
        /// `serverName` echoing `bytes`; returns the fingerprint of the certificate it was shown.
        static func proxiedClient(_ peers: TLSPeers, _ endpoint: TCPEndpoint, serverName: String, header: [UInt8],
                                  bytes: Int = 200_000) throws -> String {
            let script = peers.folder + "/proxied-client.py"
            if !FileManager.default.fileExists(atPath: script) { try ConfiguredProxy.write(ProxyProtocol.headerThenHelloClient, to: script) }
            let run = try SwitchyardProcess.runTool("/usr/bin/env", [
                "python3", script, endpoint.host, String(endpoint.port), serverName,
                header.map { String(format: "%02x", $0) }.joined(), String(bytes),
            ], timeout: 60)
            guard run.status == 0 else { throw HarnessError("proxied TLS client (\(serverName)): \(run.output)") }
            return run.output.trimmingCharacters(in: .whitespacesAndNewlines)
        }

        /// A PROXY header of `version` from `source` (to 198.51.100.1:443).
        static func header(_ version: ProxyProtocolVersion, from source: String, port: UInt16) -> [UInt8] {
            let source = ProxyHeader.Address(ip: IPAddress(source)!, port: port)
            let destination = ProxyHeader.Address(ip: IPAddress("198.51.100.1")!, port: 443)
            return version == .v1 ? ProxyHeader.encodeV1(source: source, destination: destination)
                : ProxyHeader.encodeV2(source: source, destination: destination)
        }

        /// Prints, as hex, the ClientHello Python's `ssl` sends for argv 1 (its first flight).
        static let clientHelloScript = """
        import ssl, sys
        context = ssl.create_default_context()
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = context.wrap_bio(incoming, outgoing, server_hostname=sys.argv[1])
        try:
            tls.do_handshake()
        except ssl.SSLWantReadError:
            pass
        print(outgoing.read().hex())
        """

        static func clientHello(for serverName: String) throws -> [UInt8] {
            let run = try SwitchyardProcess.runTool("/usr/bin/env", ["python3", "-c", clientHelloScript, serverName])
            let hex = Array(run.output.trimmingCharacters(in: .whitespacesAndNewlines).utf8)
            guard run.status == 0, hex.count > 10, hex.count % 2 == 0 else { throw HarnessError("ClientHello: \(run.output)") }
            return stride(from: 0, to: hex.count, by: 2).map { UInt8(String(decoding: hex[$0..<$0 + 2], as: UTF8.self), radix: 16)! }
        }

        @Test func onePortTerminatesSomeNamesWithTheirServicesCertificateAndPassesOthersThrough() throws {
            let peers = try TLSPeers()
            let fallback = try peers.certificate(for: "fallback.example")
            let b = try peers.startServer(name: "b.example")
            defer { kill(b.process.processIdentifier, SIGKILL) }
            // Plain echo servers behind a and fallback: a handshake completes only if they get plaintext.
            let echoFallback = try TestBackend(.echo)
            let setup = try Self.setup(peers, routes: #"{"a.example": a, "b.example": b, default: fallback}"#, more: """
                  b: {backends: ["127.0.0.1:\(b.port)"]}
                  fallback:
                    backends: ["\(echoFallback.endpoint)"]
                    tls: \(Self.tls(fallback))
                """)
            let (clients, a, edge, metrics) = (setup.clients, setup.a, setup.edge, setup.metrics)
            let bCertificate = "\(peers.folder)/b.example.crt"
            let cases: [(name: String, trust: String, shown: String, version: String, bytes: Int, notify: Bool)] = [
                ("a.example", a.0, "a.example", "1.3", 3 << 20, true),
                ("a.example", a.0, "a.example", "1.2", 1 << 20, false),
                ("b.example", bCertificate, "b.example", "1.3", 2 << 20, true),
                // (Python's TLS 1.2 server answers an end without close_notify with an alert: notify.)
                ("b.example", bCertificate, "b.example", "1.2", 1 << 20, true),
                // No route matches: the default terminates with its own certificate.
                ("fallback.example", fallback.0, "fallback.example", "1.3", 1 << 20, true),
            ]
            for item in cases {
                // The client verifies the certificate against the one file it trusts, for the name it asked.
                let outcome = try clients.exchange(edge, serverName: item.name, trusting: item.trust, version: item.version,
                                                   bytes: item.bytes, closeNotify: item.notify)
                let label = "\(item.name) TLS \(item.version)"
                #expect(outcome.fields["certificate"] as? String == (try peers.fingerprint(of: item.shown)), "\(label)")
                #expect(outcome.version == "TLSv\(item.version)", "\(label)")
                #expect(outcome.receivedBytes == item.bytes && outcome.received == outcome.sent, "\(label): the echo differs")
                if item.name != "b.example" {
                    // Terminated here: the backend's end after the client's came back as close_notify.
                    #expect(outcome.end == "close_notify", "\(label)")
                }
            }
            // Without SNI: the default's certificate.
            #expect(try Self.subjectShown(edge, ["-noservername"]) == "CN = fallback.example")
            #expect(try Self.subjectShown(edge, ["-servername", "b.example"]) == "CN = b.example")
            let counted = scrapeUntil(metrics, showing: ["tls_handshakes_total", "sni_routed"]) { text in
                func routed(_ route: String) -> Double? {
                    metricValue(text, #"switchyard_sni_routed_connections_total{service="edge",listener="\#(edge)",route="\#(route)"}"#)
                }
                // Handshakes count under the service whose certificate they used.
                return metricValue(text, #"switchyard_tls_handshakes_total{service="a",version="TLSv1.3",result="success"}"#) == 1
                    && metricValue(text, #"switchyard_tls_handshakes_total{service="a",version="TLSv1.2",result="success"}"#) == 1
                    && (metricValue(text, #"switchyard_tls_handshakes_total{service="fallback",version="TLSv1.3",result="success"}"#) ?? 0) >= 2
                    && routed("a.example") == 2 && routed("b.example") == 3 && routed("no_sni") == 1 && routed("no_match") == 1
            }
            #expect(counted.held, "\(counted.lines)")
            #expect(setup.echo.acceptedCount == 2, "each terminated client reached the plain backend once")
        }

        @Test func aReloadGivesRoutedHandshakesNewCertificatesAndCanTurnAPassthroughRouteIntoATerminatingOne() throws {
            let peers = try TLSPeers(), clients = try TLSTerminationPeers()
            let old = try clients.certificate("a-old", names: ["a.example"], key: .ecdsa)
            let new = try clients.certificate("a-new", names: ["a.example"], key: .rsa)
            let bHere = try clients.certificate("b-here", names: ["b.example"], key: .ecdsa)
            let b = try peers.startServer(name: "b.example")
            defer { kill(b.process.processIdentifier, SIGKILL) }
            let echo = try TestBackend(.echo)
            let edge = try Sockets.freeEndpoint()
            func yaml(a: (cert: String, key: String), bTerminates: Bool) -> String {
                """
                defaults: {health: off}
                services:
                  edge:
                    listen: ["\(edge)"]
                    route-by-sni: {"a.example": a, "b.example": b}
                  a:
                    backends: ["\(echo.endpoint)"]
                    tls: \(Self.tls(a))
                  b:
                \(bTerminates ? "    backends: [\"\(echo.endpoint)\"]\n    tls: \(Self.tls(bHere))" : "    backends: [\"127.0.0.1:\(b.port)\"]")
                """
            }
            let proxy = try ConfiguredProxy(yaml: yaml(a: old, bTerminates: false), listen: [edge], folder: peers.folder)
            // Each client trusts one certificate file only: the handshake says which one it was shown.
            #expect(try clients.exchange(edge, serverName: "a.example", trusting: old.cert, version: "1.3", bytes: 1 << 16,
                                         closeNotify: true).receivedBytes == 1 << 16)
            let passed = try clients.exchange(edge, serverName: "b.example", trusting: "\(peers.folder)/b.example.crt", version: "1.3",
                                              bytes: 1 << 16, closeNotify: true)
            #expect(passed.fields["certificate"] as? String == (try peers.fingerprint(of: "b.example")))
            try proxy.rewrite(yaml(a: new, bTerminates: true))
            #expect(try proxy.admin.send("reload").isOK)
            let renewed = try clients.exchange(edge, serverName: "a.example", trusting: new.cert, version: "1.2", bytes: 1 << 20, closeNotify: false)
            #expect(renewed.receivedBytes == 1 << 20 && renewed.received == renewed.sent)
            let terminated = try clients.exchange(edge, serverName: "b.example", trusting: bHere.cert, version: "1.3", bytes: 1 << 20, closeNotify: true)
            #expect(terminated.receivedBytes == 1 << 20 && terminated.received == terminated.sent && terminated.end == "close_notify")
        }

        @Test func aClientTricklingItsHelloOrStallingAfterItIsResetAfterSNITimeoutThenTheHandshakeTimeout() throws {
            let setup = try Self.setup(try TLSPeers(), routes: #"{"a.example": a, default: a}"#, edgeKeys: "    sni-timeout: 1s\n",
                                       aKeys: "    tls-handshake-timeout: 1s\n    idle-timeout: 60s\n", global: "workers: 1\n")
            let (clients, a, edge, metrics) = (setup.clients, setup.a, setup.edge, setup.metrics)
            let hello = try Self.clientHello(for: "a.example")
            // ConfiguredProxy's readiness probe (a connect, closed without a byte) went to the default.
            let malformed = #"switchyard_sni_routed_connections_total{service="edge",listener="\#(edge)",route="malformed"}"#
            var probes: Double?
            #expect(scrapeUntil(metrics, showing: []) { text in
                probes = metricValue(text, malformed)
                return probes != nil
            }.held)
            // The whole hello at once (routed at once), then silence.
            let staller = try TCPConnection(to: edge, timeout: 20)
            try staller.send(hello)
            // A byte every 100 ms: the hello would take a minute. sni-timeout sends what came to
            // the default, whose handshake timeout then runs.
            let connected = Date()
            let trickler = try TCPConnection(to: edge, timeout: 20)
            let trickled = BackgroundTask {
                for byte in hello {
                    guard (try? trickler.send([byte])) != nil else { return }
                    usleep(100_000)
                }
                throw HarnessError("the whole hello was sent without a reset")
            }
            // Meanwhile a whole exchange is routed and terminated.
            let outcome = try clients.exchange(edge, serverName: "a.example", trusting: a.0, version: "1.3", bytes: 1 << 20, closeNotify: true)
            #expect(outcome.received == outcome.sent && outcome.receivedBytes == 1 << 20)
            #expect(staller.readToEnd(timeout: 15).end == .reset)
            let trickleEnd = trickler.readToEnd(timeout: 20).end
            let held = Date().timeIntervalSince(connected)
            #expect(trickleEnd == .reset)
            #expect(held >= 1.9, "cut after \(held) s: sni-timeout (1s) and then tls-handshake-timeout (1s) each had their time")
            #expect(trickled.join(timeout: 70) == nil, "the trickler is cut before its hello is sent")
            let counted = scrapeUntil(metrics, showing: ["tls_handshake_failures", "sni_routed", "buffers_in_use"]) { text in
                metricValue(text, #"switchyard_tls_handshake_failures_total{service="a",reason="timeout"}"#) == 2
                    && metricValue(text, malformed) == (probes ?? 0) + 1
                    && metricValue(text, "switchyard_provided_buffers_in_use") == 0
            }
            #expect(counted.held, "\(counted.lines)")
            #expect(setup.echo.acceptedCount == 1, "only the finished handshake reached the backend")
        }

        @Test func handshakesViaARouteHoldTheirClientsPlacesOnTheRoutingListener() throws {
            let setup = try Self.setup(try TLSPeers(), routes: #"{"a.example": a}"#, edgeKeys: "    max-connections-per-source: 2\n",
                                       aKeys: "    tls-handshake-timeout: 60s\n")
            let (clients, a, edge, metrics) = (setup.clients, setup.a, setup.edge, setup.metrics)
            let hello = try Self.clientHello(for: "a.example")
            // Two clients of 127.0.0.2 send their hello (routed to a, terminated) and stop there.
            let held = try (0..<2).map { _ in
                let connection = try TCPConnection(to: edge, timeout: 10, localHost: "127.0.0.2")
                try connection.send(hello)
                return connection
            }
            // Their server flights arrive: both are in their handshakes, not waiting at accept.
            for connection in held { #expect(try connection.receive(exactly: 5, timeout: 10).first == 0x16) }
            let third = try TCPConnection(to: edge, timeout: 10, localHost: "127.0.0.2")
            try? third.send(hello)
            #expect(third.readToEnd(timeout: 10).end.isClosed, "a third client of 127.0.0.2 is refused")
            // Another source is served meanwhile.
            let outcome = try clients.exchange(edge, serverName: "a.example", trusting: a.0, version: "1.3", bytes: 1 << 16, closeNotify: true)
            #expect(outcome.receivedBytes == 1 << 16 && outcome.received == outcome.sent)
            let counted = scrapeUntil(metrics, showing: ["rejected"]) { text in
                metricValue(text, #"switchyard_connections_rejected_total{service="edge",listener="\#(edge)",reason="source_limit"}"#) == 1
            }
            #expect(counted.held, "\(counted.lines)")
            for connection in held { connection.close() }
        }

        @Test func acceptProxyWithTLSReadsTheHeaderInTheClearThenTerminates() throws {
            let peers = try TLSPeers()
            let a = try peers.certificate(for: "a.example")
            let echo = try TestBackend(.echo)
            let listen = try Sockets.freeEndpoint(), metrics = try Sockets.freeEndpoint()
            let accessLog = peers.folder + "/access.log"
            let proxy = try ConfiguredProxy(yaml: """
                metrics: \(metrics)
                access-log: \(accessLog)
                services:
                  secure:
                    listen: ["\(listen)"]
                    accept-proxy: true
                    health: off
                    backends: ["\(echo.endpoint)"]
                    tls: \(Self.tls(a))
                """, listen: [listen], folder: peers.folder)
            _ = proxy
            for (version, port) in [(ProxyProtocolVersion.v1, UInt16(1111)), (.v2, 2222)] {
                let shown = try Self.proxiedClient(peers, listen, serverName: "a.example", header: Self.header(version, from: "203.0.113.1", port: port))
                #expect(shown == (try peers.fingerprint(of: "a.example")), "\(version)")
            }
            // The access log names the client each header gave, as without TLS.
            #expect(eventually(timeout: 5) {
                let log = (try? String(contentsOfFile: accessLog, encoding: .utf8)) ?? ""
                return log.contains("203.0.113.1:1111 \(listen) secure/") && log.contains("203.0.113.1:2222 \(listen) secure/")
            }, "access log: \((try? String(contentsOfFile: accessLog, encoding: .utf8)) ?? "")")
            // Plain text after a good header, in its segment or in a later one: reset, a failed handshake.
            let header = Self.header(.v2, from: "203.0.113.9", port: 9999)
            let joined = try TCPConnection(to: listen, timeout: 10)
            try joined.send(header + Array("GET / HTTP/1.1\r\nHost: a.example\r\n\r\n".utf8))
            #expect(joined.readToEnd(timeout: 10).end == .reset)
            let later = try TCPConnection(to: listen, timeout: 10)
            try later.send(Self.header(.v1, from: "203.0.113.9", port: 9998))
            usleep(300_000)
            try later.send("GET / HTTP/1.1\r\nHost: a.example\r\n\r\n")
            #expect(later.readToEnd(timeout: 10).end == .reset)
            let counted = scrapeUntil(metrics, showing: ["tls_handshake"]) { text in
                metricValue(text, #"switchyard_tls_handshake_failures_total{service="secure",reason="protocol"}"#) == 2
                    && metricValue(text, #"switchyard_tls_handshakes_total{service="secure",version="TLSv1.3",result="success"}"#) == 2
            }
            #expect(counted.held, "\(counted.lines)")
            #expect(echo.acceptedCount == 2, "a failed handshake reaches no backend")
        }

        @Test func acceptProxyThenRouteBySNIThenTerminateOrPassThrough() throws {
            let peers = try TLSPeers()
            let b = try peers.startServer(name: "b.example")
            defer { kill(b.process.processIdentifier, SIGKILL) }
            let accessLog = peers.folder + "/access.log"
            let setup = try Self.setup(peers, routes: #"{"a.example": a, "b.example": b}"#, edgeKeys: "    accept-proxy: true\n",
                                       more: "  b: {backends: [\"127.0.0.1:\(b.port)\"]}\n", global: "access-log: \(accessLog)\n")
            let edge = setup.edge
            for version in ProxyProtocolVersion.allCases {
                for (index, name) in ["a.example", "b.example"].enumerated() {
                    let header = Self.header(version, from: "203.0.113.\(index + 1)", port: version == .v1 ? 1111 : 2222)
                    let shown = try Self.proxiedClient(peers, edge, serverName: name, header: header)
                    #expect(shown == (try peers.fingerprint(of: name)), "\(name) \(version)")
                }
            }
            #expect(eventually(timeout: 5) {
                let log = (try? String(contentsOfFile: accessLog, encoding: .utf8)) ?? ""
                return log.contains("203.0.113.1:1111 \(edge) a/") && log.contains("203.0.113.1:2222 \(edge) a/")
                    && log.contains("203.0.113.2:1111 \(edge) b/") && log.contains("203.0.113.2:2222 \(edge) b/")
            }, "access log: \((try? String(contentsOfFile: accessLog, encoding: .utf8)) ?? "")")
            #expect(setup.echo.acceptedCount == 2)
        }
    }
}
