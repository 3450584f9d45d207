import Foundation
import Glibc
import Synchronization

/// One reply of the admin protocol (README, "Admin socket"): a status line, then body lines, ended on
/// the wire by an empty line (not kept here).
struct AdminReply: CustomStringConvertible {
    /// `OK` or `ERROR: message`.
    let status: String
    let body: [String]

    var isOK: Bool { status == "OK" }
    var isError: Bool { status.hasPrefix("ERROR: ") }
    /// The text after `ERROR: `, or nil for a reply that is not an error.
    var errorMessage: String? { isError ? String(status.dropFirst("ERROR: ".count)) : nil }

    var description: String { ([status] + body).joined(separator: "\\n") }

    /// The body of a `json` reply: exactly one line holding one JSON object.
    func jsonObject() throws -> [String: Any] {
        guard isOK, body.count == 1 else {
            throw HarnessError("expected OK and one JSON body line, got: \(self)")
        }
        let parsed = try JSONSerialization.jsonObject(with: Data(body[0].utf8))
        guard let object = parsed as? [String: Any] else {
            throw HarnessError("the JSON body is not an object: \(body[0])")
        }
        return object
    }
}

/// A blocking client of the admin UNIX socket with bounded send and receive timeouts.
///
/// Thread ownership: one thread at a time; replies are read in order, so a test may pipeline.
final class AdminConnection: @unchecked Sendable {
    let fd: Int32
    /// Bytes received but not yet returned as part of a reply.
    private var received: [UInt8] = []
    private var isClosed = false

    /// Connects to the socket at `path`; throws `SocketError` (ENOENT, ECONNREFUSED…) if nothing listens.
    init(path: String, timeout: Double = 5) throws {
        fd = try systemCall("socket") { socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0) }
        do {
            try Sockets.setOption(fd, SOL_SOCKET, SO_SNDTIMEO, Sockets.timeval(seconds: timeout))
            try Sockets.setOption(fd, SOL_SOCKET, SO_RCVTIMEO, Sockets.timeval(seconds: timeout))
            var address = sockaddr_un()
            address.sun_family = sa_family_t(AF_UNIX)
            let pathBytes = Array(path.utf8)
            guard pathBytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
                throw HarnessError("admin socket path is too long for sockaddr_un: \(path)")
            }
            withUnsafeMutableBytes(of: &address.sun_path) { raw in
                raw.copyBytes(from: pathBytes)
                raw[pathBytes.count] = 0
            }
            let socketFD = fd
            _ = try withUnsafePointer(to: &address) {
                try $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
                    try systemCall("connect \(path)") {
                        connect(socketFD, pointer, socklen_t(MemoryLayout<sockaddr_un>.size))
                    }
                }
            }
        } catch {
            close()  // marks it closed: deinit runs even though init throws
            throw error
        }
    }

    deinit { close() }

    func send(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try Sockets.sendAll(fd, $0) }
    }

    /// Sends `line` followed by `\n`.
    func send(line: String) throws {
        try send(Array((line + "\n").utf8))
    }

    /// Sends one command and reads its reply.
    func command(_ line: String, timeout: Double = 5) throws -> AdminReply {
        try send(line: line)
        return try readReply(timeout: timeout)
    }

    /// Reads the next reply (up to and including its terminating empty line), `timeout` overall.
    /// Throws if the server closes the connection or the deadline passes first.
    func readReply(timeout: Double = 5) throws -> AdminReply {
        let deadline = Date().addingTimeInterval(timeout)
        var lines: [String] = []
        while true {
            while let newline = received.firstIndex(of: UInt8(ascii: "\n")) {
                let line = String(decoding: received[..<newline], as: UTF8.self)
                received.removeSubrange(...newline)
                if line.isEmpty {
                    guard let status = lines.first else {
                        throw HarnessError("reply started with an empty line")
                    }
                    return AdminReply(status: status, body: Array(lines.dropFirst()))
                }
                lines.append(line)
            }
            let partial = (lines + [String(decoding: received, as: UTF8.self)]).joined(separator: "\\n")
            switch receiveMore(until: deadline) {
            case nil: continue
            case .endOfFile?: throw HarnessError("admin socket closed before the reply ended; got: \(partial)")
            case let end?: throw HarnessError("admin reply not complete (\(end)); got: \(partial)")
            }
        }
    }

    /// Reads and discards until the server closes the connection or `timeout` passes; returns how it ended.
    func readUntilClosed(timeout: Double) -> StreamEnd {
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            received.removeAll()
            if let end = receiveMore(until: deadline) { return end }
        }
    }

    /// One recv into `received`; nil when bytes arrived, otherwise how the stream ended.
    private func receiveMore(until deadline: Date) -> StreamEnd? {
        while true {
            let remaining = deadline.timeIntervalSinceNow
            guard remaining > 0,
                (try? Sockets.setOption(fd, SOL_SOCKET, SO_RCVTIMEO, Sockets.timeval(seconds: remaining))) != nil
            else { return .timedOut }
            var chunk = [UInt8](repeating: 0, count: 1 << 16)
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n > 0 {
                received += chunk[0..<n]
                return nil
            }
            if n == 0 { return .endOfFile }
            let code = errno
            switch code {
            case EINTR: continue
            case ECONNRESET: return .reset
            case EAGAIN: return .timedOut
            default: return .failed(errno: code)
            }
        }
    }

    /// Half-close: the server reads EOF and may still answer.
    func shutdownWrite() throws {
        try systemCall("shutdown") { shutdown(fd, Int32(SHUT_WR)) }
    }

    func close() {
        guard !isClosed else { return }
        isClosed = true
        Glibc.close(fd)
    }
}

