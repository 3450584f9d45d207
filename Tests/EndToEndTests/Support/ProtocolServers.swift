import Foundation
import Glibc

/// Real database servers an end-to-end test starts on 127.0.0.1 and a free port, each in a
/// temporary data folder of its own, removed on deinit. Only the processes these start are ever
/// signalled, by their PIDs (see /work/shared/TEST-PEERS.md for how each runs here as root).

/// A server program run in the foreground as a child of the test, its output in `folder/log`.
final class ForegroundServer {
    let folder: String
    private var process: Process?

    init(_ executable: String, _ arguments: [String], folder: String) throws {
        self.folder = folder
        let log = folder + "/log"
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.standardInput = FileHandle.nullDevice
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        process.standardOutput = handle
        process.standardError = handle
        try SwitchyardProcess.runWithDefaultSignalMask(process)
        self.process = process
    }

    deinit { stop() }

    var isRunning: Bool { process?.isRunning ?? false }
    var log: String { (try? String(contentsOfFile: folder + "/log", encoding: .utf8)) ?? "" }

    /// Waits (bounded) until a TCP connect to `endpoint` succeeds; throws with the log if not.
    func waitUntilListening(_ endpoint: TCPEndpoint, timeout: Double) throws {
        let up = eventually(timeout: timeout, interval: 0.05) {
            guard isRunning else { return true }
            return (try? TCPConnection(to: endpoint, timeout: 1)).map { $0.close(); return true } ?? false
        }
        guard up, isRunning else { throw HarnessError("server did not listen on \(endpoint); log:\n\(log)") }
    }

    /// SIGTERM to this process's PID, SIGKILL after `timeout` seconds.
    func stop(timeout: Double = 10) {
        guard let process else { return }
        self.process = nil
        if process.isRunning { kill(process.processIdentifier, SIGTERM) }
        if !eventually(timeout: timeout, interval: 0.02, { !process.isRunning }) {
            kill(process.processIdentifier, SIGKILL)
            _ = eventually(timeout: 5, interval: 0.02) { !process.isRunning }
        }
    }
}

/// `redis-server` without persistence, optionally a replica of another and with a password.
final class RedisServer {
    let endpoint: TCPEndpoint
    let password: String?
    private let server: ForegroundServer

    init(replicaOf primary: RedisServer? = nil, password: String? = nil) throws {
        let folder = try ConfiguredProxy.makeFolder()
        endpoint = try Sockets.freeEndpoint()
        self.password = password
        var arguments = ["--port", "\(endpoint.port)", "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                         "--dir", folder, "--daemonize", "no"]
        if let primary {
            arguments += ["--replicaof", "127.0.0.1", "\(primary.endpoint.port)"]
            if let secret = primary.password { arguments += ["--masterauth", secret] }
        }
        if let password { arguments += ["--requirepass", password] }
        server = try ForegroundServer("/usr/bin/redis-server", arguments, folder: folder)
        try server.waitUntilListening(endpoint, timeout: 10)
    }

    deinit {
        server.stop()
        try? FileManager.default.removeItem(atPath: server.folder)
    }

    /// Runs one command with `redis-cli` and returns its output (bounded by 10 s).
    @discardableResult
    func command(_ words: [String]) throws -> String {
        var arguments = ["-h", "127.0.0.1", "-p", "\(endpoint.port)", "--no-auth-warning"]
        if let password { arguments += ["-a", password] }
        let (status, output) = try SwitchyardProcess.runTool("/usr/bin/redis-cli", arguments + words, timeout: 10)
        guard status == 0 else { throw HarnessError("redis-cli \(words.joined(separator: " ")): exit \(status): \(output)") }
        return output
    }

    /// The `tcp_port` of the server that answers `INFO server` on a new connection to `endpoint`
    /// (a proxy in front of Redis servers), sent with `QUIT` so that the server closes after.
    static func portAnswering(through endpoint: TCPEndpoint, password: String? = nil) throws -> UInt16 {
        let connection = try TCPConnection(to: endpoint, timeout: 5)
        defer { connection.close() }
        var request = ""
        if let password { request += "*2\r\n$4\r\nAUTH\r\n$\(password.utf8.count)\r\n\(password)\r\n" }
        request += "*2\r\n$4\r\nINFO\r\n$6\r\nserver\r\n*1\r\n$4\r\nQUIT\r\n"
        try connection.send(request)
        let reply = connection.readToEnd(timeout: 5, keepingUpTo: 1 << 16).keptText
        guard let line = reply.split(separator: "\r\n").first(where: { $0.hasPrefix("tcp_port:") }),
              let port = UInt16(line.dropFirst("tcp_port:".count)) else {
            throw HarnessError("no tcp_port in the INFO reply through \(endpoint): \(reply.prefix(200).debugDescription)")
        }
        return port
    }
}

/// PostgreSQL 15, which refuses to run as root: `initdb` and the postmaster run as `postgres`
/// (through `runuser`) in a folder it owns. The postmaster runs in the foreground as the test's
/// grandchild (pg_ctl's daemon would outlive what Foundation's Process can wait for) and is
/// stopped by the PID in its `postmaster.pid`.
final class PostgresServer {
    let endpoint: TCPEndpoint
    let folder: String
    private var server: ForegroundServer?
    private var data: String { folder + "/data" }
    private static let bin = "/usr/lib/postgresql/15/bin"

