import Foundation
import Glibc
import Testing

private let socketActivate = "/usr/bin/systemd-socket-activate"

extension EndToEnd {
    /// `switchyard serve` as a systemd service: the notification protocol on a stand-in
    /// NOTIFY_SOCKET, and listeners passed by socket activation.
    @Suite struct SystemdService {
        private static func config(admin: String, listen: [TCPEndpoint], backend: TestBackend, workers: Int = 1) -> String {
            """
            admin-socket: \(admin)
            workers: \(workers)
            shutdown-grace: 10s
            services:
              main:
                listen: [\(listen.map { "\"\($0)\"" }.joined(separator: ", "))]
                health: off
                backends: ["\(backend.endpoint)"]
            """
        }

        @Test func readyReloadingAndStoppingAreSentAroundTheRealEvents() throws {
            let a = try TestBackend(.identify(name: "a"))
            let listen = try Sockets.freeEndpoint()
            let folder = try ConfiguredProxy.makeFolder()
            defer { try? FileManager.default.removeItem(atPath: folder) }
            let admin = AdminSocket(path: folder + "/admin.sock")
            let path = folder + "/switchyard.yaml"
            try ConfiguredProxy.write(Self.config(admin: admin.path, listen: [listen], backend: a), to: path)
            let notify = try NotifyListener()
            let proxy = try SwitchyardProcess(arguments: ["serve", "--config", path], listenEndpoints: [listen],
                                              environment: ["NOTIFY_SOCKET": notify.address])

            // READY=1 comes once the port accepts: a client connecting right then is served.
            let ready = try #require(notify.nextEvent(timeout: 10), "no notification; \(proxy.standardError)")
            #expect(ready.hasPrefix("READY=1\nSTATUS="), "\(ready)")
            let client = try IdentifiedClient(through: listen)
            #expect(client.backendName == "a")
            #expect(try admin.stats()["pid"] as? Int == Int(proxy.pid))
            // STATUS= lines follow the connection counts.
            let status = notify.first(timeout: 8) { $0.hasPrefix("STATUS=1 open connection(s), ") }
            #expect(status != nil, "\(notify.received)")
            client.close()

            // A reload is bracketed by RELOADING=1 (with its CLOCK_MONOTONIC start) and READY=1.
            let before = NotifyListener.monotonicMicroseconds()
            #expect(try admin.send("reload").isOK)
            let after = NotifyListener.monotonicMicroseconds()
            let reloading = try #require(notify.nextEvent(timeout: 5), "\(notify.received)")
            let lines = reloading.split(separator: "\n").map(String.init)
            #expect(lines.first == "RELOADING=1", "\(reloading)")
            let start = lines.first { $0.hasPrefix("MONOTONIC_USEC=") }.flatMap { UInt64($0.dropFirst("MONOTONIC_USEC=".count)) }
            #expect(start.map { (before...after).contains($0) } == true, "\(reloading) not within \(before)...\(after)")
            #expect(notify.nextEvent(timeout: 5)?.hasPrefix("READY=1\n") == true, "\(notify.received)")

            // SIGTERM: STOPPING=1, then exit 0.
            proxy.terminate()
            #expect(notify.nextEvent(timeout: 5)?.hasPrefix("STOPPING=1\n") == true, "\(notify.received)")
            #expect(proxy.waitForExit(timeout: 30) == 0)
        }

