import Foundation
import Glibc
import Testing

/// One takeover under load: the worker counts of both processes and whether the new
/// configuration changes the listen addresses (one added, one dropped).
struct TakeoverScenario: Sendable, CustomTestStringConvertible {
    var oldWorkers: Int
    var newWorkers: Int
    var changesListeners: Bool

    var testDescription: String {
        "\(oldWorkers) -> \(newWorkers) worker(s)\(changesListeners ? ", a listener added and one dropped" : "")"
    }
}

extension EndToEnd {
    /// `switchyard serve --takeover`: the new process receives the running one's listening
    /// sockets and admin changes, accepts on them, then the old one stops accepting, drains and
    /// exits 0. Nothing is refused or reset on the way.
    @Suite struct Takeover {
        private static func config(workers: Int, listen: [TCPEndpoint], backends: [TestBackend]) -> String {
            """
            workers: \(workers)
            shutdown-grace: 30s
            services:
              main:
                listen: [\(listen.map { "\"\($0)\"" }.joined(separator: ", "))]
                health: off
                backends: [\(backends.map { "\"\($0.endpoint)\"" }.joined(separator: ", "))]
            """
        }

        @Test(arguments: [
            TakeoverScenario(oldWorkers: 1, newWorkers: 1, changesListeners: false),
            TakeoverScenario(oldWorkers: 2, newWorkers: 2, changesListeners: false),
            TakeoverScenario(oldWorkers: 1, newWorkers: 2, changesListeners: true),
        ])
        func handoverUnderLoadRefusesNothingAndOpenStreamsFinishOnTheOldProcess(_ scenario: TakeoverScenario) throws {
            let a = try TestBackend(.identify(name: "a"))
            let b = try TestBackend(.identify(name: "b"))
            let listen = try Sockets.freeEndpoint()
            let dropped = try Sockets.freeEndpoint()
            let added = try Sockets.freeEndpoint()
            let oldListen = scenario.changesListeners ? [listen, dropped] : [listen]
            let newListen = scenario.changesListeners ? [listen, added] : [listen]
            let old = try ConfiguredProxy(yaml: Self.config(workers: scenario.oldWorkers, listen: oldListen, backends: [a, b]), listen: oldListen)
            // An admin change the new process must inherit: b takes no new connections.
            try #require(old.admin.send("drain main/\(b.endpoint)").isOK)
            // Kept open: after the takeover the path is the new process's, but this connection
            // still reaches the old one.
            let oldAdmin = try old.admin.connect()
            let oldPID = try #require(try oldAdmin.stats()["pid"] as? Int)
            #expect(oldPID == Int(old.process.pid))

            let streams = try LongStreams(count: 20, through: listen)
            let loop = ClientLoop(through: listen, threads: 4, limit: 40_000)
            try #require(eventually(timeout: 15) { loop.successes >= 500 }, "the client loop did not get going")
            let started = Date()
            let beforeTakeover = loop.successes

            let newConfig = old.folder + "/new.yaml"
            try ConfiguredProxy.write("admin-socket: \(old.admin.path)\n" + Self.config(workers: scenario.newWorkers, listen: newListen, backends: [a, b]), to: newConfig)
            let new = try SwitchyardProcess(arguments: ["serve", "--config", newConfig, "--takeover"], listenEndpoints: newListen)
            // The new process serves the admin path once it committed.
            let committed = eventually(timeout: 15) { (try? old.admin.stats()["pid"] as? Int) == Int(new.pid) }
            try #require(committed, "no takeover within 15 s; new: \(new.standardError)\nold: \(old.process.standardError)")
            let atCommit = loop.successes
            let handoverSeconds = Date().timeIntervalSince(started)
            streams.setMark()
            #expect(new.standardError.contains("took over from pid \(oldPID)"), "\(new.standardError)")

            // During the drain: the old process says it no longer accepts, the new one that it does.
            usleep(300_000)
            let oldStats = try oldAdmin.stats()
            let newStats = try old.admin.stats()
            #expect(oldStats["pid"] as? Int == oldPID)
            #expect(oldStats["accepting"] as? Bool == false)
            #expect((oldStats["open_connections"] as? Int ?? 0) >= 20, "\(oldStats)")
            #expect(newStats["pid"] as? Int == Int(new.pid))
            #expect(newStats["accepting"] as? Bool == true)

            // New connections reach the new process only.
            let oldTotal = try #require(oldStats["total_connections"] as? Int)
            let newTotal = try #require(newStats["total_connections"] as? Int)
            let sampled = loop.successes
            try #require(eventually(timeout: 30) { loop.successes >= max(beforeTakeover + 5_000, sampled + 1_000) },
                         "only \(loop.successes - beforeTakeover) connections since the takeover began")
            #expect(try oldAdmin.stats()["total_connections"] as? Int == oldTotal, "the old process accepted after its commit")
            // Successes first: every one was accepted before it succeeded, so the count read after
            // it covers them even while the loop goes on.
            let succeeded = loop.successes - sampled
            let newAccepted = try #require(try old.admin.stats()["total_connections"] as? Int) - newTotal
            #expect(newAccepted >= succeeded - 8, "the new process accepted \(newAccepted) of \(succeeded)")
            // The drain was handed over: b shows drained on the new process and no client reached it.
            let backends = try old.admin.backends()
            #expect(backends[b.endpoint.description]?["state"] as? String == "drain", "\(backends)")

