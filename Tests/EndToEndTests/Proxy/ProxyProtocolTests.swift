import Foundation
import Glibc
import SwitchyardCore
import Testing

/// The loopback address of a family, for parameterised tests.
enum LoopbackFamily: String, Sendable, CaseIterable, CustomTestStringConvertible {
    case ipv4, ipv6
    var host: String { self == .ipv4 ? Sockets.ipv4Loopback : Sockets.ipv6Loopback }
    /// How HAProxy's `%ci`/`%fi` write an address of this family (no brackets).
    func haproxyText(_ endpoint: TCPEndpoint) -> String { "\(endpoint.host):\(endpoint.port)" }
    /// A `bind` address for HAProxy.
    func haproxyBind(_ endpoint: TCPEndpoint) -> String {
        self == .ipv4 ? endpoint.description : "ipv6@\(endpoint.host):\(endpoint.port)"
    }
    var testDescription: String { rawValue }
}

/// A v2 PROXY header for TCP over IPv4 from `source` to `destination`, with `tlvs` after the addresses.
func proxyV2Header(source: (String, UInt16), destination: (String, UInt16), tlvs: [ProxyHeader.TLV] = []) -> [UInt8] {
    ProxyHeader.encodeV2(source: .init(ip: IPAddress(source.0)!, port: source.1),
                         destination: .init(ip: IPAddress(destination.0)!, port: destination.1), tlvs: tlvs)
}

