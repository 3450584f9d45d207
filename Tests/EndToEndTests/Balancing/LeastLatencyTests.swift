import Foundation
import Glibc
import Synchronization
import Testing

extension EndToEnd {
    /// `--balance least-latency` (issue 13) against a backend made slow to connect by the
    /// kernel: half the SYNs sent to it are dropped (nftables in its namespace), so those
    /// connects wait for a retransmission, a second or more. There is no `netem` here.
    @Suite(.enabled(if: NetworkLab.isAvailable, "network namespaces cannot be created here; NetworkLab.unavailableReason says why"))
    struct LatencyAwareBalancing {
        /// Client connections made back to back on a few threads inside the proxy's namespace,
        /// each reading its backend's name and checking an echoed payload byte for byte; every
        /// outcome is kept with the time its connect started.
        final class ClientLoad: Sendable {
            struct Outcome: Sendable {
                let started: Double
                let backend: String?
                let failure: String?
            }

            final class Recorder: Sendable {
                private let list = Mutex<[Outcome]>([])
                func add(_ outcome: Outcome) { list.withLock { $0.append(outcome) } }
                var all: [Outcome] { list.withLock { $0 } }
            }

            private let outcomes = Recorder()
            private let stop = StopSignal()
            private let tasks: [BackgroundTask]
            let origin = Date()

            init(topology: NetworkFaults.Topology, proxy: AdminProxy, threads: Int = 3, limit: Double = 28) {
                let listen = proxy.listen
                let namespace = topology.proxy
                let (outcomes, stop, origin) = (self.outcomes, self.stop, self.origin)
                tasks = (0..<threads).map { thread in
                    BackgroundTask {
                        try namespace.run(timeout: limit + 10) {
                            var index = 0
                            while !stop.isRaised && Date().timeIntervalSince(origin) < limit {
                                index += 1
                                let started = Date().timeIntervalSince(origin)
                                do {
                                    let (connection, backend) = try IdentifiedClients.connect(to: listen, timeout: 8)
                                    defer { connection.close() }
                                    try connection.verifyEchoStream(seed: UInt64(thread << 20 | index), count: 8 << 10, timeout: 5)
                                    outcomes.add(Outcome(started: started, backend: backend, failure: nil))
                                } catch {
                                    outcomes.add(Outcome(started: started, backend: nil, failure: "\(error)"))
                                }
                                usleep(25_000)
                            }
                        }
                    }
                }
            }

            var now: Double { Date().timeIntervalSince(origin) }

            /// Clients whose connect started within `from..<to` (seconds since the start), by backend.
            func reached(from: Double, to: Double) -> [String: Int] {
                var counts: [String: Int] = [:]
                for outcome in outcomes.all where outcome.started >= from && outcome.started < to {
                    if let backend = outcome.backend { counts[backend, default: 0] += 1 }
                }
                return counts
            }

            func finish() -> [String] {
                stop.raise()
                let errors = tasks.compactMap { $0.join(timeout: 15) }
                return errors + outcomes.all.compactMap(\.failure)
            }
        }

        static func share(_ name: String, _ counts: [String: Int]) -> Double {
            let total = counts.values.reduce(0, +)
            return total == 0 ? 0 : Double(counts[name, default: 0]) / Double(total)
        }

        @Test func newClientsMoveAwayFromABackendSlowToConnectAndReturnWhenItIsFastAgain() throws {
            let topology = try NetworkFaults.Topology(backends: 2)
            let slow = try topology.startBackend(0, .identify(name: "b1"))
            let fast = try topology.startBackend(1, .identify(name: "b2"))
            // No health checks: a dropped SYN would fail them; this is about the balancer alone.
            // The connect timeout outlasts two retransmissions (1 s, then 2 s more).
            let proxy = try topology.startProxy(options: ["--balance", "least-latency", "--connect-timeout", "5s"], backends: [slow, fast])
            let load = ClientLoad(topology: topology, proxy: proxy)
            var finished = false
            defer { if !finished { _ = load.finish() } }

            // Both fast: both serve. (Which one serves more then is noise: with near-idle
            // backends the one measured a few microseconds faster wins most comparisons; on a
            // busy machine 126 to 4 was seen.)
            usleep(2_000_000)
            let healthy = load.reached(from: 0.5, to: 2)
            #expect(healthy["b1", default: 0] >= 1 && healthy["b2", default: 0] >= 1, "healthy: \(healthy)")

            // Half the SYNs sent to b1 are dropped from now on.
            try topology.backends[0].nft("""
                table inet fault {
                    chain input { type filter hook input priority 0; policy accept; tcp flags & (syn | ack) == syn numgen random mod 2 == 0 counter drop comment "syn"; }
                }
                """)
            let slowFrom = load.now
            usleep(6_000_000)
            let slowUntil = load.now
            // Its first slow connect takes a second to land; after that most clients go to b2.
            let whileSlow = load.reached(from: slowFrom + 2, to: slowUntil)
            #expect(Self.share("b1", whileSlow) <= 0.15, "while b1 was slow to connect: \(whileSlow)")
            #expect(whileSlow["b2", default: 0] >= 20, "too few clients while slow to judge: \(whileSlow)")
            let dropped = try topology.backends[0].packetsCounted(comment: "syn")

            // The rule goes; once its slow estimate has decayed b1 is tried, found fast, and gets
            // its share back. Seconds are judged one at a time, up to 14 of them.
            try topology.backends[0].nft("delete table inet fault\n")
            let fastFrom = load.now
            var recoveredWindow: [String: Int]?
            var windows: [[String: Int]] = []
            while recoveredWindow == nil && load.now < fastFrom + 14 {
                usleep(1_000_000)
                let window = load.reached(from: load.now - 1.5, to: load.now)
                windows.append(window)
                if Self.share("b1", window) >= 0.25 { recoveredWindow = window }
            }
            finished = true
            let failures = load.finish()
            #expect(recoveredWindow != nil, "b1 never got its share back after the rule was removed: \(windows)")
            #expect(dropped >= 1, "no SYN was dropped: the test did not slow b1")
            #expect(failures.isEmpty, "\(failures.prefix(5)); stderr:\n\(proxy.process.standardError)")
        }
    }
}