            if scenario.changesListeners {
                // The added listener is bound by the new process; the dropped one is closed.
                let client = try IdentifiedClient(through: added)
                #expect(client.backendName == "a")
                client.close()
                let refused = eventually(timeout: 5) { dropped.refusesConnections(timeout: 1) }
                #expect(refused, "the dropped listener still accepts")
            }

            let (reached, failures) = loop.finish()
            let total = reached.values.reduce(0, +)
            #expect(failures.isEmpty, "\(failures.count) failures, first: \(failures.prefix(3))")
            #expect(reached["b"] == nil, "\(reached)")

            // Every long stream lived on the old process through the takeover and ends intact.
            #expect(streams.fewestRoundsAfterMark >= 5, "a stream stalled after the commit")
            let outcomes = streams.finish()
            #expect(outcomes.allSatisfy { $0.failure == nil }, "\(outcomes.filter { $0.failure != nil })")
            let streamed = outcomes.reduce(0) { $0 + $1.bytes }

            // Its last connection gone, the old process exits 0 long before its 30 s grace.
            let status = old.process.waitForExit(timeout: 30)
            #expect(status == 0, "old: exit \(status.map(String.init) ?? "none"); \(old.process.standardError)")
            #expect(new.isRunning, "\(new.standardError)")
            print("takeover \(scenario.testDescription): \(total - beforeTakeover) connections from the start of the takeover, \(atCommit - beforeTakeover) before its commit (\(String(format: "%.2f", handoverSeconds)) s), failures \(failures.count); 20 streams, \(streamed) bytes echoed intact")
            new.terminate()
            #expect(new.waitForExit(timeout: 30) == 0)
        }

