import Glibc
import Synchronization
import Testing
@testable import SwitchyardCore
@testable import SwitchyardIO

private let socketCounter = Atomic<Int>(0)

/// A socket path of its own for each test, removed by the server's `stop()`.
private func temporarySocketPath() -> String {
    "/tmp/swy-admin-test-\(getpid())-\(socketCounter.add(1, ordering: .relaxed).newValue).sock"
}

private let processStats = ProcessStats(
    uptime: .seconds(5), workers: 2, relayMode: "splice", balance: "round-robin",
    openConnections: 0, totalConnections: 0, bytesFromClients: 0, bytesToClients: 0)

private func makeServer(_ backends: [String] = ["127.0.0.1:9001", "127.0.0.1:9002"]) throws -> (AdminServer, BackendRegistry) {
    let registry = BackendRegistry(backends: backends.map { try! BackendSpec(parsing: $0) }, algorithm: .roundRobin)
    let server = try AdminServer(socketPath: temporarySocketPath(), registry: registry, processStats: { processStats })
    try server.start()
    return (server, registry)
}

@Suite(.serialized) struct AdminServerTests {
    @Test func drainThroughTheSocketChangesTheSnapshot() throws {
        let (server, registry) = try makeServer()
        defer { server.stop() }
        let (ok, reply) = try AdminClient.send(command: "drain 127.0.0.1:9002", socketPath: server.socketPath)
        #expect(ok)
        #expect(reply == "OK\n127.0.0.1:9002 ready -> drain; 0 open connections will finish")
        #expect(registry.snapshot().backends[1].admin == .drain)

        let shown = try AdminClient.send(command: "show backends json", socketPath: server.socketPath)
        #expect(shown.ok && shown.reply.contains("\"state\":\"drain\""))
    }

    @Test func socketFileIsPrivate() throws {
        let (server, _) = try makeServer()
        defer { server.stop() }
        var status = stat()
        #expect(stat(server.socketPath, &status) == 0)
        #expect(status.st_mode & 0o777 == 0o600)
        server.stop()
        #expect(access(server.socketPath, F_OK) != 0, "stop removes the socket file")
    }

    @Test func badInputGetsErrorsAndTheConnectionKeepsServing() throws {
        let (server, _) = try makeServer()
        defer { server.stop() }
        let connection = try RawAdminConnection(path: server.socketPath)
        connection.write("frobnicate\n")
        #expect(connection.readReply() == "ERROR: unknown command 'frobnicate'; send 'help' for the list")
        connection.write([0x00, 0xFF, 0xFE, 0x41, 0x0A])
        #expect(connection.readReply() == "ERROR: the line holds bytes that are not printable ASCII; commands are plain text, one per line")
        connection.write("drain 127.0.0.1:1\nweight 127.0.0.1:9001 1000\n\n")
        #expect(connection.readReply() == "ERROR: unknown backend '127.0.0.1:1'; 'show backends' lists them")
        #expect(connection.readReply() == "ERROR: weight: weight '1000' must be a whole number from 0 to 256")
        #expect(connection.readReply() == "ERROR: empty command; send 'help' for the list")
        connection.write("show stats\r\n")
        #expect(connection.readReply()?.hasPrefix("OK\npid 0\nuptime 5s\nworkers 2\n") == true)
    }

    @Test func overlongLineGetsAnErrorAndTheClientIsDropped() throws {
        let (server, _) = try makeServer()
        defer { server.stop() }
        let connection = try RawAdminConnection(path: server.socketPath)
        connection.write([UInt8](repeating: UInt8(ascii: "a"), count: 5000))
        #expect(connection.readReply() == "ERROR: line too long: the limit is 4096 bytes; closing")
        #expect(connection.closedByServer())
        #expect(try AdminClient.send(command: "help", socketPath: server.socketPath).ok, "the server keeps serving others")
    }

    @Test func clientLeavingMidLineOrMidReplyDoesNotDisturbTheServer() throws {
        let (server, _) = try makeServer()
        defer { server.stop() }
        do {
            let halfLine = try RawAdminConnection(path: server.socketPath)
            halfLine.write("dra")
            let noRead = try RawAdminConnection(path: server.socketPath)
            noRead.write(String(repeating: "show backends\n", count: 200))
        }
        #expect(try AdminClient.send(command: "show stats", socketPath: server.socketPath).ok)
    }

