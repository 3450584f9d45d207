import Foundation
import Glibc
import Testing

extension EndToEnd {
    /// Real network faults between the proxy and its backends, made by the kernel: nftables drop
    /// rules and `tc tbf` on veth pairs between network namespaces (see `NetworkLab`). The proxy,
    /// its clients (on 127.0.0.1 of the proxy's namespace) and every backend run inside.
    @Suite(.enabled(if: NetworkLab.isAvailable, "network namespaces cannot be created here; NetworkLab.unavailableReason says why"))
    struct NetworkFaults {
        /// The proxy's namespace, and one namespace per backend joined to it by a veth pair:
        /// backend i listens on `links[i].bAddress`.
        struct Topology {
            let lab: NetworkLab
            let proxy: NetworkNamespace
            let backends: [NetworkNamespace]
            let links: [VethLink]

            init(backends count: Int) throws {
                if let reason = NetworkLab.unavailableReason { throw HarnessError(reason) }
                lab = try NetworkLab()
                proxy = try lab.namespace("p")
                var backends: [NetworkNamespace] = []
                var links: [VethLink] = []
                for index in 1...count {
                    let namespace = try lab.namespace("b\(index)")
                    backends.append(namespace)
                    links.append(try lab.link(proxy, namespace))
                }
                self.backends = backends
                self.links = links
            }

            /// Starts a test backend inside backend namespace `index`, on its link address.
            func startBackend(_ index: Int, _ behavior: BackendBehavior) throws -> TestBackend {
                let host = links[index].bAddress
                return try backends[index].run { try TestBackend(behavior, host: host) }
            }

            /// Starts the proxy inside the proxy namespace, listening on its 127.0.0.1.
            func startProxy(relay: RelayMode = .auto, options: [String], backends: [TestBackend], healthChecks: Bool = false) throws -> AdminProxy {
                let endpoints = backends.map { $0.endpoint.description }
                return try proxy.run { try AdminProxy(relay: relay, workers: 2, healthChecks: healthChecks, options: options, backends: endpoints) }
            }

            /// A client connection to the proxy, made from inside the proxy namespace.
            func connect(to proxy: AdminProxy, timeout: Double = 5) throws -> TCPConnection {
                let listen = proxy.listen
                return try self.proxy.run { try TCPConnection(to: listen, timeout: timeout) }
            }

            /// A client of an `.identify` backend: the connection and the name it announced.
            func identify(through proxy: AdminProxy, timeout: Double = 3) throws -> (connection: TCPConnection, backend: String) {
                let listen = proxy.listen
                return try self.proxy.run { try IdentifiedClients.connect(to: listen, timeout: timeout) }
            }
        }

        @Test func randomLossBothWaysLosesNoByteAndStallsNoStream() throws {
            let topology = try Topology(backends: 1)
            let backend = try topology.startBackend(0, .echo)
            // Health checks off: a lost SYN costs a second, and this test is about the relay.
            let proxy = try topology.startProxy(options: ["--connect-timeout", "5s"], backends: [backend])
            // 5 % of the packets in each direction of the backend link are dropped.
            try topology.backends[0].nft("""
                table inet fault {
                    chain input { type filter hook input priority 0; policy accept; numgen random mod 20 == 0 counter drop comment "loss"; }
                    chain output { type filter hook output priority 0; policy accept; numgen random mod 20 == 0 counter drop comment "loss"; }
                }
                """)

            let started = Date()
            let failures = runInParallel(jobs: 4, parallelism: 4, timeout: 40) { job in
                let connection = try topology.connect(to: proxy)
                defer { connection.close() }
                try connection.verifyEchoStream(seed: UInt64(0x1055 + job), count: 8 << 20, timeout: 30)
            }
            let elapsed = Date().timeIntervalSince(started)
            let dropped = try topology.backends[0].packetsCounted(comment: "loss")
            #expect(failures.isEmpty, "\(failures); \(dropped) packets dropped; stderr:\n\(proxy.process.standardError)")
            #expect(dropped > 20, "the loss rules dropped only \(dropped) packets: the test did not test loss")
            #expect(elapsed < 30, "4 streams of 8 MiB took \(elapsed) s")
        }