extension EndToEnd {
    /// `send-proxy`, `accept-proxy`, `accept-proxy-timeout` and `accept-proxy-from` through the
    /// real binary, with HAProxy as the peer on either side and a backend that parses headers
    /// with the project's parser. Every payload byte is checked with a checksum.
    @Suite(.timeLimit(.minutes(3))) struct ProxyProtocol {
        // MARK: send-proxy

        @Test(arguments: ProxyProtocolVersion.allCases, LoopbackFamily.allCases)
        func sendProxyGivesTheBackendTheClientAndListenerAddressesBeforeThePayload(
            version: ProxyProtocolVersion, family: LoopbackFamily
        ) throws {
            if family == .ipv6 && !Sockets.ipv6LoopbackAvailable { return }
            let backend = try ProxyHeaderBackend()
            let proxy = try SwitchyardProcess(options: ["--send-proxy", version.rawValue, "--no-health-check"],
                                              listenHosts: [family.host], backends: [backend.endpoint.description])
            defer { proxy.kill() }
            let client = try TCPConnection(to: proxy.listen)
            defer { client.close() }
            let line = try client.receiveLine()
            #expect(line == "\(try client.localEndpoint) \(proxy.listen)")
            try client.verifyEchoStream(seed: 13, count: 300_000, timeout: 20)
            let header = try #require(backend.headers.last)
            #expect(header.version == (version == .v1 ? .v1 : .v2))
            #expect(header.family == (family == .ipv4 ? .inet : .inet6))
        }

        @Test(arguments: ProxyProtocolVersion.allCases, LoopbackFamily.allCases)
        func haproxyBehindSwitchyardSeesTheOriginalClient(version: ProxyProtocolVersion, family: LoopbackFamily) throws {
            if family == .ipv6 && !Sockets.ipv6LoopbackAvailable { return }
            let echo = try TestBackend(.echo)
            let haproxyListen = try Sockets.freeEndpoint()
            let haproxy = try HAProxyProcess(sections: """
                frontend from_switchyard
                    bind \(haproxyListen) accept-proxy
                    default_backend echo
                backend echo
                    server echo \(echo.endpoint)
                """, listen: [haproxyListen])
            let listen = try Sockets.freeEndpoint(host: family.host)
            // The service says the other version; the backend's own setting wins.
            let other: ProxyProtocolVersion = version == .v1 ? .v2 : .v1
            let proxy = try ConfiguredProxy(yaml: """
                services:
                  edge:
                    listen: ["\(listen)"]
                    send-proxy: \(other)
                    health: off
                    backends:
                      - {address: "\(haproxyListen)", send-proxy: \(version)}
                """, listen: [listen])
            let client = try TCPConnection(to: listen)
            let local = try client.localEndpoint
            try client.verifyEchoStream(seed: 29, count: 200_000, timeout: 20)
            client.close()
            let expected = "client=\(family.haproxyText(local)) frontend=\(family.haproxyText(listen)) "
            #expect(eventually(timeout: 5) { haproxy.log.contains(expected) }, "haproxy log: \(haproxy.log)")
            _ = proxy
        }

        @Test(arguments: [
            (["--send-proxy", "v3"], "v3"),
            (["--accept-proxy", "--accept-proxy-from", "10.0.0.1/8"], "did you mean 10.0.0.0/8"),
            (["--accept-proxy", "--accept-proxy-from", "10.0.0.0/8,,"], "the address is missing"),
            (["--accept-proxy-from", "10.0.0.0/8"], "needs --accept-proxy"),
        ])
        func badProxyProtocolFlagsAreRefusedWithALineNamingTheValue(flags: [String], named: String) throws {
            let listen = try Sockets.freeEndpoint()
            let proxy = try SwitchyardProcess(arguments: ["serve", "--listen", listen.description, "--no-admin-socket"] + flags + ["127.0.0.1:9"])
            defer { proxy.kill() }
            #expect(proxy.waitForExit(timeout: 30) == 64, "\(proxy.standardError)")
            #expect(proxy.standardError.contains(named), "\(proxy.standardError)")
        }

        // MARK: accept-proxy

        @Test func aBackendThatResetsRightAfterTheHeaderLeavesItsClientsToAnother() throws {
            let resetting = try TestBackend(.reset)
            let backend = try ProxyHeaderBackend()
            let proxy = try SwitchyardProcess(options: ["--send-proxy", "v2", "--no-health-check"],
                                              backends: [resetting.endpoint.description, backend.endpoint.description])
            defer { proxy.kill() }
            for index in 0..<6 {
                let client = try TCPConnection(to: proxy.listen)
                defer { client.close() }
                #expect(try client.receiveLine() == "\(try client.localEndpoint) \(proxy.listen)", "client \(index)")
                try client.roundTrip(Array("client \(index)".utf8))
            }
            #expect(resetting.acceptedCount >= 1, "round robin offered the resetting backend too")
        }

        @Test(arguments: ["send-proxy", "send-proxy-v2"], LoopbackFamily.allCases)
        func switchyardBehindHAProxyTakesTheClientFromItsHeaderForBackendAndAccessLog(
            haproxyOption: String, family: LoopbackFamily
        ) throws {
            if family == .ipv6 && !Sockets.ipv6LoopbackAvailable { return }
            let backend = try ProxyHeaderBackend()
            let listen = try Sockets.freeEndpoint()
            let folder = try ConfiguredProxy.makeFolder()
            defer { try? FileManager.default.removeItem(atPath: folder) }
            let accessLog = folder + "/access.log"
            let proxy = try ConfiguredProxy(yaml: """
                access-log: \(accessLog)
                services:
                  edge:
                    listen: ["\(listen)"]
                    accept-proxy: true
                    accept-proxy-from: ["127.0.0.1/32"]
                    send-proxy: v2
                    health: off
                    backends: ["\(backend.endpoint)"]
                """, listen: [listen], folder: folder)
            let front = try Sockets.freeEndpoint(host: family.host)
            let haproxy = try HAProxyProcess(sections: """
                frontend clients
                    bind \(family.haproxyBind(front))
                    default_backend switchyard
                backend switchyard
                    server switchyard \(listen) \(haproxyOption)
                """, listen: [front])
            let client = try TCPConnection(to: front)
            let local = try client.localEndpoint
            let line = try client.receiveLine()
            #expect(line == "\(local) \(front)")
            try client.verifyEchoStream(seed: 31, count: 250_000, timeout: 20)
            client.close()
            // The access log names the client the header gave, not HAProxy's own address.
            #expect(eventually(timeout: 5) {
                ((try? String(contentsOfFile: accessLog, encoding: .utf8)) ?? "").contains(" \(local) \(listen) edge/")
            }, "access log: \((try? String(contentsOfFile: accessLog, encoding: .utf8)) ?? "")")
            _ = (proxy, haproxy)
        }

        @Test func aSlowHeaderIsClosedAfterTheTimeoutAndCountedWhileAnotherClientIsServed() throws {
            let setup = try AcceptProxySetup()
            let before = try setup.errors()
            let slow = try TCPConnection(to: setup.listen)
            defer { slow.close() }
            try slow.send("PROXY TCP4 203.0.113.9 ")
            let started = Date()
            // Meanwhile a client with a whole header is served at once.
            let good = try TCPConnection(to: setup.listen)
            try good.send(proxyV2Header(source: ("203.0.113.7", 4242), destination: ("198.51.100.1", 443)))
            #expect(try good.receiveLine() == "203.0.113.7:4242 198.51.100.1:443")
            try good.verifyEchoStream(seed: 3, count: 100_000, timeout: 10)
            good.close()
            let outcome = slow.readToEnd(timeout: 5)
            let waited = Date().timeIntervalSince(started)
            #expect(outcome.end.isClosed && outcome.checksum.byteCount == 0)
            #expect(waited > 0.9 && waited < 2.5, "closed after \(waited) s with accept-proxy-timeout 1s")
            #expect(setup.eventuallyErrors(before, plus: [.timeout: 1]))
            let metrics = try httpGet(setup.metrics, "/metrics")
            #expect(metricValue(metrics, #"switchyard_proxy_header_errors_total{service="edge",cause="timeout"}"#) == Double(before[.timeout, default: 0] + 1))
        }

        @Test func malformedOversizedAndMissingHeadersAreClosedAtOnceAndCountedByCause() throws {
            let setup = try AcceptProxySetup()
            let before = try setup.errors()
            var v2WrongVersion = proxyV2Header(source: ("203.0.113.7", 1), destination: ("198.51.100.1", 2))
            v2WrongVersion[12] = 0x31
            var v2TooLong = Array(proxyV2Header(source: ("203.0.113.7", 1), destination: ("198.51.100.1", 2))[0..<16])
            v2TooLong[14] = 0xFF
            v2TooLong[15] = 0xFF
            let cases: [(String, [UInt8])] = [
                ("v1 port out of range", Array("PROXY TCP4 203.0.113.7 198.51.100.1 99999 443\r\n".utf8)),
                ("v1 leading zero in an address", Array("PROXY TCP4 203.0.113.07 198.51.100.1 1 443\r\n".utf8)),
                ("v2 version 3", v2WrongVersion),
                ("v2 announcing 65535 bytes", v2TooLong),
                ("v1 without CRLF in 107 bytes", Array(("PROXY TCP6 " + String(repeating: "1:", count: 60)).utf8)),
                ("plain HTTP", Array("GET / HTTP/1.1\r\nHost: x\r\n\r\n".utf8)),
            ]
            for (name, bytes) in cases {
                let client = try TCPConnection(to: setup.listen)
                try client.send(bytes + Array("payload that must never reach a backend".utf8))
                let outcome = client.readToEnd(timeout: 3)
                #expect(outcome.end.isClosed && outcome.checksum.byteCount == 0, "\(name): \(outcome.end)")
                #expect(outcome.elapsed < 0.9, "\(name): closed after \(outcome.elapsed) s, not at once")
                client.close()
            }
            #expect(setup.eventuallyErrors(before, plus: [.malformed: 3, .oversized: 2, .missing: 1]))
            #expect(setup.backend.headers.count == 0, "no refused client reached the backend")
            let metrics = try httpGet(setup.metrics, "/metrics")
            for failure in ProxyHeaderFailure.allCases {
                let series = #"switchyard_proxy_header_errors_total{service="edge",cause="\#(failure.label)"}"#
                #expect(metricValue(metrics, series) != nil, "\(series) missing from /metrics")
            }
        }

        @Test func aClientOutsideAcceptProxyFromIsClosedAndCountedAndATrustedOneIsServed() throws {
            let setup = try AcceptProxySetup()
            let before = try setup.errors()
            let header = proxyV2Header(source: ("203.0.113.7", 4242), destination: ("198.51.100.1", 443))
            let untrusted = try exchange(from: "127.0.0.2", to: setup.listen, sending: header + Array("hello".utf8), timeout: 3)
            #expect(untrusted.end.isClosed && untrusted.received.isEmpty, "\(untrusted.end)")
            let trusted = try exchange(from: "127.0.0.1", to: setup.listen, sending: header, timeout: 1)
            #expect(String(decoding: trusted.received, as: UTF8.self) == "203.0.113.7:4242 198.51.100.1:443\n")
            #expect(setup.eventuallyErrors(before, plus: [.untrusted: 1]))
            #expect(setup.backend.headers.count == 1)
        }

        @Test func anIPv6ListenerChecksAcceptProxyFromAgainstIPv6Peers() throws {
            guard Sockets.ipv6LoopbackAvailable else { return }
            let backend = try ProxyHeaderBackend()
            let trusting = try Sockets.freeEndpoint(host: Sockets.ipv6Loopback)
            let refusing = try Sockets.freeEndpoint(host: Sockets.ipv6Loopback)
            let proxy = try ConfiguredProxy(yaml: """
                defaults: {health: off, accept-proxy: true, send-proxy: v2, backends: ["\(backend.endpoint)"]}
                services:
                  trusting: {listen: ["\(trusting)"], accept-proxy-from: ["::1/128"]}
                  refusing: {listen: ["\(refusing)"], accept-proxy-from: ["127.0.0.0/8"]}
                """, listen: [trusting, refusing])
            let header = Array("PROXY TCP6 2001:db8::7 2001:db8::1 4242 443\r\n".utf8)
            let served = try exchange(from: "::1", to: trusting, sending: header, timeout: 1)
            #expect(String(decoding: served.received, as: UTF8.self) == "[2001:db8::7]:4242 [2001:db8::1]:443\n")
            let refused = try exchange(from: "::1", to: refusing, sending: header, timeout: 3)
            #expect(refused.end.isClosed && refused.received.isEmpty, "::1 is not in 127.0.0.0/8: \(refused.end)")
            _ = proxy
        }

        @Test(arguments: ProxyProtocolVersion.allCases, RelayMode.allCases)
        func aHeaderSplitOverManySmallWritesWorksAndThePayloadAfterItArrivesIntact(version: ProxyProtocolVersion, relay: RelayMode) throws {
            // A header of about 350 bytes, a byte every 2 ms: longer than 1 s on a slow run
            // (ASan beside other work), so the allowance here is generous.
            let setup = try AcceptProxySetup(relay: relay, headerTimeout: "30s")
            let header = version == .v1
                ? Array("PROXY TCP6 2001:db8::7 2001:db8::1 4242 443\r\n".utf8)
                : proxyV2Header(source: ("203.0.113.7", 4242), destination: ("198.51.100.1", 443), tlvs: [
                    ProxyHeader.TLV(type: ProxyHeader.TLV.alpn, value: Array("h2".utf8)),
                    ProxyHeader.TLV(type: ProxyHeader.TLV.authority, value: Array("example.com".utf8)),
                    ProxyHeader.TLV(type: ProxyHeader.TLV.noop, value: [UInt8](repeating: 0, count: 300)),
                ])
            let client = try TCPConnection(to: setup.listen)
            defer { client.close() }
            try Sockets.setOption(client.fd, Int32(IPPROTO_TCP), TCP_NODELAY, Int32(1))
            // One byte per write, each given time to arrive as its own segment, then the first
            // payload bytes in the same write as the header's last byte.
            var payload = DeterministicBytes(seed: 77)
            let first = payload.next(5000)
            for byte in header.dropLast() {
                try client.send([byte])
                usleep(2000)
            }
            try client.send([header.last!] + first)
            let expected = version == .v1 ? "[2001:db8::7]:4242 [2001:db8::1]:443" : "203.0.113.7:4242 198.51.100.1:443"
            #expect(try client.receiveLine() == expected)
            #expect(try client.receive(exactly: first.count, timeout: 5) == first, "the bytes after the header reached the backend intact")
            try client.verifyEchoStream(seed: 78, count: 200_000, timeout: 20)
        }

        @Test func aLocalHeaderKeepsTheRealPeerAddress() throws {
            let setup = try AcceptProxySetup()
            let client = try TCPConnection(to: setup.listen)
            defer { client.close() }
            try client.send(ProxyHeader.encodeV2Local(tlvs: [ProxyHeader.TLV(type: ProxyHeader.TLV.noop, value: [1, 2, 3])]))
            #expect(try client.receiveLine() == "\(try client.localEndpoint) \(setup.listen)")
            try client.verifyEchoStream(seed: 5, count: 50_000, timeout: 10)
        }

        @Test func ipHashUsesTheAddressFromTheHeader() throws {
            let backends = try (0..<4).map { try TestBackend(.identify(name: "b\($0)")) }
            let listen = try Sockets.freeEndpoint()
            let proxy = try ConfiguredProxy(yaml: """
                services:
                  edge:
                    listen: ["\(listen)"]
                    accept-proxy: true
                    balance: ip-hash
                    health: off
                    backends: [\(backends.map { "\"\($0.endpoint)\"" }.joined(separator: ", "))]
                """, listen: [listen])
            var chosen: [Int: Set<String>] = [:]
            for round in 0..<3 {
                for source in 1...12 {
                    let client = try TCPConnection(to: listen)
                    try client.send(proxyV2Header(source: ("198.51.100.\(source)", UInt16(1000 + round)), destination: ("192.0.2.1", 80)))
                    chosen[source, default: []].insert(try client.receiveLine())
                    try client.roundTrip(Array("ping \(source)".utf8))
                    client.close()
                }
            }
            #expect(chosen.values.allSatisfy { $0.count == 1 }, "one address always reaches one backend: \(chosen)")
            #expect(Set(chosen.values.flatMap { $0 }).count >= 2, "all clients come from 127.0.0.1, yet their header addresses spread: \(chosen)")
            _ = proxy
        }

        @Test func withSNIRoutingThePROXYHeaderComesFirstThenTheClientHelloEvenInOneSegment() throws {
            let peers = try TLSPeers()
            let api = try peers.startServer(name: "api.test"), web = try peers.startServer(name: "web.test")
            defer { for process in [api.process, web.process] { kill(process.processIdentifier, SIGKILL) } }
            try ConfiguredProxy.write(Self.headerThenHelloClient, to: peers.folder + "/proxied-client.py")
            let edge = try Sockets.freeEndpoint()
            let accessLog = peers.folder + "/access.log"
            let proxy = try ConfiguredProxy(yaml: """
                access-log: \(accessLog)
                defaults: {health: off}
                services:
                  tls-edge:
                    listen: ["\(edge)"]
                    accept-proxy: true
                    route-by-sni: {"api.test": api, default: web}
                  api: {backends: ["127.0.0.1:\(api.port)"]}
                  web: {backends: ["127.0.0.1:\(web.port)"]}
                """, listen: [edge])
            for (index, (name, expected)) in [("api.test", "api.test"), ("other.test", "web.test")].enumerated() {
                for version in ProxyProtocolVersion.allCases {
                    let source = ProxyHeader.Address(ip: IPAddress("203.0.113.\(index + 1)")!, port: version == .v1 ? 1111 : 2222)
                    let destination = ProxyHeader.Address(ip: IPAddress("198.51.100.1")!, port: 443)
                    let header = version == .v1 ? ProxyHeader.encodeV1(source: source, destination: destination)
                        : ProxyHeader.encodeV2(source: source, destination: destination)
                    let run = try SwitchyardProcess.runTool("/usr/bin/env", [
                        "python3", peers.folder + "/proxied-client.py", edge.host, String(edge.port), name,
                        header.map { String(format: "%02x", $0) }.joined(), "200000",
                    ], timeout: 60)
                    #expect(run.status == 0, "\(name) \(version): \(run.output)")
                    #expect(run.output.trimmingCharacters(in: .whitespacesAndNewlines) == (try peers.fingerprint(of: expected)), "\(name) \(version)")
                }
            }
            #expect(eventually(timeout: 5) {
                let log = (try? String(contentsOfFile: accessLog, encoding: .utf8)) ?? ""
                return log.contains("203.0.113.1:1111 \(edge) api/") && log.contains("203.0.113.1:2222 \(edge) api/")
                    && log.contains("203.0.113.2:1111 \(edge) web/") && log.contains(" api.test")
            }, "access log: \((try? String(contentsOfFile: accessLog, encoding: .utf8)) ?? "")")
            _ = proxy
        }

        /// A TLS client whose PROXY header (hex, argv 4) and ClientHello leave in one send(2):
        /// the handshake runs over memory BIOs, so the first bytes can be joined. Echoes argv 5
        /// bytes and prints the SHA-256 of the server's certificate.
        static let headerThenHelloClient = """
        import hashlib, os, socket, ssl, sys
        host, port, name, header, count = sys.argv[1], int(sys.argv[2]), sys.argv[3], bytes.fromhex(sys.argv[4]), int(sys.argv[5])
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = context.wrap_bio(incoming, outgoing, server_hostname=name)
        sock = socket.create_connection((host, port), timeout=30)
        pending = [header]
        def flush():
            data = b"".join(pending) + outgoing.read()
            pending.clear()
            if data:
                sock.sendall(data)
        def pull():
            data = sock.recv(1 << 16)
            if not data:
                sys.exit("connection closed")
            incoming.write(data)
        while True:
            try:
                tls.do_handshake()
                flush()
                break
            except ssl.SSLWantReadError:
                flush()
                pull()
        shown = hashlib.sha256(tls.getpeercert(binary_form=True)).hexdigest()
        payload = os.urandom(count)
        tls.write(payload)
        flush()
        echoed = b""
        while len(echoed) < count:
            try:
                echoed += tls.read(1 << 16)
            except ssl.SSLWantReadError:
                flush()
                pull()
        if echoed != payload:
            sys.exit("echo mismatch")
        print(shown)
        """

        @Test func aReloadChangingSendProxyAppliesToNewConnectionsAndTheOldOnesCarryOn() throws {
            let backend = try ProxyHeaderBackend()
            let listen = try Sockets.freeEndpoint()
            func yaml(_ version: ProxyProtocolVersion) -> String {
                """
                services:
                  edge:
                    listen: ["\(listen)"]
                    send-proxy: \(version)
                    health: off
                    backends: ["\(backend.endpoint)"]
                """
            }
            let proxy = try ConfiguredProxy(yaml: yaml(.v1), listen: [listen])
            let before = try TCPConnection(to: listen)
            defer { before.close() }
            #expect(try before.receiveLine() == "\(try before.localEndpoint) \(listen)")
            #expect(backend.headers.last?.version == .v1)
            try proxy.rewrite(yaml(.v2))
            let reply = try proxy.admin.send("reload")
            #expect(reply.body.contains { $0.contains("PROXY protocol settings changed") }, "\(reply)")
            let after = try TCPConnection(to: listen)
            defer { after.close() }
            #expect(try after.receiveLine() == "\(try after.localEndpoint) \(listen)")
            #expect(backend.headers.last?.version == .v2)
            try after.roundTrip(Array("with a v2 header".utf8))
            try before.roundTrip(Array("the old connection carries on".utf8))
        }
    }
}