/// What `switchyard admin` printed and how it exited.
struct AdminClientRun: CustomStringConvertible {
    let exitStatus: Int32
    let standardOutput: String
    let standardError: String

    var description: String {
        "exit \(exitStatus); stdout: \(standardOutput.debugDescription); stderr: \(standardError.debugDescription)"
    }
}

/// The admin socket of one proxy, by path.
struct AdminSocket: Sendable {
    let path: String

    func connect(timeout: Double = 5) throws -> AdminConnection {
        try AdminConnection(path: path, timeout: timeout)
    }

    /// Sends one command on a connection of its own and returns the reply.
    func send(_ command: String, timeout: Double = 5) throws -> AdminReply {
        try connect(timeout: timeout).command(command, timeout: timeout)
    }

    /// `show backends json`, keyed by backend name (`HOST:PORT`).
    func backends() throws -> [String: [String: Any]] {
        let object = try send("show backends json").jsonObject()
        guard let rows = object["backends"] as? [[String: Any]] else {
            throw HarnessError("show backends json has no 'backends' array: \(object)")
        }
        var byName: [String: [String: Any]] = [:]
        for row in rows {
            guard let name = row["address"] as? String else {
                throw HarnessError("a backend row has no 'address': \(row)")
            }
            byName[name] = row
        }
        return byName
    }

    /// Runs `switchyard admin --socket PATH WORDS...`, bounded by `timeout` seconds.
    func runClient(_ words: [String], timeout: Double = 10) throws -> AdminClientRun {
        try AdminSocket.runClient(["--socket", path] + words, timeout: timeout)
    }

    /// Runs `switchyard admin ARGUMENTS...`, bounded by `timeout` seconds (then killed, and this throws).
    static func runClient(_ arguments: [String], timeout: Double = 10) throws -> AdminClientRun {
        let process = Process()
        process.executableURL = try SwitchyardProcess.binaryURL()
        process.arguments = ["admin"] + arguments
        process.standardInput = FileHandle.nullDevice
        let output = Pipe()
        let error = Pipe()
        process.standardOutput = output
        process.standardError = error
        try process.run()
        // The replies are small: they fit in the pipe buffers, so waiting before reading cannot block.
        guard eventually(timeout: timeout, interval: 0.005, { !process.isRunning }) else {
            Glibc.kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            throw HarnessError("switchyard admin \(arguments) did not exit within \(timeout) s")
        }
        return AdminClientRun(
            exitStatus: process.terminationReason == .exit ? process.terminationStatus : 128 + process.terminationStatus,
            standardOutput: String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self),
            standardError: String(decoding: error.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self))
    }
}

