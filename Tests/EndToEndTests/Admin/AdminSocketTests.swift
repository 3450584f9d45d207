import Foundation
import Glibc
import Testing

extension EndToEnd {
    /// The admin socket itself: bad input, many clients, file mode, one owner per path, and the
    /// exit codes of `switchyard admin`.
    @Suite struct AdminSocketBehaviour {
        @Test func badAdminInputGetsErrorRepliesWhileTheProxyKeepsRelaying() throws {
            let backend = try TestBackend(.echo)
            let proxy = try AdminProxy(backends: [backend.endpoint.description])
            let name = backend.endpoint.description
            let relay = try TCPConnection(to: proxy.listen)
            var exchange = 0
            func relayStillEchoes(_ step: String) {
                exchange += 1
                #expect(throws: Never.self, "relay round trip after \(step)") {
                    try relay.roundTrip(Array("exchange \(exchange) after \(step)".utf8), timeout: 2)
                }
            }
            relayStillEchoes("start")

            // Malformed commands: each gets an ERROR reply and the connection stays usable.
            let session = try proxy.admin.connect()
            let malformed = [
                "frobnicate", "drain 9.9.9.9:1", "weight \(name) x", "wait \(name)", "add 1.2.3.4",
                "drain", "show", "show nothing", "weight \(name) 257", "wait \(name) soon",
            ]
            for line in malformed {
                let reply = try session.command(line)
                #expect(reply.isError, "\(line.debugDescription) got \(reply)")
            }
            let afterMalformed = try session.command("show stats")
            #expect(afterMalformed.isOK, "show stats on the same connection after errors: \(afterMalformed)")
            relayStillEchoes("malformed commands")

            // Binary junk (NUL first, then any byte but newline) on one line: an error, connection kept.
            var generator = DeterministicBytes(seed: 0xADB1)
            let junk = [0] + generator.next(300).map { $0 == UInt8(ascii: "\n") ? 0xFF : $0 }
            let junkSession = try proxy.admin.connect()
            try junkSession.send(junk + [UInt8(ascii: "\n")])
            let junkReply = try junkSession.readReply()
            #expect(junkReply.isError, "binary junk got \(junkReply)")
            let afterJunk = try junkSession.command("help")
            #expect(afterJunk.isOK, "help after binary junk: \(afterJunk)")
            relayStillEchoes("binary junk")

            // A line over 4096 bytes, ended or not: one error reply, then the server closes the
            // connection. A line of exactly 4096 bytes is still served.
            let longest = try proxy.admin.connect()
            let padded = "show stats" + String(repeating: " ", count: 4096 - "show stats".count)
            let longestReply = try longest.command(padded)
            #expect(longestReply.isOK, "a line of exactly 4096 bytes got \(longestReply)")
            for ended in [true, false] {
                let longSession = try proxy.admin.connect()
                let line = Array(repeating: UInt8(ascii: "x"), count: 5000) + (ended ? [UInt8(ascii: "\n")] : [])
                try? longSession.send(line)  // The server may close before it read everything.
                let longReply = try longSession.readReply()
                #expect(longReply.errorMessage?.contains("too long") == true, "overlong line (newline: \(ended)) got \(longReply)")
                let longEnd = longSession.readUntilClosed(timeout: 2)
                #expect(longEnd.isClosed, "after the overlong line (newline: \(ended)) the connection \(longEnd)")
            }
            relayStillEchoes("overlong lines")

            // Pipelined commands, good and bad, are answered in order.
            let pipeline = try proxy.admin.connect()
            try pipeline.send(Array("help\nfrobnicate\nshow stats json\n".utf8))
            let replies = try (0..<3).map { _ in try pipeline.readReply() }
            #expect(replies[0].isOK && replies[0].body.count > 5, "help: \(replies[0])")
            #expect(replies[1].errorMessage?.contains("frobnicate") == true, "frobnicate: \(replies[1])")
            #expect((try? replies[2].jsonObject()) != nil, "show stats json: \(replies[2])")

