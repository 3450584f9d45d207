import Foundation
import Testing

extension EndToEnd {
    /// `route-by-sni`: one port, TLS backends chosen by the ClientHello's server name.
    @Suite(.timeLimit(.minutes(3))) struct SNIRouting {
        @Test func eachServerNameReachesItsBackendWithItsCertificateAndEveryByteIntact() throws {
            let peers = try TLSPeers()
            let api = try peers.startServer(name: "api.test"), db = try peers.startServer(name: "a.db.test")
            let web = try peers.startServer(name: "web.test")
            defer { for process in [api.process, db.process, web.process] { kill(process.processIdentifier, SIGKILL) } }
            let edge = try Sockets.freeEndpoint(), metrics = try Sockets.freeEndpoint()
            let proxy = try ConfiguredProxy(yaml: """
                metrics: \(metrics)
                defaults: {health: off}
                services:
                  tls-edge:
                    listen: ["\(edge)"]
                    route-by-sni:
                      "api.test": api
                      "*.db.test": db
                      default: web
                  api: {backends: ["127.0.0.1:\(api.port)"]}
                  db: {backends: ["127.0.0.1:\(db.port)"]}
                  web: {backends: ["127.0.0.1:\(web.port)"]}
                """, listen: [edge])

            #expect(try peers.connect(edge, serverName: "api.test") == peers.fingerprint(of: "api.test"))
            #expect(try peers.connect(edge, serverName: "API.Test") == peers.fingerprint(of: "api.test"), "names compare case-insensitively")
            #expect(try peers.connect(edge, serverName: "a.db.test") == peers.fingerprint(of: "a.db.test"), "one-label wildcard")
            #expect(try peers.connect(edge, serverName: "b.db.test") == peers.fingerprint(of: "a.db.test"))
            #expect(try peers.connect(edge, serverName: "x.y.db.test") == peers.fingerprint(of: "web.test"), "a wildcard is one label")
            #expect(try peers.connect(edge, serverName: nil) == peers.fingerprint(of: "web.test"), "no SNI goes to default")
            #expect(try peers.connect(edge, serverName: "nobody.test") == peers.fingerprint(of: "web.test"))

            // Counts reach `show services` with the workers' next tick.
            var routes: [String: Int]?
            #expect(eventually(timeout: 3, interval: 0.1) {
                let services = (try? proxy.admin.send("show services json").jsonObject()["services"]) as? [[String: Any]]
                routes = services?.first { $0["name"] as? String == "tls-edge" }?["routes"] as? [String: Int]
                return routes?["api.test"] == 2 && routes?["*.db.test"] == 2 && routes?["no_sni"] == 1 && routes?["no_match"] == 2
            }, "\(String(describing: routes))")

            // 256 MiB through a routed connection: intact, and moved to a pipe once it streams
            // (seen as splice pipes among the proxy's descriptors while it runs).
            let pid = proxy.process.pid
            @Sendable func pipes() -> Int {
                let fds = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd")) ?? []
                return fds.filter { ((try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/fd/\($0)")) ?? "").hasPrefix("pipe:") }.count
            }
            let baseline = pipes()
            let sawPipe = StopSignal(), done = StopSignal()
            let watcher = BackgroundTask {
                while !done.isRaised {
                    if pipes() > baseline { sawPipe.raise() }
                    usleep(20_000)
                }
            }
            #expect(try peers.connect(edge, serverName: "api.test", bytes: 256 << 20) == peers.fingerprint(of: "api.test"))
            done.raise()
            _ = watcher.join(timeout: 5)
            #expect(sawPipe.isRaised, "the routed 256 MiB stream never used a splice pipe")
            #expect(eventually(timeout: 3, interval: 0.1) {
                let exposition = (try? httpGet(metrics, "/metrics")) ?? ""
                return metricValue(exposition, "switchyard_sni_routed_connections_total{service=\"tls-edge\",listener=\"\(edge)\",route=\"api.test\"}") == 3
            })
        }

        @Test func garbageAndSilentClientsAreClosedAndCountedWhenThereIsNoDefault() throws {
            let backend = try TestBackend(.echo)
            let edge = try Sockets.freeEndpoint()
            let proxy = try ConfiguredProxy(yaml: """
                defaults: {health: off}
                services:
                  tls-edge:
                    listen: ["\(edge)"]
                    sni-timeout: 500ms
                    route-by-sni: {"api.test": api}
                  api: {backends: ["\(backend.endpoint)"]}
                """, listen: [edge])
            let before = backend.acceptedCount

            let garbage = try TCPConnection(to: edge)
            try garbage.send("GET / HTTP/1.1\r\nHost: api.test\r\n\r\n")
            let garbageEnd = garbage.readToEnd(timeout: 3)
            let silent = try TCPConnection(to: edge)
            let silentEnd = silent.readToEnd(timeout: 5)

            #expect(garbageEnd.end.isClosed && garbageEnd.checksum.byteCount == 0, "\(garbageEnd.end)")
            #expect(silentEnd.end.isClosed, "the silent client was not closed at the timeout: \(silentEnd.end)")
            #expect(silentEnd.elapsed >= 0.4, "closed after \(silentEnd.elapsed) s, before the 500ms sni-timeout")
            #expect(backend.acceptedCount == before, "an unrouted client reached a backend")
            // Workers publish their figures at each tick, so the count may lag the close a little.
            var routes: [String: Int]?
            let counted = eventually(timeout: 3, interval: 0.1) {
                let services = (try? proxy.admin.send("show services json").jsonObject())?["services"] as? [[String: Any]]
                routes = services?.first { $0["name"] as? String == "tls-edge" }?["routes"] as? [String: Int]
                return (routes?["malformed"] ?? 0) >= 2
            }
            #expect(counted, "\(String(describing: routes))")
        }
    }
}
