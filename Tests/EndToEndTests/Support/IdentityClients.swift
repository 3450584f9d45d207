import Foundation
import Glibc

/// A client connection through the proxy to an `.identify` backend: the initializer connects
/// (optionally from a chosen source address) and reads the name the backend announces, so a
/// test knows which backend the proxy picked.
///
/// Thread ownership: one thread at a time; every socket call is bounded by SO_SNDTIMEO/SO_RCVTIMEO.
final class IdentifiedClient {
    let fd: Int32
    /// The backend's name as announced, without the trailing newline.
    let backendName: String
    private var isClosed = false

    /// Connects to `endpoint`, first binding the socket to `sourceHost` (port 0) when given, and
    /// waits up to `timeout` seconds for the backend's name line. Throws if the connect fails or
    /// the connection ends or stays silent before a full line arrives.
    init(through endpoint: TCPEndpoint, from sourceHost: String? = nil, timeout: Double = 3) throws {
        let socket = try Sockets.makeTCPSocket(for: endpoint.host)
        do {
            try Sockets.setOption(socket, SOL_SOCKET, SO_SNDTIMEO, Sockets.timeval(seconds: timeout))
            try Sockets.setOption(socket, SOL_SOCKET, SO_RCVTIMEO, Sockets.timeval(seconds: timeout))
            if let sourceHost {
                _ = try TCPEndpoint(host: sourceHost, port: 0).withSocketAddress { address, length in
                    try systemCall("bind") { bind(socket, address, length) }
                }
            }
            _ = try endpoint.withSocketAddress { address, length in
                try systemCall("connect") { connect(socket, address, length) }
            }
            backendName = try Self.readNameLine(socket, timeout: timeout)
        } catch {
            Glibc.close(socket)
            throw error
        }
        fd = socket
    }

    deinit { close() }

    /// Reads up to and including the first "\n". The backend sends nothing else until the client
    /// does, so anything after the newline is a harness error.
    private static func readNameLine(_ fd: Int32, timeout: Double) throws -> String {
        var line: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 256)
        let deadline = Date().addingTimeInterval(timeout)
        while !line.contains(UInt8(ascii: "\n")) {
            let remaining = deadline.timeIntervalSinceNow
            guard remaining > 0 else {
                throw HarnessError("no backend name within \(timeout) s (got '\(String(decoding: line, as: UTF8.self))')")
            }
            try Sockets.setOption(fd, SOL_SOCKET, SO_RCVTIMEO, Sockets.timeval(seconds: remaining))
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n > 0 {
                line += chunk[0..<n]
            } else if n == 0 {
                throw HarnessError("connection closed before a backend name (got '\(String(decoding: line, as: UTF8.self))')")
            } else if errno != EINTR && errno != EAGAIN {
                throw SocketError(call: "recv", code: errno)
            }
        }
        guard line.last == UInt8(ascii: "\n"), line.firstIndex(of: UInt8(ascii: "\n")) == line.count - 1 else {
            throw HarnessError("unexpected bytes after the backend name: '\(String(decoding: line, as: UTF8.self))'")
        }
        return String(decoding: line.dropLast(), as: UTF8.self)
    }

    /// Sends `text` and expects exactly the same bytes back within `timeout` seconds.
    func roundTrip(_ text: String, timeout: Double = 3) throws {
        let bytes = Array(text.utf8)
        try bytes.withUnsafeBytes { try Sockets.sendAll(fd, $0) }
        var echoed: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: max(bytes.count, 1))
        let deadline = Date().addingTimeInterval(timeout)
        while echoed.count < bytes.count {
            let remaining = deadline.timeIntervalSinceNow
            guard remaining > 0 else { throw HarnessError("echo timed out after \(echoed.count) of \(bytes.count) bytes") }
            try Sockets.setOption(fd, SOL_SOCKET, SO_RCVTIMEO, Sockets.timeval(seconds: remaining))
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, bytes.count - echoed.count, 0) }
            if n > 0 {
                echoed += chunk[0..<n]
            } else if n == 0 {
                throw HarnessError("EOF after \(echoed.count) of \(bytes.count) echoed bytes")
            } else if errno != EINTR && errno != EAGAIN {
                throw SocketError(call: "recv", code: errno)
            }
        }
        guard echoed == bytes else { throw HarnessError("echo returned different bytes") }
    }

    func close() {
        guard !isClosed else { return }
        isClosed = true
        Glibc.close(fd)
    }
}

