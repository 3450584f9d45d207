import Foundation
import Glibc
import Testing

/// A HAProxy-protocol agent in Python: for each connection it reads the line the proxy sends
/// (`agent-send`), notes it, and answers with the text of `reply-NAME`, NAME being that line;
/// the test changes a reply by rewriting the file. Stopped by its PID on deinit.
final class PythonAgent: @unchecked Sendable {
    let endpoint: TCPEndpoint
    let folder: String
    private let process: Process

    init() throws {
        folder = try ConfiguredProxy.makeFolder()
        try ConfiguredProxy.write(Self.script, to: folder + "/agent.py")
        endpoint = try Sockets.freeEndpoint()
        process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", folder + "/agent.py", String(endpoint.port), folder]
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try SwitchyardProcess.runWithDefaultSignalMask(process)
        guard eventually(timeout: 10, { (try? TCPConnection(to: endpoint, timeout: 1)) != nil }) else {
            throw HarnessError("the Python agent did not start on \(endpoint)")
        }
    }

    deinit {
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        try? FileManager.default.removeItem(atPath: folder)
    }

    /// What the agent answers when asked with `name` (a line of its own, newline added).
    func answer(_ reply: String, to name: String) throws {
        try ConfiguredProxy.write(reply + "\n", to: "\(folder)/reply-\(name)")
    }