        @Test func aProcessThatTookOverSendsMainPIDAndTheOneTakenOverNeverStopping() throws {
            let a = try TestBackend(.identify(name: "a"))
            let listen = try Sockets.freeEndpoint()
            let folder = try ConfiguredProxy.makeFolder()
            defer { try? FileManager.default.removeItem(atPath: folder) }
            let admin = AdminSocket(path: folder + "/admin.sock")
            let path = folder + "/switchyard.yaml"
            try ConfiguredProxy.write(Self.config(admin: admin.path, listen: [listen], backend: a), to: path)
            let notify = try NotifyListener()
            let environment = ["NOTIFY_SOCKET": notify.address]
            let old = try SwitchyardProcess(arguments: ["serve", "--config", path], listenEndpoints: [listen], environment: environment)
            #expect(notify.nextEvent(timeout: 10)?.hasPrefix("READY=1\n") == true, "\(notify.received); \(old.standardError)")

            let new = try SwitchyardProcess(arguments: ["serve", "--config", path, "--takeover"], listenEndpoints: [listen], environment: environment)
            let main = notify.nextEvent(timeout: 10)
            #expect(main?.hasPrefix("MAINPID=\(new.pid)\nREADY=1\n") == true, "\(notify.received); \(new.standardError)")
            // The old process had no connection open: it exits at once, without STOPPING=1.
            #expect(old.waitForExit(timeout: 30) == 0, "\(old.standardError)")
            while notify.next(timeout: 0.3) != nil {}
            #expect(!notify.received.contains { $0.contains("STOPPING=1") }, "\(notify.received)")
            #expect(try IdentifiedClient(through: listen).backendName == "a")

            new.terminate()
            #expect(notify.nextEvent(timeout: 5)?.hasPrefix("STOPPING=1\n") == true, "\(notify.received)")
            #expect(new.waitForExit(timeout: 30) == 0)
        }