        /// A process that asks for the handover and goes away changes nothing; while it is
        /// pending, changes that would make what was handed over stale are refused.
        @Test func anAbandonedTakeoverChangesNothingAndHoldsOffChangesOnlyWhilePending() throws {
            let a = try TestBackend(.identify(name: "a"))
            let listen = try Sockets.freeEndpoint()
            let proxy = try ConfiguredProxy(yaml: Self.config(workers: 2, listen: [listen], backends: [a]), listen: [listen])
            try #require(proxy.admin.send("weight main/\(a.endpoint) 5").isOK)

            let taker = try proxy.admin.connect()
            try taker.send(line: "takeover")
            let (text, descriptors) = try Self.readHandoverFrame(taker.fd)
            #expect(descriptors == 3, "two listening sockets (one per worker) and the admin socket")
            let lines = text.split(separator: "\n").map(String.init)
            #expect(lines.first == "switchyard-handover 1")
            #expect(lines.contains("pid \(proxy.process.pid)"))
            #expect(lines.contains("listener main \(listen) \(listen) 0,1"), "\(lines)")
            #expect(lines.contains("admin 2 \(proxy.admin.path)"), "\(lines)")
            #expect(lines.contains("state weight main/\(a.endpoint) 5"), "\(lines)")
            #expect(lines.last == "end")

            let other = proxy.admin
            #expect(try other.send("drain main/\(a.endpoint)").errorMessage?.contains("a takeover is in progress") == true)
            #expect(try other.send("reload").errorMessage?.contains("a takeover is in progress") == true)
            #expect(try other.send("takeover commit").errorMessage == "takeover commit is accepted only on the connection that received the handover")
            #expect(try other.send("takeover").errorMessage == "another takeover is in progress")
            #expect(try other.stats()["accepting"] as? Bool == true)
            let during = try IdentifiedClient(through: listen)
            #expect(during.backendName == "a")
            during.close()

            taker.close()
            #expect(eventually(timeout: 5) { (try? other.send("weight main/\(a.endpoint) 2"))?.isOK == true })
            #expect(proxy.process.standardError.contains("abandoned before its commit"), "\(proxy.process.standardError)")
            let after = try IdentifiedClient(through: listen)
            #expect(after.backendName == "a")
        }

        @Test func aTakeoverWithABadConfigurationExitsNonZeroSayingWhyAndTheRunningProcessCarriesOn() throws {
            let a = try TestBackend(.identify(name: "a"))
            let listen = try Sockets.freeEndpoint()
            let old = try ConfiguredProxy(yaml: Self.config(workers: 2, listen: [listen], backends: [a]), listen: [listen])
            let loop = ClientLoop(through: listen, threads: 2)
            try #require(eventually(timeout: 10) { loop.successes >= 100 })

            // A file that does not decode: nothing is asked of the running process.
            let broken = old.folder + "/broken.yaml"
            try ConfiguredProxy.write("admin-socket: \(old.admin.path)\nservices:\n  main:\n    listen: [\"\(listen)\"]\n    conect-timeout: 1s\n    backends: [\"\(a.endpoint)\"]\n", to: broken)
            let first = try SwitchyardProcess(arguments: ["serve", "--config", broken, "--takeover"])
            #expect(first.waitForExit(timeout: 30) == 1)
            #expect(first.standardError.hasPrefix("switchyard: error: \(broken):5:5: unknown key 'conect-timeout'"), "\(first.standardError)")

            // A new listen address someone else holds: the handover was received, then given up.
            let (held, heldPort) = try Sockets.makeListener(host: Sockets.ipv4Loopback)
            defer { close(held) }
            let taken = TCPEndpoint(host: Sockets.ipv4Loopback, port: heldPort)
            let busy = old.folder + "/busy.yaml"
            try ConfiguredProxy.write("admin-socket: \(old.admin.path)\n" + Self.config(workers: 2, listen: [listen, taken], backends: [a]), to: busy)
            let second = try SwitchyardProcess(arguments: ["serve", "--config", busy, "--takeover"])
            #expect(second.waitForExit(timeout: 30) == 1)
            let reason = second.standardError.split(separator: "\n").last.map(String.init) ?? ""
            #expect(reason == "switchyard: error: takeover failed: cannot listen: bind(\(taken)): address already in use (another process holds the port); pid \(old.process.pid) carries on", "\(second.standardError)")
            #expect(eventually(timeout: 5) { old.process.standardError.contains("abandoned before its commit") }, "\(old.process.standardError)")

            // The running process never noticed: same pid on the admin path, still accepting,
            // and the client loop saw no failure.
            let stats = try old.admin.stats()
            #expect(stats["pid"] as? Int == Int(old.process.pid))
            #expect(stats["accepting"] as? Bool == true)
            let before = loop.successes
            #expect(eventually(timeout: 10) { loop.successes >= before + 100 })
            let (_, failures) = loop.finish()
            #expect(failures.isEmpty, "\(failures.prefix(3))")
            #expect(try old.admin.send("reload").isOK)
        }