/// A proxy whose service `edge` requires PROXY headers (from 127.0.0.1 only, within 1 s unless
/// `headerTimeout` says otherwise) and sends v1 to a `ProxyHeaderBackend`, with metrics on.
private struct AcceptProxySetup {
    let backend: ProxyHeaderBackend
    let proxy: ConfiguredProxy
    let listen: TCPEndpoint
    let metrics: TCPEndpoint

    init(relay: RelayMode = .auto, headerTimeout: String = "1s") throws {
        backend = try ProxyHeaderBackend()
        listen = try Sockets.freeEndpoint()
        metrics = try Sockets.freeEndpoint()
        proxy = try ConfiguredProxy(yaml: """
            metrics: \(metrics)
            services:
              edge:
                listen: ["\(listen)"]
                accept-proxy: true
                accept-proxy-timeout: \(headerTimeout)
                accept-proxy-from: ["127.0.0.1/32", "::1"]
                send-proxy: v1
                health: off
                backends: ["\(backend.endpoint)"]
            """, listen: [listen], extraArguments: ["--relay", relay.rawValue])
        // The readiness probe (connected and closed without a byte) counts as a missing header.
        let probeCounted = eventually(timeout: 4, interval: 0.1) { [self] in ((try? errors())?[.missing] ?? 0) >= 1 }
        guard probeCounted else { throw HarnessError("the readiness probe was not counted as a missing header") }
    }

    /// `proxy_header_errors` of `show stats json`.
    func errors() throws -> [ProxyHeaderFailure: Int] {
        let object = try proxy.admin.send("show stats json").jsonObject()
        guard let counts = object["proxy_header_errors"] as? [String: Any] else {
            throw HarnessError("show stats has no proxy_header_errors: \(object)")
        }
        var result: [ProxyHeaderFailure: Int] = [:]
        for failure in ProxyHeaderFailure.allCases { result[failure] = counts[failure.label] as? Int ?? -1 }
        return result
    }

    /// Whether the counts reach exactly `before` plus `added` within a few ticks.
    func eventuallyErrors(_ before: [ProxyHeaderFailure: Int], plus added: [ProxyHeaderFailure: Int]) -> Bool {
        eventually(timeout: 4, interval: 0.1) {
            guard let now = try? errors() else { return false }
            return ProxyHeaderFailure.allCases.allSatisfy { now[$0, default: 0] == before[$0, default: 0] + added[$0, default: 0] }
        }
    }
}