            // A client that goes away in the middle of a line.
            let vanishing = try proxy.admin.connect()
            try vanishing.send(Array("show sta".utf8))
            vanishing.close()
            // A client that half-closes after a last command without newline is still answered.
            let halfClosing = try proxy.admin.connect()
            try halfClosing.send(Array("show stats".utf8))
            try halfClosing.shutdownWrite()
            let lastCommand = try halfClosing.readReply()
            #expect(lastCommand.isOK, "last command without newline, then half-close: \(lastCommand)")
            // Clients gone before their replies are written: a pending wait (the relay client keeps
            // the backend busy, so it times out after 200 ms) and a burst of pipelined commands.
            let impatient = try proxy.admin.connect()
            try impatient.send(line: "wait \(name) 200ms")
            impatient.close()
            let flooding = try proxy.admin.connect()
            try flooding.send(Array(String(repeating: "help\nshow backends\n", count: 100).utf8))
            flooding.close()
            usleep(400_000)
            #expect(proxy.process.isRunning, "the proxy died after clients left early; stderr:\n\(proxy.process.standardError)")
            relayStillEchoes("clients leaving mid-line or before their replies")

            // Thirty clients connected at once, each with a command in flight.
            let crowd = try (0..<30).map { _ in try proxy.admin.connect() }
            for client in crowd { try client.send(line: "show stats") }
            for (index, client) in crowd.enumerated() {
                let reply = try client.readReply()
                #expect(reply.isOK, "client \(index) of 30: \(reply)")
            }
            crowd.forEach { $0.close() }
            relayStillEchoes("30 admin clients")

            // Afterwards: the proxy relays a checksummed stream and reports coherent JSON stats.
            let fresh = try TCPConnection(to: proxy.listen)
            try fresh.verifyEchoStream(seed: 0x5EED, count: 1 << 20, timeout: 10)
            fresh.close()
            // The readiness probe was a client too, so the total is at least 3; the worker
            // counts a connection closed a moment after both ends finished.
            var stats: [String: Any] = [:]
            let settled = eventually(timeout: 2, interval: 0.05) {
                stats = (try? proxy.admin.send("show stats json").jsonObject()) ?? [:]
                return stats["open_connections"] as? Int == 1
            }
            #expect(settled, "open_connections with one relay client open: \(stats)")
            let total = stats["total_connections"] as? Int
            #expect(total.map { $0 >= 3 } == true, "total_connections after three clients: \(stats)")
            for field in ["bytes_from_clients", "bytes_to_clients"] {
                let bytes = stats[field] as? Int
                #expect(bytes.map { $0 >= 1 << 20 } == true, "\(field) after a 1 MiB echo: \(stats)")
            }
            relayStillEchoes("the end")
            #expect(proxy.process.isRunning, "stderr:\n\(proxy.process.standardError)")
        }