        @Test func aTakeoverThroughTheWrongSocketSaysWhyAndTheRunningProcessCarriesOn() throws {
            let a = try TestBackend(.identify(name: "a"))
            let listen = try Sockets.freeEndpoint()
            let old = try ConfiguredProxy(yaml: Self.config(workers: 1, listen: [listen], backends: [a]), listen: [listen])
            let config = old.configPath

            // Nothing at the path.
            let missing = old.folder + "/missing.sock"
            let first = try SwitchyardProcess(arguments: ["serve", "--config", config, "--admin-socket", missing, "--takeover"])
            #expect(first.waitForExit(timeout: 30) == 1)
            #expect(first.standardError == "switchyard: error: takeover failed: cannot reach the running switchyard: connect \(missing): No such file or directory (ENOENT) (is it serving this --admin-socket?)\n")

            // Something else at the path: a UNIX server that greets and hangs up.
            let foreign = old.folder + "/foreign.sock"
            let server = try GreetingUnixServer(path: foreign, greeting: "hello from something else\n")
            let second = try SwitchyardProcess(arguments: ["serve", "--config", config, "--admin-socket", foreign, "--takeover"])
            #expect(second.waitForExit(timeout: 30) == 1)
            #expect(second.standardError == "switchyard: error: takeover failed: \(foreign) is not the admin socket of a switchyard that can hand over: it answered 'hello from something else'\n")
            server.stop()

            let stats = try old.admin.stats()
            #expect(stats["pid"] as? Int == Int(old.process.pid))
            #expect(stats["accepting"] as? Bool == true)
            let client = try IdentifiedClient(through: listen)
            #expect(client.backendName == "a")
        }

        /// Once the new process committed, the old one (still serving the clients that were
        /// connected to its admin socket) refuses every change and `reload`, naming the new
        /// process: it can no longer change backends nor overwrite the new process's state file.
        @Test func afterTheCommitTheOldProcessRefusesChangesNamingTheNewProcess() throws {
            let a = try TestBackend(.identify(name: "a"))
            let b = try TestBackend(.identify(name: "b"))
            let listen = try Sockets.freeEndpoint()
            let folder = try ConfiguredProxy.makeFolder()
            let stateFile = folder + "/state"
            let yaml = "state-file: \(stateFile)\n" + Self.config(workers: 1, listen: [listen], backends: [a, b])
            let old = try ConfiguredProxy(yaml: yaml, listen: [listen], folder: folder)
            defer { try? FileManager.default.removeItem(atPath: folder) }
            try #require(old.admin.send("drain main/\(b.endpoint)").isOK)
            let oldAdmin = try old.admin.connect()
            // Keeps the old process draining (it exits once its last connection ended).
            let held = try IdentifiedClient(through: listen)
            let newConfig = folder + "/new.yaml"
            try ConfiguredProxy.write("admin-socket: \(old.admin.path)\n" + yaml, to: newConfig)
            let new = try SwitchyardProcess(arguments: ["serve", "--config", newConfig, "--takeover"], listenEndpoints: [listen])
            let committed = eventually(timeout: 15) { (try? old.admin.stats()["pid"] as? Int) == Int(new.pid) }
            try #require(committed, "no takeover within 15 s; new: \(new.standardError)\nold: \(old.process.standardError)")
            let stateAfterCommit = try String(contentsOfFile: stateFile, encoding: .utf8)

            let refusal = "ERROR: handed over to pid \(new.pid)"
            for command in ["ready main/\(b.endpoint)", "drain main/\(a.endpoint)", "weight main/\(a.endpoint) 7",
                            "maint main/\(a.endpoint)", "remove main/\(b.endpoint)", "add main/127.0.0.1:9", "reload"] {
                #expect(try oldAdmin.command(command).status == refusal, "\(command)")
            }
            #expect(try oldAdmin.command("show stats").isOK)
            #expect(try String(contentsOfFile: stateFile, encoding: .utf8) == stateAfterCommit)
            let backends = try old.admin.backends()
            #expect(backends[a.endpoint.description]?["state"] as? String == "ready", "\(backends)")
            #expect(backends[b.endpoint.description]?["state"] as? String == "drain", "\(backends)")
            oldAdmin.close()
            held.close()
            #expect(old.process.waitForExit(timeout: 30) == 0, "\(old.process.standardError)")
            new.terminate()
            #expect(new.waitForExit(timeout: 30) == 0)
        }