    /// The lines it was asked with so far.
    var askedLines: [String] {
        ((try? String(contentsOfFile: folder + "/asked", encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
    }

    static let script = """
    import os, socket, sys
    port, folder = int(sys.argv[1]), sys.argv[2]
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(64)
    while True:
        connection, _ = listener.accept()
        try:
            connection.settimeout(2)
            asked = b""
            while not asked.endswith(b"\\n"):
                chunk = connection.recv(256)
                if not chunk:
                    break
                asked += chunk
            name = asked.decode(errors="replace").strip()
            if name:
                with open(os.path.join(folder, "asked"), "a") as log:
                    log.write(name + "\\n")
                path = os.path.join(folder, "reply-" + name)
                if os.path.exists(path):
                    with open(path, "rb") as reply:
                        connection.sendall(reply.read())
        except OSError:
            pass
        finally:
            connection.close()
    """
}

extension EndToEnd {
    /// Agent checks (issue 22): a backend's agent drains it, puts it in maintenance and back,
    /// sets its weight, and takes it down, as HAProxy's `agent-check` does; an agent's `up`
    /// never brings up a backend whose health check fails.
    @Suite struct AgentCheck {
        /// `count` clients one after another, each checking 16 KiB of echo by checksum; how
        /// many reached each backend.
        private static func serve(_ count: Int, through listen: TCPEndpoint, seed: UInt64) throws -> [String: Int] {
            var reached: [String: Int] = [:]
            for client in 0..<count {
                let (connection, backend) = try IdentifiedClients.connect(to: listen)
                defer { connection.close() }
                try connection.verifyEchoStream(seed: seed + UInt64(client), count: 16 << 10, timeout: 10)
                reached[backend, default: 0] += 1
            }
            return reached
        }

        /// One weighted service `web` on one worker (exact counts), over the YAML list `backends`.
        private static func webYAML(listen: TCPEndpoint, health: String = "off", backends: String) -> String {
            """
            workers: 1
            services:
              web:
                listen: "\(listen)"
                balance: weighted
                health: \(health)
                backends:
            \(backends)

            """
        }

        /// A proxy running `webYAML`; returns it with its listen address.
        private static func webProxy(health: String = "off", backends: String) throws -> (ConfiguredProxy, TCPEndpoint) {
            let listen = try Sockets.freeEndpoint()
            let proxy = try ConfiguredProxy(yaml: webYAML(listen: listen, health: health, backends: backends), listen: [listen])
            return (proxy, listen)
        }

        /// Waits (bounded) until `condition` holds for the `show backends json` row of `name`.
        private static func awaitRow(_ proxy: ConfiguredProxy, _ name: String, _ what: String,
                                     sourceLocation: SourceLocation = #_sourceLocation, _ condition: ([String: Any]) -> Bool) {
            func row() -> [String: Any] { (try? proxy.admin.backends())?[name] ?? [:] }
            #expect(eventually(timeout: 5 * EndToEnd.sanitizerSlowdown, interval: 0.05) { condition(row()) },
                    "\(what): \(row())\n\(proxy.process.standardError)", sourceLocation: sourceLocation)
        }

        @Test func anAgentDrainsMaintainsAndReweighsItsBackendWhileItsWordsStayInForce() throws {
            let a = try TestBackend(.identify(name: "A")), b = try TestBackend(.identify(name: "B"))
            let agent = try PythonAgent()
            try agent.answer("ready 100%", to: "web-b")
            let (proxy, listen) = try Self.webProxy(backends: """
                      - {address: "\(a.endpoint)", weight: 2}
                      - {address: "\(b.endpoint)", weight: 2, agent-port: \(agent.endpoint.port), agent-interval: 200ms, agent-send: "web-b\\n"}
                """)
            let nameB = b.endpoint.description
            func rowB() -> [String: Any] { (try? proxy.admin.backends())?[nameB] ?? [:] }
            func awaitRow(_ what: String, sourceLocation: SourceLocation = #_sourceLocation, _ condition: ([String: Any]) -> Bool) {
                Self.awaitRow(proxy, nameB, what, sourceLocation: sourceLocation, condition)
            }

            awaitRow("the agent's first answer") { $0["agent_state"] as? String == "ready" && $0["agent_weight"] as? Int == 100 }
            #expect(rowB()["agent"] as? String == agent.endpoint.description)
            #expect(try Self.serve(12, through: listen, seed: 0xA6E0) == ["A": 6, "B": 6])

            // A client on B before the drain keeps its connection; new ones go to A only.
            var held: (connection: TCPConnection, backend: String)
            repeat { held = try IdentifiedClients.connect(to: listen) } while held.backend != "B"
            try agent.answer("drain # deploy in progress", to: "web-b")
            awaitRow("drain") { $0["state"] as? String == "drain" && $0["agent_text"] as? String == "deploy in progress" }
            #expect(rowB()["selectable"] as? Bool == false)
            #expect(try Self.serve(8, through: listen, seed: 0xA6E1) == ["A": 8])
            try held.connection.verifyEchoStream(seed: 0xA6E2, count: 16 << 10, timeout: 10)
            held.connection.close()

            // A weight alone does not end the drain, and neither does up: only ready does.
            try agent.answer("50%", to: "web-b")
            awaitRow("50% while drained") { $0["agent_weight"] as? Int == 50 && $0["effective_weight"] as? Int == 1 }
            #expect(rowB()["state"] as? String == "drain")
            #expect(try Self.serve(6, through: listen, seed: 0xA6E3) == ["A": 6])
            try agent.answer("up", to: "web-b")
            awaitRow("up while drained") { $0["agent_health"] as? String == "up" }
            #expect(rowB()["state"] as? String == "drain")
            #expect(try Self.serve(6, through: listen, seed: 0xA6E4) == ["A": 6])

            try agent.answer("maint", to: "web-b")
            awaitRow("maint") { $0["state"] as? String == "maint" && $0["agent_state"] as? String == "maint" }
            #expect(try Self.serve(6, through: listen, seed: 0xA6E5) == ["A": 6])

            // Ready: B is back, at the 50% it was given (weight 1 against A's 2).
            try agent.answer("ready", to: "web-b")
            awaitRow("ready") { $0["state"] as? String == "ready" && $0["selectable"] as? Bool == true }
            #expect(try Self.serve(12, through: listen, seed: 0xA6E6) == ["A": 8, "B": 4])

            // The operator's drain and the agent's ready are separate sources: the most
            // restrictive holds, and the operator's ready does not end the agent's drain.
            let drained = try proxy.admin.send("drain web/\(nameB)")
            #expect(drained.isOK, "\(drained)")
            #expect(try Self.serve(6, through: listen, seed: 0xA6E7) == ["A": 6])
            try agent.answer("drain", to: "web-b")
            awaitRow("the agent's drain") { $0["agent_state"] as? String == "drain" }
            let ready = try proxy.admin.send("ready web/\(nameB)")
            #expect(ready.description.contains("but its agent says drain"), "\(ready)")
            #expect(try Self.serve(6, through: listen, seed: 0xA6E8) == ["A": 6])
            try agent.answer("ready 100%", to: "web-b")
            awaitRow("ready at full weight") { $0["selectable"] as? Bool == true && $0["effective_weight"] as? Int == 2 }
            #expect(try Self.serve(12, through: listen, seed: 0xA6E9) == ["A": 6, "B": 6])

            // Eight answers were seen, each from a check of its own, each asking with agent-send.
            let asked = agent.askedLines
            #expect(asked.count >= 8 && asked.allSatisfy { $0 == "web-b" }, "\(asked.count) asks: \(asked.suffix(5))")
        }

        @Test func anAgentsUpNeverBringsUpABackendWhoseCheckFailsButItsDownTakesOneDown() throws {
            let a = try TestBackend(.identify(name: "A")), b = try TestBackend(.identify(name: "B"))
            let c = try TestBackend(.identify(name: "C"))
            let agent = try PythonAgent()
            try agent.answer("up", to: "b")
            try agent.answer("down # disk full", to: "c")
            // B's health check asks a port where nothing listens: it fails, whatever B's agent says.
            let closed = try Sockets.freeEndpoint()
            let port = agent.endpoint.port
            let (proxy, listen) = try Self.webProxy(health: "{interval: 100ms, timeout: 500ms, rise: 1, fall: 1}", backends: """
                      - "\(a.endpoint)"
                      - {address: "\(b.endpoint)", check-port: \(closed.port), agent-port: \(port), agent-interval: 200ms, agent-send: "b\\n"}
                      - "\(c.endpoint),agent-port=\(port),agent-interval=200ms,agent-send=c\\n"
                """)
            let (nameB, nameC) = (b.endpoint.description, c.endpoint.description)
            func rows() -> [String: [String: Any]] { (try? proxy.admin.backends()) ?? [:] }
            #expect(eventually(timeout: 5 * EndToEnd.sanitizerSlowdown, interval: 0.05) {
                let rows = rows()
                return rows[nameB]?["health"] as? String == "down" && rows[nameB]?["agent_health"] as? String == "up"
                    && rows[nameC]?["agent_health"] as? String == "down"
            }, "\(rows())\n\(proxy.process.standardError)")
            let before = rows()
            #expect(before[nameB]?["selectable"] as? Bool == false, "an agent's up brought up a backend whose check fails")
            #expect(before[nameC]?["health"] as? String == "up" && before[nameC]?["selectable"] as? Bool == false)
            #expect(before[nameC]?["agent_text"] as? String == "disk full")
            #expect(try Self.serve(6, through: listen, seed: 0xB6E0) == ["A": 6])

            // C's agent says up again: C is back; B's agent still cannot help B.
            try agent.answer("up", to: "c")
            Self.awaitRow(proxy, nameC, "C back") { $0["selectable"] as? Bool == true }
            #expect(try Self.serve(8, through: listen, seed: 0xB6E1) == ["A": 4, "C": 4])
            #expect(rows()[nameB]?["selectable"] as? Bool == false)
        }

        @Test func anUnreachableOrGarbledAgentChangesNothingAndIsShown() throws {
            let a = try TestBackend(.identify(name: "A")), b = try TestBackend(.identify(name: "B"))
            let agent = try PythonAgent()
            try agent.answer("drain", to: "b")
            let (proxy, listen) = try Self.webProxy(backends: """
                      - "\(a.endpoint)"
                      - {address: "\(b.endpoint)", agent-port: \(agent.endpoint.port), agent-interval: 200ms, agent-send: "b\\n"}
                """)
            let nameB = b.endpoint.description
            func rowB() -> [String: Any] { (try? proxy.admin.backends())?[nameB] ?? [:] }
            func awaitError(_ text: String, sourceLocation: SourceLocation = #_sourceLocation) {
                Self.awaitRow(proxy, nameB, "agent_error with '\(text)'", sourceLocation: sourceLocation) {
                    ($0["agent_error"] as? String)?.contains(text) == true
                }
                #expect(rowB()["state"] as? String == "drain", "the drain must stay in force", sourceLocation: sourceLocation)
            }
            Self.awaitRow(proxy, nameB, "drain") { $0["state"] as? String == "drain" }

            // Garbage (a percentage out of range), then a line far over 1 KiB: errors, not verdicts.
            try agent.answer("ready 5000%", to: "b")
            awaitError("5000%")
            try agent.answer("ready " + String(repeating: "x", count: 4000), to: "b")
            awaitError("longer than 1024 bytes")
            #expect(try Self.serve(4, through: listen, seed: 0xC6E0) == ["A": 4])

            // No answer at all (the agent says nothing to an unknown name and closes): still drained.
            try FileManager.default.removeItem(atPath: "\(agent.folder)/reply-b")
            awaitError("closed without a reply")
            #expect(proxy.process.standardError.contains("its last answer stays in force"), "\(proxy.process.standardError)")

            try agent.answer("ready", to: "b")
            Self.awaitRow(proxy, nameB, "ready") { $0["selectable"] as? Bool == true }
            #expect(rowB()["agent_error"] is NSNull, "\(rowB())")
            #expect(try Self.serve(4, through: listen, seed: 0xC6E1) == ["A": 2, "B": 2])
        }

        @Test func aReloadThatAddsAnAgentAsksItAndOneThatRemovesItForgetsWhatItSaid() throws {
            let a = try TestBackend(.identify(name: "A")), b = try TestBackend(.identify(name: "B"))
            let agent = try PythonAgent()
            try agent.answer("maint # being replaced", to: "b")
            let plain = """
                      - "\(a.endpoint)"
                      - "\(b.endpoint)"
                """
            let (proxy, listen) = try Self.webProxy(backends: plain)
            let nameB = b.endpoint.description
            #expect(try Self.serve(4, through: listen, seed: 0xD6E0) == ["A": 2, "B": 2])
            #expect(try proxy.admin.backends()[nameB]?["agent"] == nil, "no agent fields without an agent")

            try proxy.rewrite(Self.webYAML(listen: listen, backends: """
                      - "\(a.endpoint)"
                      - "\(b.endpoint),agent-port=\(agent.endpoint.port),agent-interval=200ms,agent-send=b\\n"
                """))
            let added = try proxy.admin.send("reload")
            #expect(added.isOK, "\(added)")
            Self.awaitRow(proxy, nameB, "maint from the added agent") { $0["state"] as? String == "maint" && $0["agent_text"] as? String == "being replaced" }
            #expect(try Self.serve(4, through: listen, seed: 0xD6E1) == ["A": 4])

            try proxy.rewrite(Self.webYAML(listen: listen, backends: plain))
            let removed = try proxy.admin.send("reload")
            #expect(removed.isOK, "\(removed)")
            Self.awaitRow(proxy, nameB, "ready once the agent is configured away") { $0["state"] as? String == "ready" && $0["agent"] == nil }
            #expect(try Self.serve(4, through: listen, seed: 0xD6E2) == ["A": 2, "B": 2])
        }

        /// An agent check that cannot get a socket says nothing about its agent: the round is
        /// skipped with one warning and no agent failure is logged or shown.
        @Test func agentChecksSkipTheirRoundWhileOutOfDescriptors() throws {
            let backend = try TestBackend(.echo)
            let agent = try PythonAgent()
            try agent.answer("ready 100%", to: "b")
            // As the health checker's test: silent `--accept-proxy` clients hold every descriptor.
            let proxy = try SwitchyardProcess(
                relay: .copy,
                options: ["--max-connections", "500", "--no-admin-socket", "--accept-proxy", "--no-health-check"],
                backends: ["\(backend.endpoint),agent-port=\(agent.endpoint.port),agent-interval=50ms,agent-send=b\\n"],
                descriptorLimit: 40)
            try #require(eventually(timeout: 5) { agent.askedLines.count >= 2 }, "the agent was never asked")
            let warning = "agent checks skipped"

            let silent = (0..<60).compactMap { _ in try? TCPConnection(to: proxy.listen, timeout: 2) }
            #expect(silent.count == 60)
            let warned = eventually(timeout: 5) { proxy.standardError.contains(warning) }
            usleep(500_000)
            let log = proxy.standardError
            for connection in silent { connection.close() }

            #expect(warned, "no agent check ran out of descriptors; stderr:\n\(log)")
            #expect(log.components(separatedBy: warning).count - 1 == 1, "not one warning; stderr:\n\(log)")
            #expect(!log.contains("agent check of"), "a skipped check was logged as the agent's failure; stderr:\n\(log)")
            // Asked again once descriptors are free.
            let asked = agent.askedLines.count
            #expect(eventually(timeout: 5) { agent.askedLines.count > asked }, "the agent was not asked again")
            #expect(proxy.isRunning)
        }
    }
}