    init() throws {
        folder = try ConfiguredProxy.makeFolder()
        endpoint = try Sockets.freeEndpoint()
        try Self.run("/bin/chown", ["postgres:postgres", folder])
        try Self.run("/usr/sbin/runuser", ["-u", "postgres", "--", "\(Self.bin)/initdb", "-D", folder + "/data",
                                          "-A", "trust", "-U", "postgres", "--no-sync", "--no-instructions"], timeout: 60)
        try start()
    }

    deinit {
        stop()
        try? FileManager.default.removeItem(atPath: folder)
    }

    /// Starts the postmaster; returns once it accepts TCP connections.
    func start() throws {
        let server = try ForegroundServer("/usr/sbin/runuser", [
            "-u", "postgres", "--", "\(Self.bin)/postgres", "-D", data, "-p", "\(endpoint.port)", "-k", folder,
            "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off",
        ], folder: folder)
        self.server = server
        try server.waitUntilListening(endpoint, timeout: 30)
    }

    /// A fast shutdown (SIGINT) of the postmaster by its PID; waits (bounded) until it exited.
    func stop() {
        guard let server else { return }
        self.server = nil
        if let text = try? String(contentsOfFile: data + "/postmaster.pid", encoding: .utf8),
           let pid = pid_t(text.split(separator: "\n").first ?? ""), pid > 0 {
            kill(pid, SIGINT)
        }
        _ = eventually(timeout: 20, interval: 0.02) { !server.isRunning }
        server.stop()
    }

    private static func run(_ executable: String, _ arguments: [String], timeout: Double = 20) throws {
        let (status, output) = try SwitchyardProcess.runTool(executable, arguments, timeout: timeout)
        guard status == 0 else { throw HarnessError("\(executable) \(arguments.joined(separator: " ")): exit \(status): \(output)") }
    }
}

/// MariaDB (`mariadb-install-db`, then `mariadbd` in the foreground as root).
final class MariaDBServer {
    let endpoint: TCPEndpoint
    private let server: ForegroundServer

    init() throws {
        let folder = try ConfiguredProxy.makeFolder()
        endpoint = try Sockets.freeEndpoint()
        let (status, output) = try SwitchyardProcess.runTool("/usr/bin/mariadb-install-db", [
            "--no-defaults", "--datadir=\(folder)/data", "--user=root", "--skip-test-db",
            "--auth-root-authentication-method=normal",
        ], timeout: 60)
        guard status == 0 else { throw HarnessError("mariadb-install-db: exit \(status): \(output)") }
        server = try ForegroundServer("/usr/sbin/mariadbd", [
            "--no-defaults", "--datadir=\(folder)/data", "--user=root", "--port=\(endpoint.port)",
            "--bind-address=127.0.0.1", "--socket=\(folder)/sock", "--skip-log-bin", "--innodb-buffer-pool-size=16M",
        ], folder: folder)
        try server.waitUntilListening(endpoint, timeout: 30)
    }

    deinit {
        server.stop(timeout: 20)
        try? FileManager.default.removeItem(atPath: server.folder)
    }

    func stop() { server.stop(timeout: 20) }
}