        /// The read-only socket is not handed over: the old process stops serving it at the
        /// commit and the new one opens it at the same path.
        @Test func theReadOnlyAdminSocketMovesToTheNewProcess() throws {
            let a = try TestBackend(.identify(name: "a"))
            let listen = try Sockets.freeEndpoint()
            let folder = try ConfiguredProxy.makeFolder()
            defer { try? FileManager.default.removeItem(atPath: folder) }
            let readOnly = AdminSocket(path: folder + "/monitor.sock")
            let yaml = "admin-socket-readonly: \(readOnly.path)\n" + Self.config(workers: 1, listen: [listen], backends: [a])
            let old = try ConfiguredProxy(yaml: yaml, listen: [listen], folder: folder)
            #expect(try readOnly.stats()["pid"] as? Int == Int(old.process.pid))
            let newConfig = folder + "/new.yaml"
            try ConfiguredProxy.write("admin-socket: \(old.admin.path)\n" + yaml, to: newConfig)
            let new = try SwitchyardProcess(arguments: ["serve", "--config", newConfig, "--takeover"], listenEndpoints: [listen])
            let moved = eventually(timeout: 15) { (try? readOnly.stats()["pid"] as? Int) == Int(new.pid) }
            #expect(moved, "new: \(new.standardError)\nold: \(old.process.standardError)")
            #expect(try readOnly.send("drain main/\(a.endpoint)").status == "ERROR: read-only admin socket")
            new.terminate()
            #expect(new.waitForExit(timeout: 30) == 0)
            #expect(access(readOnly.path, F_OK) != 0)
        }

        /// The metrics port moves too: the new process listens next to the old one (both have
        /// SO_REUSEPORT), which stops its metrics at the commit; another instance on the port is
        /// still refused.
        @Test func theMetricsPortMovesToTheNewProcessAndASecondInstanceIsStillKeptOff() throws {
            let a = try TestBackend(.identify(name: "a"))
            let listen = try Sockets.freeEndpoint()
            let metrics = try Sockets.freeEndpoint()
            let yaml = "metrics: \(metrics)\n" + Self.config(workers: 1, listen: [listen], backends: [a])
            let old = try ConfiguredProxy(yaml: yaml, listen: [listen])
            for _ in 0..<30 { _ = try IdentifiedClient(through: listen) }
            func accepted() throws -> Double {
                let text = try httpGet(metrics, "/metrics")
                guard text.hasPrefix("HTTP/1.1 200") else { throw HarnessError("scrape: \(text.prefix(80))") }
                return text.split(separator: "\n").filter { $0.hasPrefix("switchyard_connections_accepted_total{") }
                    .compactMap { Double($0.split(separator: " ").last ?? "") }.reduce(0, +)
            }
            #expect(eventually(timeout: 5) { ((try? accepted()) ?? 0) >= 30 })

            let intruderConfig = old.folder + "/intruder.yaml"
            let other = try Sockets.freeEndpoint()
            try ConfiguredProxy.write("admin-socket: \(old.folder)/intruder.sock\nmetrics: \(metrics)\n" + Self.config(workers: 1, listen: [other], backends: [a]), to: intruderConfig)
            let intruder = try SwitchyardProcess(arguments: ["serve", "--config", intruderConfig])
            #expect(intruder.waitForExit(timeout: 30) == 1)
            #expect(intruder.standardError.contains("cannot listen for metrics on \(metrics): bind(\(metrics)): Address already in use"), "\(intruder.standardError)")

            let new = try SwitchyardProcess(arguments: ["serve", "--config", old.configPath, "--takeover"], listenEndpoints: [listen])
            #expect(eventually(timeout: 15) { (try? old.admin.stats()["pid"] as? Int) == Int(new.pid) }, "\(new.standardError)")
            // Every scrape now reaches the new process, which has counted nothing like 30 clients.
            for _ in 0..<10 {
                #expect(try accepted() < 30)
            }
            #expect(old.process.waitForExit(timeout: 30) == 0)
        }