        @Test func droppedSynsTimeOutTheConnectAndFailOverToAnotherBackend() throws {
            let topology = try Topology(backends: 2)
            let unreachable = try topology.startBackend(0, .identify(name: "b1"))
            let live = try topology.startBackend(1, .identify(name: "b2"))
            // Every SYN to b1 is dropped: a connect there hangs until the proxy gives up.
            try topology.backends[0].nft("""
                table inet fault {
                    chain input { type filter hook input priority 0; policy accept; tcp flags & (syn | ack) == syn counter drop comment "syn"; }
                }
                """)
            // No health checks: the proxy keeps offering b1, so every other client meets the timeout.
            let proxy = try topology.startProxy(
                options: ["--connect-timeout", "400ms", "--balance", "round-robin"], backends: [unreachable, live])

            var slow = 0
            for client in 0..<8 {
                let started = Date()
                let (connection, backend) = try topology.identify(through: proxy, timeout: 3)
                let waited = Date().timeIntervalSince(started)
                connection.close()
                #expect(backend == "b2", "client \(client) reached \(backend)")
                #expect(waited < 2, "client \(client) waited \(waited) s for a backend")
                if waited >= 0.35 { slow += 1 }
            }
            let droppedSyns = try topology.backends[0].packetsCounted(comment: "syn")
            // With two workers each rotating on its own, at least a few clients tried b1 first.
            #expect(slow >= 2, "only \(slow) of 8 clients waited out a connect timeout")
            #expect(droppedSyns >= slow, "\(droppedSyns) SYNs dropped")
            #expect(proxy.process.standardError.contains("connect timed out after 400ms"), "stderr:\n\(proxy.process.standardError)")
        }

        @Test func blackholedBackendFailsItsHealthChecksAndNewClientsMoveAway() throws {
            let topology = try Topology(backends: 2)
            let doomed = try topology.startBackend(0, .identify(name: "b1"))
            let live = try topology.startBackend(1, .identify(name: "b2"))
            let proxy = try topology.startProxy(
                options: ["--connect-timeout", "500ms", "--health-interval", "200ms", "--health-timeout", "200ms",
                          "--rise", "1", "--fall", "2"],
                backends: [doomed, live], healthChecks: true)
            let name = doomed.endpoint.description
            #expect(eventually(timeout: 5, interval: 0.05) { (try? proxy.admin.backends())?[name]?["health"] as? String == "up" })
            var reachedBefore: Set<String> = []
            for _ in 0..<8 {
                let (connection, backend) = try topology.identify(through: proxy)
                connection.close()
                reachedBefore.insert(backend)
            }
            #expect(reachedBefore == ["b1", "b2"], "before the blackhole both backends serve: \(reachedBefore)")

            // Every packet to and from b1 is dropped: no reset, no refusal, only silence.
            try topology.backends[0].nft("""
                table inet fault {
                    chain input { type filter hook input priority 0; policy drop; }
                    chain output { type filter hook output priority 0; policy drop; }
                }
                """)
            let blackholed = Date()
            let down = eventually(timeout: 5, interval: 0.05) { (try? proxy.admin.backends())?[name]?["health"] as? String == "down" }
            let detectedAfter = Date().timeIntervalSince(blackholed)
            let row = try proxy.admin.backends()[name]
            #expect(down, "b1 was not marked down within 5 s: \(String(describing: row))")
            // Two failed checks of 200 ms timeout, 200 ms apart, plus scheduling.
            #expect(detectedAfter < 2, "b1 marked down only after \(detectedAfter) s")
            #expect((row?["last_check"] as? String)?.contains("timeout") == true, "last check: \(String(describing: row?["last_check"]))")

            for client in 0..<8 {
                let started = Date()
                let (connection, backend) = try topology.identify(through: proxy)
                connection.close()
                #expect(backend == "b2", "client \(client) after the blackhole reached \(backend)")
                #expect(Date().timeIntervalSince(started) < 1, "client \(client) was not served at once")
            }
        }