/// A proxy started with an admin socket at a path the test knows, by default without health
/// checks. The socket file is removed when this is released (after the process was killed), so
/// a proxy killed with SIGKILL leaves nothing behind in the temporary directory.
final class AdminProxy: Sendable {
    let process: SwitchyardProcess
    let admin: AdminSocket

    var listen: TCPEndpoint { process.listen }

    init(
        relay: RelayMode = .auto,
        workers: Int = 1,
        healthChecks: Bool = false,
        options: [String] = [],
        backends: [String]
    ) throws {
        let path = SwitchyardProcess.temporaryAdminSocketPath()
        admin = AdminSocket(path: path)
        var allOptions = options + ["--admin-socket", path]
        if !healthChecks { allOptions.append("--no-health-check") }
        process = try SwitchyardProcess(relay: relay, workers: workers, options: allOptions, backends: backends)
    }

    deinit {
        process.kill()
        try? FileManager.default.removeItem(atPath: admin.path)
    }
}

extension TCPConnection {
    /// Reads one line (without its `\n`) of at most `limit` bytes, byte by byte so that nothing
    /// after it is consumed; `timeout` overall.
    func receiveLine(limit: Int = 256, timeout: Double = 3) throws -> String {
        let deadline = Date().addingTimeInterval(timeout)
        var line: [UInt8] = []
        while line.count < limit {
            let byte = try receive(exactly: 1, timeout: max(deadline.timeIntervalSinceNow, 0.001))[0]
            if byte == UInt8(ascii: "\n") { return String(decoding: line, as: UTF8.self) }
            line.append(byte)
        }
        throw HarnessError("no newline within \(limit) bytes: \(String(decoding: line, as: UTF8.self))")
    }
}

/// Connections to `.identify` backends through a proxy, and which backend each one reached.
enum IdentifiedClients {
    /// Connects through `proxy` and reads the backend's name line.
    static func connect(to proxy: TCPEndpoint, timeout: Double = 3) throws -> (connection: TCPConnection, backend: String) {
        let connection = try TCPConnection(to: proxy, timeout: timeout)
        return (connection, try connection.receiveLine(timeout: timeout))
    }

    /// Opens `count` connections one after another, each closed once it named its backend, and
    /// returns how many reached each backend name.
    static func tally(_ count: Int, through proxy: TCPEndpoint) throws -> [String: Int] {
        var reached: [String: Int] = [:]
        for _ in 0..<count {
            let (connection, backend) = try connect(to: proxy)
            connection.close()
            reached[backend, default: 0] += 1
        }
        return reached
    }

    /// Like `tally`, but `parallelism` threads connect at once; also returns every failure.
    static func tallyInParallel(_ count: Int, parallelism: Int, through proxy: TCPEndpoint) -> (reached: [String: Int], failures: [String]) {
        let reached = TallyBox()
        let failures = runInParallel(jobs: count, parallelism: parallelism, timeout: 10) { _ in
            let (connection, backend) = try connect(to: proxy)
            connection.close()
            reached.record(backend)
        }
        return (reached.counts, failures)
    }

    /// Counts by backend name, shared by the threads of `tallyInParallel`.
    private final class TallyBox: Sendable {
        private let state = Mutex<[String: Int]>([:])
        func record(_ backend: String) { state.withLock { $0[backend, default: 0] += 1 } }
        var counts: [String: Int] { state.withLock { $0 } }
    }

    /// Opens connections until `count` of them reached `backend` and returns those, still open;
    /// the others are closed. Throws after `count * 4 + 4` attempts.
    static func hold(_ count: Int, on backend: String, through proxy: TCPEndpoint) throws -> [TCPConnection] {
        var held: [TCPConnection] = []
        for _ in 0..<(count * 4 + 4) where held.count < count {
            let (connection, reached) = try connect(to: proxy)
            if reached == backend { held.append(connection) } else { connection.close() }
        }
        guard held.count == count else {
            throw HarnessError("only \(held.count) of \(count) connections reached \(backend)")
        }
        return held
    }
}

/// A flag one thread raises to tell background loops to finish; any thread may read it.
final class StopSignal: Sendable {
    private let raised = Atomic<Bool>(false)

    var isRaised: Bool { raised.load(ordering: .relaxed) }
    func raise() { raised.store(true, ordering: .relaxed) }
}