        /// A listener written with a hostname keeps its name across the takeover: the new
        /// process's reload finds it by the name and removes it.
        @Test func aListenerWrittenAsAHostnameIsHandedOverAndARemovingReloadFindsIt() throws {
            let a = try TestBackend(.identify(name: "a"))
            let port = try Sockets.freeEndpoint(host: Self.firstAddress(of: "localhost")).port
            let named = TCPEndpoint(host: try Self.firstAddress(of: "localhost"), port: port)
            let other = try Sockets.freeEndpoint()
            func yaml(_ listen: [String]) -> String {
                "workers: 1\nservices:\n  main:\n    listen: [\(listen.map { "\"\($0)\"" }.joined(separator: ", "))]\n    health: off\n    backends: [\"\(a.endpoint)\"]\n"
            }
            let old = try ConfiguredProxy(yaml: yaml(["localhost:\(port)", "\(other)"]), listen: [named, other])
            let new = try SwitchyardProcess(arguments: ["serve", "--config", old.configPath, "--takeover"], listenEndpoints: [named, other])
            #expect(eventually(timeout: 15) { (try? old.admin.stats()["pid"] as? Int) == Int(new.pid) }, "\(new.standardError)")
            #expect(new.standardError.contains("2 listener(s) on handed-over sockets, 0 bound fresh"), "\(new.standardError)")
            #expect(try IdentifiedClient(through: named).backendName == "a")

            try old.rewrite(yaml(["\(other)"]))
            let reply = try old.admin.send("reload")
            #expect(reply.isOK, "\(reply)")
            #expect(eventually(timeout: 5) { (try? TCPConnection(to: named, timeout: 1)) == nil }, "localhost:\(port) still accepts")
            #expect(try IdentifiedClient(through: other).backendName == "a")
        }

        /// The first address getaddrinfo(3) gives for `host`, as switchyard resolves listen hosts.
        static func firstAddress(of host: String) throws -> String {
            var hints = addrinfo()
            hints.ai_family = AF_UNSPEC
            hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
            hints.ai_flags = AI_NUMERICSERV | AI_ADDRCONFIG
            var list: UnsafeMutablePointer<addrinfo>?
            guard getaddrinfo(host, "80", &hints, &list) == 0, let first = list else { throw HarnessError("cannot resolve \(host)") }
            defer { freeaddrinfo(list) }
            var text = [CChar](repeating: 0, count: Int(NI_MAXHOST))
            guard getnameinfo(first.pointee.ai_addr, first.pointee.ai_addrlen, &text, socklen_t(text.count), nil, 0, NI_NUMERICHOST) == 0 else {
                throw HarnessError("getnameinfo failed for \(host)")
            }
            return String(cString: text)
        }

        /// The upgrade from inside a service: SIGUSR2 makes the running process start the binary
        /// at its own path with its own arguments and `--takeover`.
        @Test func sigusr2StartsTheBinaryAtTheSamePathWithTheSameArgumentsToTakeOver() throws {
            let a = try TestBackend(.identify(name: "a"))
            let proxy = try AdminProxy(workers: 2, options: ["--shutdown-grace", "20s"], backends: [a.endpoint.description])
            let oldPID = Int(proxy.process.pid)
            let oldArguments = try Self.commandLine(of: Int32(oldPID))
            let loop = ClientLoop(through: proxy.listen, threads: 2)
            try #require(eventually(timeout: 10) { loop.successes >= 200 })

            proxy.process.signal(SIGUSR2)
            var successor = 0
            let tookOver = eventually(timeout: 15) {
                successor = (try? proxy.admin.stats()["pid"] as? Int) ?? oldPID
                return successor != oldPID
            }
            try #require(tookOver, "\(proxy.process.standardError)")
            defer { kill(Int32(successor), SIGKILL) }
            #expect(try Self.commandLine(of: Int32(successor)) == oldArguments + ["--takeover"])
            // (Foundation notices the exit only once every copy of a descriptor it gave the
            // child is closed: the successor must not have inherited it.)
            #expect(proxy.process.waitForExit(timeout: 30) == 0, "\(proxy.process.standardError)")
            #expect(proxy.process.standardError.contains("SIGUSR2: started \(oldArguments[0]) "), "\(proxy.process.standardError)")

            let before = loop.successes
            #expect(eventually(timeout: 10) { loop.successes >= before + 200 })
            let (_, failures) = loop.finish()
            #expect(failures.isEmpty, "\(failures.prefix(3))")
            let stats = try proxy.admin.stats()
            #expect(stats["workers"] as? Int == 2)
            #expect(stats["accepting"] as? Bool == true)

            // The successor is not the test's child: stop it by its pid; it removes the admin socket.
            kill(Int32(successor), SIGTERM)
            #expect(eventually(timeout: 15) { !FileManager.default.fileExists(atPath: proxy.admin.path) })
        }

        /// A process's arguments, from /proc/PID/cmdline.
        static func commandLine(of pid: Int32) throws -> [String] {
            let data = try Data(contentsOf: URL(fileURLWithPath: "/proc/\(pid)/cmdline"))
            return data.split(separator: 0, omittingEmptySubsequences: false).dropLast().map { String(decoding: $0, as: UTF8.self) }
        }

        /// Reads one handover frame (README, "Admin socket"): the header, the message text and
        /// the batch markers; the descriptors, received without room for them, are discarded
        /// by the kernel. Returns the text and how many descriptors the header announced.
        static func readHandoverFrame(_ fd: Int32) throws -> (String, Int) {
            func read(_ count: Int) throws -> [UInt8] {
                var bytes = [UInt8](repeating: 0, count: count)
                var filled = 0
                while filled < count {
                    let n = bytes.withUnsafeMutableBytes { recv(fd, $0.baseAddress! + filled, count - filled, 0) }
                    guard n > 0 else { throw HarnessError("handover frame cut after \(filled) of \(count) bytes (errno \(errno))") }
                    filled += n
                }
                return bytes
            }
            let header = try read(16)
            guard Array(header[0..<4]) == Array("SWYF".utf8), header[4] == 1 else {
                throw HarnessError("not a handover frame: \(header)")
            }
            func word(_ offset: Int) -> Int { header[offset..<offset + 4].reduce(0) { $0 << 8 | Int($1) } }
            let descriptors = word(8)
            let text = String(decoding: try read(word(12)), as: UTF8.self)
            _ = try read((descriptors + 252) / 253)
            return (text, descriptors)
        }
    }
}

/// A UNIX stream server at `path` that writes `greeting` to each client and closes it.
final class GreetingUnixServer: Sendable {
    private let fd: Int32
    private let path: String
    private let task: BackgroundTask

    init(path: String, greeting: String) throws {
        self.path = path
        let fd = try systemCall("socket") { socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: Array(path.utf8)) }
        do {
            _ = try withUnsafePointer(to: &address) { pointer in
                try pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { raw in
                    try systemCall("bind \(path)") { bind(fd, raw, socklen_t(MemoryLayout<sockaddr_un>.size)) }
                }
            }
            _ = try systemCall("listen") { listen(fd, 8) }
        } catch {
            close(fd)
            throw error
        }
        self.fd = fd
        let bytes = Array(greeting.utf8)
        task = BackgroundTask {
            while true {
                let client = accept(fd, nil, nil)
                guard client >= 0 else { return }  // stop() shut the listener down
                _ = bytes.withUnsafeBytes { send(client, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                close(client)
            }
        }
    }

    func stop() {
        shutdown(fd, Int32(SHUT_RDWR))
        _ = task.join(timeout: 5)
        close(fd)
        unlink(path)
    }
}
