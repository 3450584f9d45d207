import Foundation
import Glibc
import Testing

extension EndToEnd {
    /// Per-client controls (issue 27, section 3): `allow`/`deny`, the per-source limits shared
    /// by the workers, `max-connection-rate`, `reject-with`, their metric, access-log causes,
    /// `show sources`, and reload. Clients come from 127.0.0.2, 127.0.0.3, ... so that each test
    /// has sources of its own.
    @Suite(.timeLimit(.minutes(2))) struct ClientControls {
        @Test func allowAndDenyRefuseByAddressWithAResetCountedByReasonAndLogged() throws {
            let service = try ControlledService("web", controls: "allow: [127.0.0.0/29]\ndeny: [127.0.0.3]")
            let listen = service.listen
            let served = try TCPConnection(to: listen, localHost: "127.0.0.2")
            try served.roundTrip(Array("allowed".utf8))
            #expect(try exchange(from: "127.0.0.3", to: listen, sending: [], timeout: 5).end == .reset, "denied")
            #expect(try exchange(from: "127.0.0.9", to: listen, sending: [], timeout: 5).end == .reset, "not in allow")
            try served.roundTrip(Array("still served".utf8))

            #expect(service.rejected("deny", becomes: 1) == 1)
            #expect(service.rejected("not_allowed", becomes: 1) == 1)
            #expect(service.rejected("source_limit", becomes: 0) == 0)
            #expect(service.rejected("source_rate", becomes: 0) == 0)

            var lines: [[String: Any]] = []
            #expect(eventually(timeout: 5, interval: 0.1) {
                lines = service.accessLogLines()
                return lines.count >= 2
            })
            let rejected = Dictionary(lines.compactMap { line -> (String, String)? in
                guard let cause = line["cause"] as? String, cause.hasPrefix("rejected_") else { return nil }
                return (line["client_address"] as? String ?? "?", cause)
            }, uniquingKeysWith: { a, _ in a })
            #expect(rejected == ["127.0.0.3": "rejected_deny", "127.0.0.9": "rejected_not_allowed"], "\(lines)")