        @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: socketActivate), "needs \(socketActivate) (Debian package systemd)"))
        func socketActivatedListenersServeTheClientThatStartedTheService() throws {
            let a = try TestBackend(.identify(name: "a"))
            let listen = try Sockets.freeEndpoint()
            let folder = try ConfiguredProxy.makeFolder()
            defer { try? FileManager.default.removeItem(atPath: folder) }
            let admin = AdminSocket(path: folder + "/admin.sock")
            let path = folder + "/switchyard.yaml"
            try ConfiguredProxy.write(Self.config(admin: admin.path, listen: [listen], backend: a, workers: 2), to: path)
            let notify = try NotifyListener()
            // systemd-socket-activate binds, waits for a first client, then execs switchyard
            // (same pid) with LISTEN_FDS=1.
            let proxy = try SwitchyardProcess(
                arguments: ["serve", "--config", path], listenEndpoints: [listen],
                launcher: (socketActivate, ["--listen=\(listen)", "--setenv=NOTIFY_SOCKET=\(notify.address)"]))
            var first: IdentifiedClient?
            #expect(eventually(timeout: 10) {
                first = try? IdentifiedClient(through: listen, timeout: 10)
                return first != nil
            }, "\(proxy.standardError)")
            // The client that made systemd start the service waited in the socket's queue and is served.
            #expect(first?.backendName == "a")
            #expect(notify.nextEvent(timeout: 10)?.hasPrefix("READY=1\n") == true, "\(notify.received)")
            #expect(try admin.stats()["pid"] as? Int == Int(proxy.pid))
            #expect(proxy.standardError.contains("socket activation: 1 socket(s) from systemd for 1 listener(s)"), "\(proxy.standardError)")
            #expect(proxy.standardError.contains("systemd passed 1 socket for \(listen) to 2 workers, which share them"), "\(proxy.standardError)")
            for _ in 0..<20 {
                #expect(try IdentifiedClient(through: listen).backendName == "a")
            }
            first?.close()
            proxy.terminate()
            #expect(proxy.waitForExit(timeout: 30) == 0)
        }

        @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: socketActivate), "needs \(socketActivate) (Debian package systemd)"))
        func aListenerSystemdPassedNoSocketForStopsTheStartNamingIt() throws {
            let a = try TestBackend(.identify(name: "a"))
            let listen = try Sockets.freeEndpoint()
            let missing = try Sockets.freeEndpoint()
            let folder = try ConfiguredProxy.makeFolder()
            defer { try? FileManager.default.removeItem(atPath: folder) }
            let path = folder + "/switchyard.yaml"
            try ConfiguredProxy.write(Self.config(admin: folder + "/admin.sock", listen: [listen, missing], backend: a), to: path)
            let proxy = try SwitchyardProcess(arguments: ["serve", "--config", path], launcher: (socketActivate, ["--listen=\(listen)"]))
            var trigger: TCPConnection?
            #expect(eventually(timeout: 10) {
                trigger = try? TCPConnection(to: listen, timeout: 1)
                return trigger != nil
            })
            #expect(proxy.waitForExit(timeout: 30) == 1)
            // systemd-socket-activate's own lines come first.
            #expect(proxy.standardError.hasSuffix("\nswitchyard: error: service main listens on \(missing), but systemd passed no socket for it; add ListenStream=\(missing) to the socket unit\n"), "\(proxy.standardError)")
        }

        /// The service manager keeps its own descriptors of activated sockets: a reload that
        /// drops one closes only switchyard's, and the socket goes on listening (queueing
        /// clients for a later start), which shutdown(2) would have ended.
        @Test func aReloadDroppingAnActivatedListenerClosesOnlyOurDescriptor() throws {
            let a = try TestBackend(.identify(name: "a"))
            let (kept, keptPort) = try Sockets.makeListener(host: Sockets.ipv4Loopback)
            let (dropped, droppedPort) = try Sockets.makeListener(host: Sockets.ipv4Loopback)
            defer { close(kept); close(dropped) }
            let keptEndpoint = TCPEndpoint(host: Sockets.ipv4Loopback, port: keptPort)
            let droppedEndpoint = TCPEndpoint(host: Sockets.ipv4Loopback, port: droppedPort)
            let folder = try ConfiguredProxy.makeFolder()
            defer { try? FileManager.default.removeItem(atPath: folder) }
            let admin = AdminSocket(path: folder + "/admin.sock")
            let path = folder + "/switchyard.yaml"
            try ConfiguredProxy.write(Self.config(admin: admin.path, listen: [keptEndpoint, droppedEndpoint], backend: a), to: path)
            let proxy = try ActivatedProcess(passing: [kept, dropped], arguments: ["serve", "--config", path], outputPath: folder + "/output")

            #expect(eventually(timeout: 10) { (try? admin.stats()) != nil }, "\(proxy.output)")
            #expect(try IdentifiedClient(through: keptEndpoint).backendName == "a")
            #expect(try IdentifiedClient(through: droppedEndpoint).backendName == "a")
            #expect(proxy.output.contains("socket activation: 2 socket(s) from systemd for 2 listener(s)"), "\(proxy.output)")

            try ConfiguredProxy.write(Self.config(admin: admin.path, listen: [keptEndpoint], backend: a), to: path)
            let reply = try admin.send("reload")
            #expect(reply.isOK, "\(reply)")

            // Switchyard lets go of its descriptor once its accept is cancelled.
            let socket = try #require(Self.socketName(of: dropped))
            #expect(eventually(timeout: 5) { !Self.descriptorTargets(of: proxy.pid).contains(socket) }, "switchyard still holds \(socket)")

            // The dropped socket still listens; a client's connect completes into its queue, and
            // it is ours to accept, not switchyard's.
            _ = fcntl(dropped, F_SETFL, fcntl(dropped, F_GETFL) | O_NONBLOCK)
            var accepting: Int32 = 0
            var length = socklen_t(MemoryLayout<Int32>.size)
            getsockopt(dropped, SOL_SOCKET, SO_ACCEPTCONN, &accepting, &length)
            #expect(accepting == 1)
            let waiting = try TCPConnection(to: droppedEndpoint, timeout: 2)
            defer { waiting.close() }
            var queued: Int32 = -1
            #expect(eventually(timeout: 2) {
                queued = accept(dropped, nil, nil)
                return queued >= 0
            }, "the connection was not queued on the dropped socket (errno \(errno))")
            if queued >= 0 { close(queued) }
            #expect(try IdentifiedClient(through: keptEndpoint).backendName == "a")

            proxy.terminate()
            #expect(proxy.waitForExit(timeout: 30) == 0, "\(proxy.output)")
        }

        /// `socket:[INODE]`, what /proc/PID/fd/N links to for the socket behind `fd`.
        private static func socketName(of fd: Int32) -> String? {
            try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/\(fd)")
        }

        /// What each of `pid`'s descriptors links to.
        private static func descriptorTargets(of pid: pid_t) -> Set<String> {
            let folder = "/proc/\(pid)/fd"
            let names = (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []
            return Set(names.compactMap { try? FileManager.default.destinationOfSymbolicLink(atPath: folder + "/" + $0) })
        }
    }
}