        @Test(arguments: [RelayMode.copy, .splice])
        func rateLimitedBackendLinkSlowsTheClientInsteadOfGrowingTheProxy(relay: RelayMode) throws {
            let topology = try Topology(backends: 1)
            let backend = try topology.startBackend(0, .sinkThenReply)
            // 128 buffers per worker (8 MiB): the copy relay hands buffers out in ring order, so a
            // stream touches the whole pool in time; with the default 1024 that alone is 128 MiB
            // of resident memory over two workers, and the test is about the data, not the pool.
            let proxy = try topology.startProxy(relay: relay, options: ["--buffers", "128"], backends: [backend])
            // The proxy's side of the backend link sends at most 80 Mbit/s (10 MB/s).
            try topology.proxy.tc(["qdisc", "add", "dev", topology.links[0].interface, "root", "tbf",
                                   "rate", "80mbit", "burst", "256kb", "latency", "100ms"])
            let baseline = try #require(ProcessMetrics.residentKiB(of: proxy.process.pid))

            // The client writes 32 MiB as fast as its socket takes them, eight times faster than
            // the link drains them; the proxy must pass the pressure back instead of buffering.
            let size = 32 << 20
            let connection = try topology.connect(to: proxy, timeout: 20)
            defer { connection.close() }
            let started = Date()
            let sender = BackgroundTask {
                try connection.sendGenerated(seed: 0x7B_F, count: size)
                try connection.shutdownWrite()
            }
            var peak = baseline
            while sender.join(timeout: 0.05) != nil && Date().timeIntervalSince(started) < 20 {
                peak = max(peak, ProcessMetrics.residentKiB(of: proxy.process.pid) ?? peak)
            }
            let reply = try connection.receiveLine(limit: 64, timeout: 20)
            let elapsed = Date().timeIntervalSince(started)
            #expect(reply + "\n" == TestBackend.sinkReply(for: DeterministicBytes.checksum(seed: 0x7B_F, count: size)), "backend received: \(reply)")
            #expect(elapsed > 2, "32 MiB crossed an 80 Mbit/s link in \(elapsed) s: the rate limit was not in effect")
            // The pool (2 x 8 MiB) plus allocator slack, against the 32 MiB a proxy that does not
            // pass the pressure back would hold; the rest must wait in the client's socket.
            let slack = ProcessInfo.processInfo.environment["SWITCHYARD_SANITIZER"] == nil ? 24 * 1024 : 96 * 1024
            #expect(peak - baseline < slack, "proxy RSS grew by \(peak - baseline) KiB behind the slow link")
        }

        /// MARKED: needs `--backend-timeout D`, which `Socket.setDeadPeerTimeout` implements and
        /// the lead is to wire to every backend socket (issue 14). Until the flag exists the proxy
        /// refuses to start and the failure is recorded as a known issue; once it exists the
        /// test runs for real, and the known-issue wrapper must be removed.
        @Test func backendThatVanishesWithoutFinOrResetIsDetectedDeadWithinTheBackendTimeout() throws {
            try withKnownIssue("--backend-timeout is not a switchyard option yet (issue 14)") {
                try vanishingBackendIsDetected()
            } when: {
                !BinaryOptions.serveAccepts("--backend-timeout")
            }
        }

        private func vanishingBackendIsDetected() throws {
            let topology = try Topology(backends: 1)
            let backend = try topology.startBackend(0, .identify(name: "b1"))
            let proxy = try topology.startProxy(options: ["--backend-timeout", "3s"], backends: [backend])
            // Two clients: one idle (only keepalive can notice), one that sends after the backend
            // vanished (its bytes stay unacknowledged: TCP_USER_TIMEOUT).
            let (idle, _) = try topology.identify(through: proxy)
            let (talking, _) = try topology.identify(through: proxy)
            try idle.roundTrip(Array("before".utf8), timeout: 3)
            try talking.roundTrip(Array("before".utf8), timeout: 3)

            try topology.backends[0].nft("""
                table inet fault {
                    chain input { type filter hook input priority 0; policy drop; }
                    chain output { type filter hook output priority 0; policy drop; }
                }
                """)
            let vanished = Date()
            var generator = DeterministicBytes(seed: 5)
            try talking.send(generator.next(64 << 10))
            for (name, connection) in [("idle", idle), ("talking", talking)] {
                let outcome = connection.readToEnd(timeout: 10)
                let after = Date().timeIntervalSince(vanished)
                #expect(outcome.end == .reset, "\(name) client: \(outcome.end) after \(after) s; a stream cut short must end in a reset")
                #expect(after > 1.5 && after < 6.5, "\(name) client: closed \(after) s after the backend vanished (--backend-timeout 3s)")
            }
        }

    }
}