            let sources = service.sources()
            let byAddress = Dictionary(sources.map { ($0["source"] as? String ?? "?", $0) }, uniquingKeysWith: { a, _ in a })
            #expect(byAddress["127.0.0.2"]?["open"] as? Int == 1, "\(sources)")
            #expect(byAddress["127.0.0.3"]?["refusals"] as? Int == 1, "\(sources)")
            #expect(byAddress["127.0.0.9"]?["refusals"] as? Int == 1, "\(sources)")
            let table = try service.proxy.admin.send("show sources")
            #expect(table.isOK && table.description.contains("SOURCE"), "\(table)")
            let cli = try service.proxy.admin.runClient(["show", "sources", "web"])
            #expect(cli.exitStatus == 0 && cli.standardOutput.contains("127.0.0.3"), "\(cli)")
            let help = try AdminSocket.runClient(["--help"])
            #expect(help.exitStatus == 0 && help.standardOutput.contains("show sources"), "\(help)")
        }

        @Test func ipv6ClientsAreAllowedAndDeniedByIPv6Blocks() throws {
            guard Sockets.ipv6LoopbackAvailable else { return }
            let backend = try TestBackend(.echo)
            let denying = try Sockets.freeEndpoint(host: "::1")
            let allowing = try Sockets.freeEndpoint(host: "::1")
            let proxy = try ConfiguredProxy(yaml: """
                defaults:
                  health: off
                  backends: ["\(backend.endpoint)"]
                services:
                  v6-deny:
                    listen: ["\(denying)"]
                    deny: ["::1"]
                  v6-allow:
                    listen: ["\(allowing)"]
                    allow: ["::1/128"]
                """, listen: [allowing])
            #expect(try exchange(from: "::1", to: denying, sending: [], timeout: 5).end == .reset)
            let served = try TCPConnection(to: allowing)
            try served.roundTrip(Array("v6".utf8))
            var sources: [[String: Any]] = []
            // The readiness probe came from ::1 too; its close may still be on its way.
            #expect(eventually(timeout: 5, interval: 0.05) {
                sources = (try? proxy.admin.send("show sources json").jsonObject()["sources"] as? [[String: Any]]) ?? []
                return sources.contains { $0["service"] as? String == "v6-allow" && $0["source"] as? String == "::1" && $0["open"] as? Int == 1 }
            }, "\(sources)")
            #expect(sources.contains { $0["service"] as? String == "v6-deny" && $0["source"] as? String == "::1" && $0["refusals"] as? Int == 1 }, "\(sources)")
        }

        @Test func behindAcceptProxyTheHeadersAddressIsJudged() throws {
            let service = try ControlledService("edge", controls: "accept-proxy: true\ndeny: [203.0.113.0/24]")
            let listen = service.listen
            // The peer (127.0.0.1) is not denied; the client the header names is.
            let denied = try exchange(from: "127.0.0.1", to: listen,
                                      sending: Array("PROXY TCP4 203.0.113.9 198.51.100.1 4242 443\r\nhello".utf8), timeout: 5)
            #expect(denied.end == .reset && denied.received.isEmpty, "\(denied.end)")
            // An IPv4-mapped IPv6 client meets the IPv4 rules.
            let mapped = try exchange(from: "127.0.0.1", to: listen,
                                      sending: Array("PROXY TCP6 ::ffff:203.0.113.10 2001:db8::1 4242 443\r\nhello".utf8), timeout: 5)
            #expect(mapped.end == .reset && mapped.received.isEmpty, "\(mapped.end)")
            let allowed = try TCPConnection(to: listen)
            try allowed.send("PROXY TCP4 198.51.100.7 198.51.100.1 4242 443\r\n")
            try allowed.roundTrip(Array("through".utf8))
            #expect(service.rejected("deny", becomes: 2) == 2)
            let sources = service.sources()
            #expect(sources.contains { $0["source"] as? String == "203.0.113.9" && $0["refusals"] as? Int == 1 }, "\(sources)")
            #expect(sources.contains { $0["source"] as? String == "203.0.113.10" && $0["refusals"] as? Int == 1 }, "\(sources)")
        }

        @Test func connectionsPerSourceAreCappedExactlyAcrossTwoWorkers() throws {
            let service = try ControlledService("capped", controls: "max-connections-per-source: 3")
            let listen = service.listen
            // Each client is a new 4-tuple, so SO_REUSEPORT spreads them over both workers.
            var held: [String: [TCPConnection]] = [:]
            var refused: [String: Int] = [:]
            for source in ["127.0.0.2", "127.0.0.3"] {
                for index in 0..<8 {
                    if let connection = Self.servedClient(from: source, to: listen, index: index) {
                        held[source, default: []].append(connection)
                    } else {
                        refused[source, default: 0] += 1
                    }
                }
            }
            #expect(held.mapValues(\.count) == ["127.0.0.2": 3, "127.0.0.3": 3])
            #expect(refused == ["127.0.0.2": 5, "127.0.0.3": 5])
            let sources = service.sources()
            #expect(sources.contains { $0["source"] as? String == "127.0.0.2" && $0["open"] as? Int == 3 && $0["refusals"] as? Int == 5 }, "\(sources)")

            // One closes: exactly one more is admitted, whichever worker takes it.
            held["127.0.0.2"]!.removeFirst().close()
            #expect(eventually(timeout: 5, interval: 0.05) {
                service.sources().contains { $0["source"] as? String == "127.0.0.2" && $0["open"] as? Int == 2 }
            })
            let again = (0..<3).compactMap { Self.servedClient(from: "127.0.0.2", to: listen, index: 100 + $0) }
            #expect(again.count == 1)
            #expect(service.rejected("source_limit", becomes: 12) == 12)
            _ = (held, again)
        }

        @Test func connectionRatePerSourceIsATokenBucketSharedByTwoWorkers() throws {
            let service = try ControlledService("rated", controls: "connection-rate-per-source: 1/s\nconnection-burst-per-source: 4")
            let listen = service.listen
            let started = Date()
            var served = 0
            for index in 0..<12 {
                if let connection = Self.servedClient(from: "127.0.0.4", to: listen, index: index) {
                    served += 1
                    connection.close()
                }
            }
            // The burst of 4, plus at most one token per second the loop took (a slow run refills more).
            let elapsed = Date().timeIntervalSince(started)
            #expect(served >= 4 && served <= 4 + Int(elapsed.rounded(.up)), "\(served) served in \(elapsed) s")
            #expect(service.rejected("source_rate", becomes: Double(12 - served)) == Double(12 - served))
            // Another source has its own bucket.
            let other = try #require(Self.servedClient(from: "127.0.0.5", to: listen, index: 0))
            other.close()
        }

        @Test func maxConnectionRatePacesAcceptsAndRefusesNobody() throws {
            let service = try ControlledService("paced", controls: "max-connection-rate: 5/s")
            let (listen, metrics) = (service.listen, service.metrics)
            // Twenty clients at once: the kernel completes every handshake; the proxy takes them
            // from the backlog at its pace.
            let clients = try (0..<20).map { _ in try TCPConnection(to: listen, timeout: 60) }
            for (index, client) in clients.enumerated() {
                try client.roundTrip(Array("paced \(index)".utf8), timeout: 60)
            }
            let labels = #"{service="paced",listener="\#(listen)"}"#
            var text = ""
            #expect(eventually(timeout: 5, interval: 0.1) {
                text = (try? httpGet(metrics, "/metrics")) ?? ""
                return metricValue(text, "switchyard_connections_accepted_total\(labels)") == 21  // with the readiness probe
            }, "\(text.prefix(3000))")
            #expect((metricValue(text, "switchyard_accept_rate_pauses_total\(labels)") ?? 0) >= 1)
            #expect(metricValue(text, "switchyard_connections_refused_total\(labels)") == 0)
            for reason in ["deny", "not_allowed", "source_limit", "source_rate"] {
                #expect(service.rejected(reason, becomes: 0) == 0)
            }
        }

        @Test func aReloadThatDeniesAnOpenConnectionsSourceKeepsItRelaying() throws {
            let backend = try TestBackend(.echo)
            let listen = try Sockets.freeEndpoint()
            func yaml(_ extra: String) -> String {
                """
                services:
                  web:
                    listen: ["\(listen)"]
                    health: off
                    backends: ["\(backend.endpoint)"]
                \(extra)
                """
            }
            let proxy = try ConfiguredProxy(yaml: yaml(""), listen: [listen])
            let open = try TCPConnection(to: listen, localHost: "127.0.0.6")
            try open.roundTrip(Array("before".utf8))
            try proxy.rewrite(yaml("    deny: [127.0.0.6]\n    reject-with: close\n"))
            let reply = try proxy.admin.send("reload")
            #expect(reply.isOK, "\(reply)")
            // A new client from the same source gets a clean close; the open connection relays on.
            #expect(eventually(timeout: 5, interval: 0.1) {
                (try? exchange(from: "127.0.0.6", to: listen, sending: [], timeout: 3).end) == .endOfFile
            })
            let other = try TCPConnection(to: listen, localHost: "127.0.0.7")
            try other.roundTrip(Array("other".utf8))
            try open.verifyEchoStream(seed: 0x27_03, count: 256 << 10, timeout: 20)
        }

        @Test func theCommandLineTakesTheSameControlsAsFlags() throws {
            let backend = try TestBackend(.echo)
            let proxy = try AdminProxy(workers: 2, options: ["--deny", "127.0.0.8,::2", "--max-connections-per-source", "1", "--reject-with", "close"],
                                       backends: [backend.endpoint.description])
            #expect(try exchange(from: "127.0.0.8", to: proxy.listen, sending: [], timeout: 5).end == .endOfFile)
            let first = try #require(Self.servedClient(from: "127.0.0.9", to: proxy.listen, index: 0))
            #expect(try exchange(from: "127.0.0.9", to: proxy.listen, sending: [], timeout: 5).end == .endOfFile)
            first.close()
        }

        /// A connection from `source` that was served (an echo came back), or nil if it was
        /// refused (reset or closed before the echo).
        static func servedClient(from source: String, to listen: TCPEndpoint, index: Int) -> TCPConnection? {
            guard let connection = try? TCPConnection(to: listen, timeout: 5, localHost: source) else { return nil }
            do {
                try connection.roundTrip(Array("client \(index)".utf8))
                return connection
            } catch {
                connection.close()
                return nil
            }
        }
    }
}

