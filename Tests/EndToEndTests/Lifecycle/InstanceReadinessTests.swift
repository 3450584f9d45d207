import Foundation
import Testing

extension EndToEnd {
    /// `instance drain` and `instance ready` (issue 26): the instance's own readiness, apart from
    /// its backends', for a router that polls `/healthz`.
    @Suite(.timeLimit(.minutes(2))) struct InstanceReadinessChanges {
        static func config(metrics: TCPEndpoint, listen: TCPEndpoint, backend: TestBackend) -> String {
            """
            metrics: "\(metrics)"
            defaults:
              health: off
            services:
              main:
                listen: ["\(listen)"]
                backends: ["\(backend.endpoint)"]
            """
        }

        static func readyGauge(_ metrics: TCPEndpoint) -> Double? {
            metricValue((try? httpGet(metrics, "/metrics")) ?? "", "switchyard_instance_ready")
        }

        /// Bytes no two calls repeat, echoed back whole.
        static func echoes(_ connection: TCPConnection, _ count: Int = 64 << 10) throws {
            try connection.roundTrip((0..<count).map { _ in UInt8.random(in: 0...255) })
        }

        @Test func aDrainedInstanceAnswers503ButKeepsRelayingThroughAReloadAndATakeover() throws {
            let backend = try TestBackend(.echo)
            let metrics = try Sockets.freeEndpoint(), listen = try Sockets.freeEndpoint()
            let config = Self.config(metrics: metrics, listen: listen, backend: backend)
            let old = try ConfiguredProxy(yaml: config, listen: [listen])
            #expect(try httpGet(metrics, "/healthz").hasPrefix("HTTP/1.1 200"))
            #expect(Self.readyGauge(metrics) == 1)
            let before = try TCPConnection(to: listen)
            try Self.echoes(before)

            let drained = try old.admin.send("instance drain")
            #expect(drained.isOK, "\(drained)")
            let health = try httpGet(metrics, "/healthz")
            #expect(health.hasPrefix("HTTP/1.1 503"), "\(health)")
            #expect(health.contains("instance drained"), "\(health)")
            #expect(Self.readyGauge(metrics) == 0)
            #expect(try old.admin.stats()["instance"] as? String == "drained")
            // A router may send new flows until its withdrawal has propagated: still accepting.
            let during = try TCPConnection(to: listen)
            try Self.echoes(during)
            try Self.echoes(before)
            #expect(try old.admin.send("instance drain").body == ["instance already drained"])

            // A reload leaves it drained.
            #expect(try old.admin.send("reload").isOK)
            #expect(try httpGet(metrics, "/healthz").hasPrefix("HTTP/1.1 503"))

            // A takeover hands the drain over.
            let newConfig = old.folder + "/new.yaml"
            try ConfiguredProxy.write("admin-socket: \(old.admin.path)\n" + config, to: newConfig)
            let new = try SwitchyardProcess(arguments: ["serve", "--config", newConfig, "--takeover"], listenEndpoints: [listen])
            defer { new.kill() }
            let committed = eventually(timeout: 15) { (try? old.admin.stats()["pid"] as? Int) == Int(new.pid) }
            try #require(committed, "no takeover within 15 s; new: \(new.standardError)\nold: \(old.process.standardError)")
            #expect(new.standardError.contains("this process starts drained too"), "\(new.standardError)")
            #expect(try old.admin.stats()["instance"] as? String == "drained")
            #expect(eventually(timeout: 5) { (try? httpGet(metrics, "/healthz"))?.hasPrefix("HTTP/1.1 503") == true })
            try Self.echoes(try TCPConnection(to: listen))
            try Self.echoes(before)

            // `instance ready` (on the admin path, now the new process's) ends it.
            let ready = try old.admin.send("instance ready")
            #expect(ready.isOK, "\(ready)")
            #expect(eventually(timeout: 5) { (try? httpGet(metrics, "/healthz"))?.hasPrefix("HTTP/1.1 200") == true })
            #expect(Self.readyGauge(metrics) == 1)
            #expect(try old.admin.stats()["instance"] as? String == "ready")
        }

        @Test func theReadOnlySocketRefusesAReadinessChange() throws {
            let backend = try TestBackend(.echo)
            let metrics = try Sockets.freeEndpoint(), listen = try Sockets.freeEndpoint()
            let folder = try ConfiguredProxy.makeFolder()
            defer { try? FileManager.default.removeItem(atPath: folder) }
            let readOnly = AdminSocket(path: folder + "/readonly.sock")
            let proxy = try ConfiguredProxy(
                yaml: "admin-socket-readonly: \(readOnly.path)\n" + Self.config(metrics: metrics, listen: listen, backend: backend),
                listen: [listen], folder: folder)
            #expect(try readOnly.send("instance drain").errorMessage == "read-only admin socket")
            #expect(try httpGet(metrics, "/healthz").hasPrefix("HTTP/1.1 200"))
            #expect(try proxy.admin.stats()["instance"] as? String == "ready")
        }

        @Test func withWithdrawDelaySigtermTurnsHealthzTo503AndKeepsAcceptingUntilTheDelayEnds() throws {
            let backend = try TestBackend(.echo)
            let metrics = try Sockets.freeEndpoint()
            // Long enough that the checks below run inside it even on a slow (sanitizer) run.
            let delay = 4.0 * EndToEnd.sanitizerSlowdown
            let proxy = try AdminProxy(options: ["--metrics", metrics.description, "--withdraw-delay", "\(Int(delay))s",
                                                 "--shutdown-grace", "20s"],
                                       backends: [backend.endpoint.description])
            let open = try TCPConnection(to: proxy.listen)
            try Self.echoes(open)
            #expect(try httpGet(metrics, "/healthz").hasPrefix("HTTP/1.1 200"))

            let signalled = Date()
            proxy.process.terminate()
            #expect(eventually(timeout: 2) { (try? httpGet(metrics, "/healthz"))?.contains("instance stopping") == true })
            #expect(Self.readyGauge(metrics) == 0)
            #expect(try proxy.admin.stats()["instance"] as? String == "stopping")
            #expect(try proxy.admin.send("instance ready").errorMessage?.contains("stopping") == true)
            // Still accepting: the router has not withdrawn the route yet.
            let during = try TCPConnection(to: proxy.listen)
            try Self.echoes(during)
            try Self.echoes(open)
            #expect(Date().timeIntervalSince(signalled) < delay, "the checks took longer than the delay; raise it")

            // Then it stops accepting, and finishes the connections it has.
            #expect(eventually(timeout: delay + 5) { proxy.listen.refusesConnections() }, "still accepting after the delay")
            #expect(Date().timeIntervalSince(signalled) >= delay - 0.5, "stopped accepting before the delay ended")
            try Self.echoes(during)
            #expect(proxy.process.standardError.contains("still accepting for \(Int(delay))s (withdraw-delay)"), "\(proxy.process.standardError)")
            open.close()
            during.close()
            let status = proxy.process.waitForExit(timeout: 30)
            #expect(status == 0, "exit status \(status.map(String.init) ?? "none"); stderr:\n\(proxy.process.standardError)")
        }

        @Test func aSecondSigtermEndsTheWithdrawDelayEarly() throws {
            let backend = try TestBackend(.echo)
            let proxy = try AdminProxy(options: ["--withdraw-delay", "60s"], backends: [backend.endpoint.description])
            proxy.process.terminate()
            #expect(eventually(timeout: 5) { (try? proxy.admin.stats()["instance"] as? String) == "stopping" })
            try Self.echoes(try TCPConnection(to: proxy.listen))
            proxy.process.terminate()
            let status = proxy.process.waitForExit(timeout: 30)
            #expect(status == 0, "exit status \(status.map(String.init) ?? "none"); stderr:\n\(proxy.process.standardError)")
        }
    }
}
