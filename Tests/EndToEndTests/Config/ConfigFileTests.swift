import Foundation
import Testing

extension EndToEnd {
    /// `serve --config FILE`: several services, reload on SIGHUP and `admin reload`, `check-config`,
    /// and the state file.
    @Suite(.timeLimit(.minutes(2))) struct ConfigFile {
        @Test func twoServicesOnTwoPortsEachReachOnlyTheirOwnPool() throws {
            let a1 = try TestBackend(.identify(name: "a1")), a2 = try TestBackend(.identify(name: "a2"))
            let b1 = try TestBackend(.identify(name: "b1"))
            let listenA = try Sockets.freeEndpoint(), listenB = try Sockets.freeEndpoint()
            let proxy = try ConfiguredProxy(yaml: """
                workers: 2
                defaults:
                  health: off
                services:
                  alpha:
                    listen: ["\(listenA)"]
                    backends: ["\(a1.endpoint)", "\(a2.endpoint)"]
                  beta:
                    listen: ["\(listenB)"]
                    balance: least-conn
                    backends: ["\(b1.endpoint)"]
                """, listen: [listenA, listenB])

            let throughA = try IdentifiedClients.tally(20, through: listenA)
            let throughB = try IdentifiedClients.tally(10, through: listenB)

            #expect(Set(throughA.keys) == ["a1", "a2"], "\(throughA)")
            #expect(throughB == ["b1": 10])
            let services = try proxy.admin.send("show services json").jsonObject()["services"] as? [[String: Any]]
            #expect(services?.map { $0["name"] as? String } == ["alpha", "beta"])
            #expect(services?.last?["balance"] as? String == "least-conn")
            let rows = try adminBackendRows(socketPath: proxy.admin.path)
            #expect(Set(rows.map { "\($0.service)/\($0.address)" })
                    == ["alpha/\(a1.endpoint)", "alpha/\(a2.endpoint)", "beta/\(b1.endpoint)"])
        }