/// One service `name` with the per-client control keys `controls` (YAML lines at service
/// level), an echo backend, two workers, a metrics listener and a JSON access log.
private final class ControlledService {
    let name: String
    let backend: TestBackend
    let listen: TCPEndpoint
    let metrics: TCPEndpoint
    let folder: String
    let accessLog: String
    let proxy: ConfiguredProxy

    init(_ name: String, controls: String) throws {
        self.name = name
        backend = try TestBackend(.echo)
        listen = try Sockets.freeEndpoint()
        metrics = try Sockets.freeEndpoint()
        folder = try ConfiguredProxy.makeFolder()
        accessLog = folder + "/access.log"
        let indented = controls.split(separator: "\n").map { "    " + $0 }.joined(separator: "\n")
        proxy = try ConfiguredProxy(yaml: """
            workers: 2
            metrics: \(metrics)
            access-log: \(accessLog)
            access-log-format: json
            services:
              \(name):
                listen: ["\(listen)"]
                health: off
                backends: ["\(backend.endpoint)"]
            \(indented)
            """, listen: [listen], folder: folder)
    }

    deinit {
        try? FileManager.default.removeItem(atPath: folder)
    }

    /// The access log's lines, parsed.
    func accessLogLines() -> [[String: Any]] {
        let text = (try? String(contentsOfFile: accessLog, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
    }

    /// `switchyard_connections_rejected_total` of the listener for `reason`, once it equals
    /// `expected` (within 5 s); the last value read otherwise.
    func rejected(_ reason: String, becomes expected: Double) -> Double? {
        var value: Double?
        _ = eventually(timeout: 5, interval: 0.1) {
            let text = (try? httpGet(metrics, "/metrics")) ?? ""
            value = metricValue(text, "switchyard_connections_rejected_total{service=\"\(name)\",listener=\"\(listen)\",reason=\"\(reason)\"}")
            return value == expected
        }
        return value
    }

    /// The rows of `show sources SERVICE json`.
    func sources() -> [[String: Any]] {
        (try? proxy.admin.send("show sources \(name) json").jsonObject()["sources"] as? [[String: Any]]) ?? []
    }
}
