import Foundation
import Testing

extension EndToEnd {
    /// `dns:` and `dns-srv:` pools through the real binary against a real dnsmasq.
    @Suite(.timeLimit(.minutes(2))) struct DNSPools {
        static let hosts = ["127.0.0.2", "127.0.0.3", "127.0.0.4"]

        private func addresses(_ proxy: ConfiguredProxy) -> Set<String> {
            Set(((try? adminBackendRows(socketPath: proxy.admin.path)) ?? []).filter { $0.state == "ready" }.map(\.address))
        }

        @Test func aPoolFollowsItsRecordsWhileClientsKeepConnectingWithoutOneFailure() throws {
            let (port, backends) = try SamePortBackends.start(hosts: Self.hosts)
            _ = backends
            let dns = try DnsmasqServer(hosts: ["127.0.0.2 pool.test", "127.0.0.3 pool.test"])
            let listen = try Sockets.freeEndpoint()
            let proxy = try ConfiguredProxy(yaml: """
                resolvers: ["\(dns.endpoint)"]
                services:
                  pool:
                    listen: ["\(listen)"]
                    dns: pool.test:\(port)
                    dns-min-ttl: 200ms
                    dns-max-ttl: 1s
                    health: off
                """, listen: [listen])
            #expect(eventually(timeout: 5) { addresses(proxy) == ["127.0.0.2:\(port)", "127.0.0.3:\(port)"] },
                    "\(addresses(proxy))")
            let loop = ClientLoop(through: listen)
            try #require(eventually(timeout: 5) { loop.successes >= 50 })

            // Added, removed and changed: .2 goes, .4 comes, .3 stays.
            try dns.setHosts(["127.0.0.3 pool.test", "127.0.0.4 pool.test"])
            #expect(eventually(timeout: 6) { addresses(proxy) == ["127.0.0.3:\(port)", "127.0.0.4:\(port)"] },
                    "\(addresses(proxy))")
            #expect(eventually(timeout: 3) {
                (try? adminBackendRows(socketPath: proxy.admin.path))?.contains { $0.address == "127.0.0.2:\(port)" } == false
            }, "the vanished address is still listed once idle")
            let before = loop.successes
            try #require(eventually(timeout: 5) { loop.successes >= before + 50 })
            let after = try IdentifiedClients.tally(20, through: listen)
            #expect(Set(after.keys) == ["127.0.0.3", "127.0.0.4"], "\(after)")

            let (_, failures) = loop.finish()
            #expect(failures.isEmpty, "\(failures.count) failed connections while the records changed: \(failures.prefix(3))")
            #expect(proxy.process.standardError.contains("DNS: 127.0.0.2:\(port) gone (drains)"))
        }

        @Test func aDeadDNSServerKeepsTheLastSetAndIsCounted() throws {
            let (port, backends) = try SamePortBackends.start(hosts: Array(Self.hosts.prefix(2)))
            _ = backends
            let dns = try DnsmasqServer(hosts: ["127.0.0.2 pool.test", "127.0.0.3 pool.test"])
            let listen = try Sockets.freeEndpoint()
            let proxy = try ConfiguredProxy(yaml: """
                resolvers: ["\(dns.endpoint)"]
                services:
                  pool:
                    listen: ["\(listen)"]
                    dns: pool.test:\(port)
                    dns-max-ttl: 1s
                    health: off
                """, listen: [listen])
            try #require(eventually(timeout: 5) { addresses(proxy).count == 2 })

            dns.stop()

            let failuresSeen = eventually(timeout: 8) {
                let services = (try? proxy.admin.send("show services json").jsonObject()["services"]) as? [[String: Any]]
                return (services?.first?["dns_failures"] as? Int ?? 0) >= 2
            }
            #expect(failuresSeen, "no DNS failure was counted")
            #expect(addresses(proxy) == ["127.0.0.2:\(port)", "127.0.0.3:\(port)"], "the last set was not kept")
            #expect(Set(try IdentifiedClients.tally(10, through: listen).keys) == ["127.0.0.2", "127.0.0.3"])
        }

        @Test func srvWeightsBecomeBackendWeights() throws {
            let (port, backends) = try SamePortBackends.start(hosts: Array(Self.hosts.prefix(2)))
            _ = backends
            let dns = try DnsmasqServer(
                hosts: ["127.0.0.2 heavy.test", "127.0.0.3 light.test"],
                services: ["_db._tcp.test,heavy.test,\(port),0,3", "_db._tcp.test,light.test,\(port),0,1"])
            let listen = try Sockets.freeEndpoint()
            let proxy = try ConfiguredProxy(yaml: """
                resolvers: ["\(dns.endpoint)"]
                services:
                  db:
                    listen: ["\(listen)"]
                    balance: weighted
                    dns-srv: _db._tcp.test
                    health: off
                """, listen: [listen])
            try #require(eventually(timeout: 5) { addresses(proxy).count == 2 })

            let rows = try adminBackendRows(socketPath: proxy.admin.path)
            #expect(rows.first { $0.address == "127.0.0.2:\(port)" }?.weight == 3, "\(rows)")
            #expect(rows.first { $0.address == "127.0.0.3:\(port)" }?.weight == 1, "\(rows)")
            let reached = try IdentifiedClients.tally(40, through: listen)
            #expect(reached == ["127.0.0.2": 30, "127.0.0.3": 10], "\(reached)")
        }

        @Test func aDNSPoolWithABackendListIsRefusedWithItsLine() throws {
            let folder = try ConfiguredProxy.makeFolder()
            defer { try? FileManager.default.removeItem(atPath: folder) }
            try ConfiguredProxy.write("""
                services:
                  pool:
                    listen: ["127.0.0.1:7000"]
                    backends: ["127.0.0.1:7001"]
                    dns: pool.test:7001
                """, to: folder + "/both.yaml")
            let check = try SwitchyardProcess(arguments: ["check-config", folder + "/both.yaml"])
            #expect(check.waitForExit(timeout: 30) == 1)
            #expect(check.standardError.contains("both.yaml:5:10: service 'pool' has both backends and dns"), "\(check.standardError)")
        }
    }
}