    @Test func twentyClientsAtOnce() throws {
        let (server, _) = try makeServer()
        defer { server.stop() }
        let connections = try (0..<20).map { _ in try RawAdminConnection(path: server.socketPath) }
        for connection in connections { connection.write("show backends\nshow stats json\n") }
        for connection in connections {
            #expect(connection.readReply()?.hasPrefix("OK\nSERVICE  ID  ADDRESS") == true)
            #expect(connection.readReply()?.hasPrefix("OK\n{\"pid\":0,\"uptime_seconds\":5,") == true)
        }

        let successes = Atomic<Int>(0)
        let path = server.socketPath
        let threads = try (0..<20).map { _ in
            try ControlThread(name: "test-client") {
                for _ in 0..<5 where (try? AdminClient.send(command: "show backends json", socketPath: path))?.ok == true {
                    successes.add(1, ordering: .relaxed)
                }
            }
        }
        for thread in threads { thread.join() }
        #expect(successes.load(ordering: .relaxed) == 100)
    }

    @Test func waitDoesNotBlockOtherClients() throws {
        let (server, registry) = try makeServer()
        defer { server.stop() }
        let stats = registry.snapshot().backends[0].stats
        stats.active.store(1, ordering: .relaxed)
        let waiter = try RawAdminConnection(path: server.socketPath)
        waiter.write("drain 127.0.0.1:9001\nwait 127.0.0.1:9001 5s\nshow stats\n")
        #expect(waiter.readReply()?.hasPrefix("OK") == true)

        let clock = ContinuousClock()
        let start = clock.now
        #expect(try AdminClient.send(command: "show backends", socketPath: server.socketPath).ok)
        #expect(clock.now - start < .milliseconds(500), "another client is served while the wait is pending")

        stats.active.store(0, ordering: .relaxed)
        #expect(waiter.readReply() == "OK\n127.0.0.1:9001 has no open connections")
        #expect(clock.now - start < .seconds(2))
        #expect(waiter.readReply()?.hasPrefix("OK\npid") == true, "lines sent after a wait run once it ends")
    }

    @Test func waitTimesOutWithAnError() throws {
        let (server, registry) = try makeServer()
        defer { server.stop() }
        registry.snapshot().backends[0].stats.active.store(2, ordering: .relaxed)
        let (ok, reply) = try AdminClient.send(command: "wait 127.0.0.1:9001 100ms", socketPath: server.socketPath)
        #expect(!ok)
        #expect(reply.hasPrefix("ERROR: 127.0.0.1:9001 still has 2 open connections after 100ms\n"))
    }

    @Test func staleSocketFileIsReplacedButALiveOneIsAnError() throws {
        let path = temporarySocketPath()
        // A socket file left by a process that died: bound, never listening, not unlinked.
        let stale = try UnixSocket.make(nonBlocking: false)
        let address = try UnixSocket.address(path)
        try systemCall("bind") { UnixSocket.withAddress(address) { bind(stale, $0, $1) } }
        Glibc.close(stale)

        let registry = BackendRegistry(backends: [], algorithm: .roundRobin)
        let server = try AdminServer(socketPath: path, registry: registry, processStats: { processStats })
        try server.start()
        defer { server.stop() }
        #expect(try AdminClient.send(command: "help", socketPath: path).ok)

        #expect(throws: AdminSocketError("another switchyard is already serving the admin socket \(path); stop it or choose another --admin-socket")) {
            _ = try AdminServer(socketPath: path, registry: registry, processStats: { processStats })
        }
        #expect(try AdminClient.send(command: "help", socketPath: path).ok, "the live instance keeps its socket")
    }

    @Test func clientErrorsNameTheCallAndPath() {
        #expect(throws: AdminSocketError("connect /tmp/swy-no-such.sock: No such file or directory (ENOENT) (is switchyard serving with this --admin-socket?)")) {
            _ = try AdminClient.send(command: "help", socketPath: "/tmp/swy-no-such.sock")
        }
    }
}