        @Test func adminSocketIsPrivateHasOneOwnerIsReplacedWhenStaleAndRemovedOnStop() throws {
            let backend = try TestBackend(.echo)
            let first = try AdminProxy(backends: [backend.endpoint.description])
            let path = first.admin.path

            var status = stat()
            #expect(stat(path, &status) == 0, "stat \(path): \(String(cString: strerror(errno)))")
            #expect(status.st_mode & S_IFMT == S_IFSOCK, "the admin path is not a socket")
            #expect(status.st_mode & 0o7777 == 0o600, "mode is \(String(status.st_mode & 0o7777, radix: 8))")

            // A second instance on the same path must refuse to start, with one line saying why.
            let second = try SwitchyardProcess(arguments: [
                "serve", "--listen", try Sockets.freeEndpoint().description, "--workers", "1",
                "--no-health-check", "--admin-socket", path, backend.endpoint.description,
            ])
            let secondStatus = second.waitForExit(timeout: 30)
            #expect(secondStatus != nil && secondStatus != 0, "second serve on the same socket: exit \(String(describing: secondStatus))")
            let errorLines = second.standardError.split(separator: "\n", omittingEmptySubsequences: true)
            #expect(errorLines.count == 1, "expected one error line, got:\n\(second.standardError)")
            #expect(second.standardError.contains("already"), "the error does not say the socket is taken:\n\(second.standardError)")
            second.kill()

            // The first one still owns and answers on its socket.
            let stillServed = try first.admin.send("show stats")
            #expect(stillServed.isOK, "the first instance after the second one failed: \(stillServed)")

            // SIGKILL leaves the socket file behind; a new instance replaces it.
            first.process.kill()
            #expect(FileManager.default.fileExists(atPath: path), "expected a stale socket file after SIGKILL")
            let third = try SwitchyardProcess(
                options: ["--no-health-check", "--admin-socket", path], backends: [backend.endpoint.description])
            defer {
                third.kill()
                try? FileManager.default.removeItem(atPath: path)
            }
            let reply = try AdminSocket(path: path).send("show backends")
            #expect(reply.isOK, "the instance started over a stale socket file: \(reply)")
            let client = try TCPConnection(to: third.listen)
            try client.roundTrip(Array("served by the third instance".utf8), timeout: 2)
            client.close()

            // A graceful stop removes the socket file.
            third.terminate()
            let thirdStatus = third.waitForExit(timeout: 30)
            #expect(thirdStatus == 0, "SIGTERM: exit \(String(describing: thirdStatus)); stderr:\n\(third.standardError)")
            #expect(!FileManager.default.fileExists(atPath: path), "the socket file is still there after SIGTERM")
        }

        @Test func adminSocketOffOnTheCommandLineOpensNoSocket() throws {
            let backend = try TestBackend(.echo)
            let listen = try Sockets.freeEndpoint()
            let stray = FileManager.default.currentDirectoryPath + "/off"
            try #require(!FileManager.default.fileExists(atPath: stray), "remove \(stray) left by an older build first")
            let proxy = try SwitchyardProcess(
                arguments: ["serve", "--listen", listen.description, "--admin-socket", "off", "--no-health-check", backend.endpoint.description],
                listenEndpoints: [listen])
            try proxy.waitUntilReady(timeout: 10)
            let connection = try TCPConnection(to: listen)
            try connection.roundTrip(Array("admin off\n".utf8))
            #expect(!FileManager.default.fileExists(atPath: stray), "--admin-socket off created a socket named off")
            #expect(eventually(timeout: 3, interval: 0.05) { proxy.standardError.contains("no admin socket (admin-socket off)") },
                    "\(proxy.standardError)")
        }

        @Test func adminClientExitsZeroOnOKOneOnErrorReplyTwoWhenNothingListens() throws {
            let backend = try TestBackend(.echo)
            let proxy = try AdminProxy(backends: [backend.endpoint.description])

            let ok = try proxy.admin.runClient(["show", "backends"])
            #expect(ok.exitStatus == 0, "show backends: \(ok)")
            #expect(ok.standardOutput.hasPrefix("OK\n"), "show backends: \(ok)")
            #expect(ok.standardOutput.contains(backend.endpoint.description), "show backends: \(ok)")

            let drained = try proxy.admin.runClient(["drain", backend.endpoint.description])
            #expect(drained.exitStatus == 0, "drain of a known backend: \(drained)")
            let row = try proxy.admin.backends()[backend.endpoint.description]
            #expect(row?["state"] as? String == "drain", "the client's drain did not take effect: \(String(describing: row))")

            let error = try proxy.admin.runClient(["drain", "9.9.9.9:1"])
            #expect(error.exitStatus == 1, "drain of an unknown backend: \(error)")
            #expect(error.standardOutput.hasPrefix("ERROR: "), "drain of an unknown backend: \(error)")

            let nowhere = SwitchyardProcess.temporaryAdminSocketPath()
            let unreachable = try AdminSocket.runClient(["--socket", nowhere, "show", "stats"])
            #expect(unreachable.exitStatus == 2, "no server on \(nowhere): \(unreachable)")
            #expect(!unreachable.standardError.isEmpty, "no server on \(nowhere): nothing on stderr")
        }
    }
}