extension SwitchyardProcess {
    /// The names announced by `count` sequential clients, each closed before the next connects.
    func backendNamesOfSequentialClients(_ count: Int, timeout: Double = 3) throws -> [String] {
        try (0..<count).map { _ in
            let client = try IdentifiedClient(through: listen, timeout: timeout)
            defer { client.close() }
            return client.backendName
        }
    }

    /// Waits up to `timeout` seconds until stderr contains `text`; returns the seconds waited,
    /// or nil if it never appeared.
    func secondsUntilStandardError(contains text: String, timeout: Double) -> Double? {
        let start = Date()
        guard eventually(timeout: timeout, interval: 0.01, { standardError.contains(text) }) else { return nil }
        return Date().timeIntervalSince(start)
    }

    /// How many times `text` occurs in stderr so far.
    func standardErrorCount(of text: String) -> Int {
        standardError.components(separatedBy: text).count - 1
    }
}

/// One backend row of `switchyard admin show backends json`.
struct AdminBackendRow: Decodable {
    let service: String
    let address: String
    let state: String
    let weight: Int
    let health: String
    let active: Int
    let total: Int
    let lastCheck: String

    /// The `HOST:PORT` name (the JSON field `address`).
    var backend: String { address }

    enum CodingKeys: String, CodingKey {
        case service, address, state, weight, health, active, total
        case lastCheck = "last_check"
    }
}

/// Runs the binary under test as `switchyard admin --socket PATH show backends json` and decodes
/// its reply. The client is killed if it has not exited within `timeout` seconds.
/// `show backends json` straight over the admin socket (no child process).
func adminBackendRows(socketPath: String, timeout: Double = 5) throws -> [AdminBackendRow] {
    struct Reply: Decodable { let backends: [AdminBackendRow] }
    let reply = try AdminSocket(path: socketPath).send("show backends json", timeout: timeout)
    guard reply.isOK, let line = reply.body.first else { throw HarnessError("show backends json: \(reply)") }
    return try JSONDecoder().decode(Reply.self, from: Data(line.utf8)).backends
}

func adminShowBackends(socketPath: String, timeout: Double = 5) throws -> [AdminBackendRow] {
    struct Reply: Decodable { let backends: [AdminBackendRow] }
    let process = Process()
    process.executableURL = try SwitchyardProcess.binaryURL()
    process.arguments = ["admin", "--socket", socketPath, "show", "backends", "json"]
    let output = Pipe()
    let errors = Pipe()
    process.standardInput = FileHandle.nullDevice
    process.standardOutput = output
    process.standardError = errors
    try process.run()
    // The reply is a few hundred bytes, far below a pipe's capacity, so waiting before reading
    // cannot deadlock.
    if !eventually(timeout: timeout, interval: 0.005, { !process.isRunning }) {
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        throw HarnessError("switchyard admin did not exit within \(timeout) s")
    }
    let data = output.fileHandleForReading.readDataToEndOfFile()
    guard process.terminationStatus == 0 else {
        let message = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        throw HarnessError("switchyard admin exited with \(process.terminationStatus): \(message)")
    }
    // The reply is a status line ("OK") followed by the JSON document.
    guard let start = data.firstIndex(of: UInt8(ascii: "{")) else {
        throw HarnessError("switchyard admin printed no JSON: \(String(decoding: data, as: UTF8.self))")
    }
    return try JSONDecoder().decode(Reply.self, from: data[start...]).backends
}

/// Counts each name in `names`, for comparing distributions.
func tally(_ names: [String]) -> [String: Int] {
    names.reduce(into: [:]) { $0[$1, default: 0] += 1 }
}