        @Test func reloadAddsRemovesReweighsAndAddsAServiceWhileClientsConnectWithoutOneFailure() throws {
            let x = try TestBackend(.identify(name: "x")), y = try TestBackend(.identify(name: "y"))
            let z = try TestBackend(.identify(name: "z")), t = try TestBackend(.identify(name: "t"))
            let listen = try Sockets.freeEndpoint(), listenT = try Sockets.freeEndpoint()
            let proxy = try ConfiguredProxy(yaml: """
                workers: 2
                services:
                  main:
                    listen: ["\(listen)"]
                    balance: weighted
                    health: off
                    backends: ["\(x.endpoint)", "\(y.endpoint)"]
                """, listen: [listen])

            // A long connection on y, which the reload removes.
            let held = try IdentifiedClients.hold(1, on: "y", through: listen)[0]
            let loop = ClientLoop(through: listen)
            try #require(eventually(timeout: 5) { loop.successes >= 50 })

            try proxy.rewrite("""
                workers: 2
                services:
                  main:
                    listen: ["\(listen)"]
                    balance: weighted
                    health: off
                    backends: ["\(x.endpoint),weight=3", "\(z.endpoint)"]
                  tail:
                    listen: ["\(listenT)"]
                    health: off
                    backends: ["\(t.endpoint)"]
                """)
            let reply = try proxy.admin.send("reload")
            #expect(reply.isOK, "\(reply)")
            let body = reply.body.joined(separator: "\n")
            #expect(body.contains("service tail added: listening on \(listenT)"), "\(body)")
            #expect(body.contains("main: backend \(z.endpoint) added (weight 1)"), "\(body)")
            #expect(body.contains("main: backend \(y.endpoint) removed (drains, then disappears once its connections end)"), "\(body)")
            #expect(body.contains("main: backend \(x.endpoint) weight 1 -> 3"), "\(body)")

            // New clients reach x and z only, about 3 to 1 (two workers, each with its own weighted
            // rotation, and the loop's clients interleaved), and the new service answers on its port.
            let before = loop.successes
            try #require(eventually(timeout: 5) { loop.successes >= before + 100 })
            let afterReload = try IdentifiedClients.tally(40, through: listen)
            #expect(Set(afterReload.keys) == ["x", "z"], "\(afterReload)")
            #expect((24...36).contains(afterReload["x"] ?? 0), "\(afterReload)")
            #expect(try IdentifiedClients.tally(3, through: listenT) == ["t": 3])

            // The connection on the removed backend still works, to the end; then y disappears.
            for round in 0..<5 { try held.roundTrip(Array("still here \(round)\n".utf8)) }
            let rows = try adminBackendRows(socketPath: proxy.admin.path)
            #expect(rows.first { $0.address == y.endpoint.description }?.state == "drain", "\(rows)")
            held.close()
            #expect(eventually(timeout: 3) {
                (try? adminBackendRows(socketPath: proxy.admin.path))?.contains { $0.address == y.endpoint.description } == false
            }, "the removed backend is still listed after its last connection closed")

            let (reached, failures) = loop.finish()
            #expect(failures.isEmpty, "\(failures.count) failed connections during the reload: \(failures.prefix(3))")
            #expect(reached.values.reduce(0, +) > 150)
            #expect(proxy.process.standardError.contains("configuration reloaded from"))
        }

        @Test func sighupReloadsAndRemovingAListenerStopsItAcceptingButKeepsItsConnection() throws {
            let a = try TestBackend(.identify(name: "a"))
            let first = try Sockets.freeEndpoint(), second = try Sockets.freeEndpoint()
            let proxy = try ConfiguredProxy(yaml: """
                services:
                  s:
                    listen: ["\(first)", "\(second)"]
                    health: off
                    backends: ["\(a.endpoint)"]
                """, listen: [first, second])
            let held = try IdentifiedClient(through: second)

            try proxy.rewrite("""
                services:
                  s:
                    listen: ["\(first)"]
                    health: off
                    backends: ["\(a.endpoint)"]
                """)
            proxy.process.signal(SIGHUP)

            #expect(eventually(timeout: 5) { (try? TCPConnection(to: second, timeout: 1)) == nil },
                    "the removed listener still accepts")
            try held.roundTrip("after the reload\n")
            #expect(try IdentifiedClients.tally(5, through: first) == ["a": 5])
            #expect(proxy.process.standardError.contains("reload on SIGHUP"))
        }

        @Test func aBrokenFileOnReloadChangesNothingAndSaysWhere() throws {
            let a = try TestBackend(.identify(name: "a")), b = try TestBackend(.identify(name: "b"))
            let listen = try Sockets.freeEndpoint()
            let good = """
                services:
                  s:
                    listen: ["\(listen)"]
                    health: off
                    backends: ["\(a.endpoint)"]
                """
            let proxy = try ConfiguredProxy(yaml: good, listen: [listen])
            try proxy.rewrite("""
                services:
                  s:
                    listen: ["\(listen)"]
                    health: off
                    backends: ["\(a.endpoint)", "\(b.endpoint)"]
                    conect-timeout: 2s
                """)

            let reply = try proxy.admin.send("reload")

            #expect(!reply.isOK)
            #expect(reply.status.contains("reload refused, nothing changed"), "\(reply)")
            #expect(reply.status.contains("switchyard.yaml:7:5: unknown key 'conect-timeout' in a service; did you mean 'connect-timeout'?"), "\(reply)")
            #expect(try IdentifiedClients.tally(6, through: listen) == ["a": 6], "the bad file's backend was added")
            // SIGHUP with the same broken file: logged, and the proxy keeps serving.
            proxy.process.signal(SIGHUP)
            #expect(eventually(timeout: 3) { proxy.process.standardError.contains("reload on SIGHUP refused") })
            #expect(proxy.process.isRunning)
            #expect(try IdentifiedClients.tally(2, through: listen) == ["a": 2])
        }

        @Test func aReloadWhoseListenAddressCannotBeBoundFailsAsAWhole() throws {
            let a = try TestBackend(.identify(name: "a")), b = try TestBackend(.identify(name: "b"))
            let listen = try Sockets.freeEndpoint()
            // Another program holds this port (no SO_REUSEPORT), so binding it must fail.
            let (holder, heldPort) = try Sockets.makeListener(host: Sockets.ipv4Loopback)
            defer { close(holder) }
            let proxy = try ConfiguredProxy(yaml: """
                services:
                  s:
                    listen: ["\(listen)"]
                    health: off
                    backends: ["\(a.endpoint)"]
                """, listen: [listen])
            try proxy.rewrite("""
                services:
                  s:
                    listen: ["\(listen)"]
                    health: off
                    backends: ["\(a.endpoint)", "\(b.endpoint)"]
                  other:
                    listen: ["127.0.0.1:\(heldPort)"]
                    health: off
                    backends: ["\(b.endpoint)"]
                """)

            let reply = try proxy.admin.send("reload")

            #expect(!reply.isOK)
            #expect(reply.status.contains("address already in use"), "\(reply)")
            #expect(try adminBackendRows(socketPath: proxy.admin.path).map(\.address) == [a.endpoint.description])
            let services = try proxy.admin.send("show services json").jsonObject()["services"] as? [[String: Any]]
            #expect(services?.count == 1)
        }

        @Test func drainKeptInTheStateFileSurvivesARestart() throws {
            let a = try TestBackend(.identify(name: "a")), b = try TestBackend(.identify(name: "b"))
            let listen = try Sockets.freeEndpoint()
            let folder = try ConfiguredProxy.makeFolder()
            defer { try? FileManager.default.removeItem(atPath: folder) }
            let yaml = """
                state-file: \(folder)/state
                services:
                  s:
                    listen: ["\(listen)"]
                    health: off
                    backends: ["\(a.endpoint)", "\(b.endpoint)"]
                """
            do {
                let proxy = try ConfiguredProxy(yaml: yaml, listen: [listen], folder: folder)
                #expect(try proxy.admin.send("drain \(a.endpoint)").isOK)
                #expect(try proxy.admin.send("weight s/\(b.endpoint) 9").isOK)
                let saved = try String(contentsOfFile: folder + "/state", encoding: .utf8)
                #expect(saved.contains("drain s/\(a.endpoint)"), "\(saved)")
                #expect(saved.contains("weight s/\(b.endpoint) 9"), "\(saved)")
                proxy.process.terminate()
                #expect(proxy.process.waitForExit(timeout: 30) == 0)
            }
            let restarted = SwitchyardProcessBox(try ConfiguredProxy(yaml: yaml, listen: [listen], folder: folder))
            let rows = try adminBackendRows(socketPath: restarted.proxy.admin.path)
            #expect(rows.first { $0.address == a.endpoint.description }?.state == "drain", "\(rows)")
            #expect(rows.first { $0.address == b.endpoint.description }?.weight == 9, "\(rows)")
            #expect(try IdentifiedClients.tally(6, through: listen) == ["b": 6])
            #expect(restarted.proxy.process.standardError.contains("state file: drain s/\(a.endpoint)"))
        }

        @Test func aCorruptStateFileStopsTheStartAndIsNamed() throws {
            let a = try TestBackend(.echo)
            let listen = try Sockets.freeEndpoint()
            let folder = try ConfiguredProxy.makeFolder()
            defer { try? FileManager.default.removeItem(atPath: folder) }
            try ConfiguredProxy.write("drain s/10.0.0.1\n", to: folder + "/state")
            try ConfiguredProxy.write("""
                admin-socket: off
                state-file: \(folder)/state
                services: {s: {listen: ["\(listen)"], backends: ["\(a.endpoint)"]}}
                """, to: folder + "/bad.yaml")

            let proxy = try SwitchyardProcess(arguments: ["serve", "--config", folder + "/bad.yaml"])

            #expect(proxy.waitForExit(timeout: 30) == 1)
            #expect(proxy.standardError.contains("the state file is corrupt, nothing was started: \(folder)/state:1:1"), "\(proxy.standardError)")
        }

        @Test func checkConfigExitsZeroForAValidFileAndOneWithTheErrors() throws {
            let folder = try ConfiguredProxy.makeFolder()
            defer { try? FileManager.default.removeItem(atPath: folder) }
            try ConfiguredProxy.write("""
                services:
                  pg: {listen: ["127.0.0.1:5000"], backends: ["127.0.0.1:5432", "localhost:5433"]}
                """, to: folder + "/good.yaml")
            try ConfiguredProxy.write("""
                services:
                  pg: {listen: ["127.0.0.1:5000"], backends: ["127.0.0.1:5432"], balance: fastest}
                """, to: folder + "/bad.yaml")
            try ConfiguredProxy.write("""
                services:
                  pg: {listen: ["127.0.0.1:5000"], backends: ["no-such-host.invalid:5432"]}
                """, to: folder + "/unresolvable.yaml")

            let good = try SwitchyardProcess(arguments: ["check-config", folder + "/good.yaml"])
            let bad = try SwitchyardProcess(arguments: ["check-config", folder + "/bad.yaml"])
            let unresolvable = try SwitchyardProcess(arguments: ["check-config", folder + "/unresolvable.yaml"])
            let missing = try SwitchyardProcess(arguments: ["check-config", folder + "/missing.yaml"])

            #expect(good.waitForExit(timeout: 30) == 0, "\(good.standardError)")
            #expect(bad.waitForExit(timeout: 30) == 1)
            #expect(bad.standardError.contains("bad.yaml:2:75: balance: 'fastest' is not one of"), "\(bad.standardError)")
            #expect(unresolvable.waitForExit(timeout: 30) == 1)
            #expect(unresolvable.standardError.contains("no-such-host.invalid"), "\(unresolvable.standardError)")
            #expect(missing.waitForExit(timeout: 30) == 1)
            #expect(missing.standardError.contains("no such file"), "\(missing.standardError)")
        }
    }
}

/// Keeps a restarted proxy alive for the rest of a test.
struct SwitchyardProcessBox {
    let proxy: ConfiguredProxy
    init(_ proxy: ConfiguredProxy) { self.proxy = proxy }
}
