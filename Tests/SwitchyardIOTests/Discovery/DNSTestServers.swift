import Foundation
import Glibc
import Synchronization
@testable import SwitchyardCore
@testable import SwitchyardIO

/// A dnsmasq started by a test on 127.0.0.1 and a free high port, serving the `.test` domain
/// from a hosts file the test rewrites (SIGHUP re-reads it) and SRV records given at start
/// (a restart, on the same port, changes them). Only this process is ever signalled, by its PID.
final class Dnsmasq {
    let port: UInt16
    let hostsPath: String
    private let directory: URL
    private let ttl: Int
    private var process: Process?
    private var serviceRecords: [String]

    static let binary = "/usr/sbin/dnsmasq"

    /// `hosts` lines are `ADDRESS NAME`; `services` are `--srv-host=` values
    /// (`_svc._tcp.test,TARGET,PORT,PRIORITY,WEIGHT`). Every answer carries TTL `ttl`.
    init(hosts: [String], services: [String] = [], ttl: Int = 1) throws {
        directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("swy-dns-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        hostsPath = directory.appendingPathComponent("hosts").path
        self.ttl = ttl
        self.serviceRecords = services
        try Self.writeHosts(hosts, to: hostsPath)
        // The port is free when chosen; another process may take it before dnsmasq binds, so try a few.
        var started: (UInt16, Process)?
        for _ in 0..<5 where started == nil {
            let candidate = try freeUDPPort()
            if let process = try? Self.launch(port: candidate, hostsPath: hostsPath, ttl: ttl, directory: directory, services: services) {
                started = (candidate, process)
            }
        }
        guard let (port, process) = started else {
            throw SystemCallError(call: "dnsmasq did not start on a free port", errno: EADDRINUSE)
        }
        self.port = port
        self.process = process
    }

    deinit {
        stop()
        try? FileManager.default.removeItem(at: directory)
    }

    var endpoint: Endpoint { Endpoint(address: .v4(127, 0, 0, 1), port: port) }
    var pid: pid_t? { process?.processIdentifier }

    /// Replaces the hosts file (atomically, by rename) and makes dnsmasq re-read it.
    func setHosts(_ lines: [String]) throws {
        try Self.writeHosts(lines, to: hostsPath)
        guard let process, process.isRunning else { return }
        kill(process.processIdentifier, SIGHUP)
        // dnsmasq re-reads on its next loop turn; make sure it has before the test goes on.
        usleep(100_000)
    }

    /// Stops this dnsmasq (SIGTERM to its PID) and starts it again on the same port, with
    /// `services` as its SRV records when given.
    func restart(services: [String]? = nil) throws {
        stop()
        if let services { serviceRecords = services }
        process = try Self.launch(port: port, hostsPath: hostsPath, ttl: ttl, directory: directory, services: serviceRecords)
    }

    /// Stops this dnsmasq and waits (at most 5 s) for it to exit; then queries to its port are refused.
    func stop() {
        guard let process else { return }
        self.process = nil
        if process.isRunning { kill(process.processIdentifier, SIGTERM) }
        let deadline = Date().addingTimeInterval(5)
        while process.isRunning && Date() < deadline { usleep(10_000) }
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }

    private static func writeHosts(_ lines: [String], to hostsPath: String) throws {
        let temporary = hostsPath + ".new"
        try (lines.joined(separator: "\n") + "\n").write(toFile: temporary, atomically: false, encoding: .utf8)
        guard rename(temporary, hostsPath) == 0 else { throw SystemCallError(call: "rename \(temporary)", errno: errno) }
    }

    private static func launch(port: UInt16, hostsPath: String, ttl: Int, directory: URL, services: [String]) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.binary)
        process.arguments = [
            "--keep-in-foreground", "--no-resolv", "--no-hosts", "--addn-hosts=\(hostsPath)",
            "--port=\(port)", "--listen-address=127.0.0.1", "--bind-interfaces",
            "--local-ttl=\(ttl)", "--user=root", "--local=/test/", "--conf-file=/dev/null",
            "--pid-file=\(directory.appendingPathComponent("pid").path)",
        ] + services.map { "--srv-host=\($0)" }
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try runWithDefaultSignalMask(process)
        // Ready when it answers a query.
        let probe = DNSQuery(id: 1, name: try! DNSName(parsing: "probe.test"), type: .a)
        let deadline = Date().addingTimeInterval(5)
        while Date() < deadline {
            guard process.isRunning else { break }
            if let reply = try? udpExchange(probe.bytes, port: port, timeoutMilliseconds: 100), !reply.isEmpty {
                return process
            }
        }
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        throw SystemCallError(call: "dnsmasq on port \(port) did not start", errno: ETIMEDOUT)
    }
}

/// Runs `process` from a short-lived thread whose signal mask is empty: a child inherits the
/// spawning thread's mask, and the test runner's threads block SIGTERM and SIGHUP, which dnsmasq
/// (and `openssl s_server`) must receive (as `SwitchyardProcess` does for the proxy).
func runWithDefaultSignalMask(_ process: Process) throws {
    let outcome = Mutex<Result<Void, any Error>?>(nil)
    let thread = Thread {
        var empty = sigset_t()
        sigemptyset(&empty)
        pthread_sigmask(SIG_SETMASK, &empty, nil)
        let result = Result { try process.run() }
        outcome.withLock { $0 = result }
    }
    thread.start()
    guard timeUntil(.seconds(10), { outcome.withLock { $0 != nil } }) != nil else {
        throw SystemCallError(call: "launching \(process.executableURL?.lastPathComponent ?? "a peer") did not return within 10 s", errno: ETIMEDOUT)
    }
    try outcome.withLock { $0 }?.get()
}

/// A UDP port on 127.0.0.1 that was free a moment ago.
func freeUDPPort() throws -> UInt16 {
    let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    guard fd >= 0 else { throw SystemCallError(call: "socket", errno: errno) }
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
    guard bound == 0 else { throw SystemCallError(call: "bind", errno: errno) }
    _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
    return UInt16(bigEndian: address.sin_port)
}

/// Sends `bytes` to 127.0.0.1:`port` over UDP and returns the first datagram back, or nil after
/// the timeout.
func udpExchange(_ bytes: [UInt8], port: UInt16, timeoutMilliseconds: Int32) throws -> [UInt8]? {
    let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    guard fd >= 0 else { throw SystemCallError(call: "socket", errno: errno) }
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = port.bigEndian
    address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
    let length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let connected = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, length) } }
    guard connected == 0 else { throw SystemCallError(call: "connect", errno: errno) }
    _ = send(fd, bytes, bytes.count, 0)
    var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
    guard poll(&poller, 1, timeoutMilliseconds) == 1 else { return nil }
    var buffer = [UInt8](repeating: 0, count: 4096)
    let count = recv(fd, &buffer, buffer.count, 0)
    return count > 0 ? Array(buffer[0..<count]) : nil
}

/// A scripted DNS server on a UDP port of 127.0.0.1: for each query it receives, `respond`
/// returns the datagrams to send back (none: stay silent). Counts the queries by question.
final class FakeDNSServer: Sendable {
    typealias Responder = @Sendable (DNSMessage, [UInt8]) -> [[UInt8]]

    private final class Shared: Sendable {
        let received = Mutex<[DNSQuestion: Int]>([:])
        let stopped = Atomic<Bool>(false)
    }

    let port: UInt16
    private let fd: Int32
    private let thread: ControlThread
    private let shared = Shared()

    init(_ respond: @escaping Responder) throws {
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SystemCallError(call: "socket", errno: errno) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
        guard bound == 0 else {
            close(fd)
            throw SystemCallError(call: "bind", errno: errno)
        }
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        port = UInt16(bigEndian: address.sin_port)
        self.fd = fd
        let shared = self.shared
        thread = try ControlThread(name: "fake-dns") {
            var buffer = [UInt8](repeating: 0, count: 4096)
            while !shared.stopped.load(ordering: .acquiring) {
                var peer = sockaddr_storage()
                var peerLength = socklen_t(MemoryLayout<sockaddr_storage>.size)
                var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                guard poll(&poller, 1, 50) == 1 else { continue }
                let count = withUnsafeMutablePointer(to: &peer) { pointer in
                    pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { recvfrom(fd, &buffer, buffer.count, 0, $0, &peerLength) }
                }
                guard count > 0, let message = try? DNSMessage(parsing: Array(buffer[0..<count])),
                      let question = message.questions.first else { continue }
                shared.received.withLock { $0[question, default: 0] += 1 }
                for datagram in respond(message, Array(buffer[0..<count])) {
                    _ = withUnsafePointer(to: &peer) { pointer in
                        pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                            sendto(fd, datagram, datagram.count, 0, $0, peerLength)
                        }
                    }
                }
            }
        }
    }

    deinit { stop() }

    var endpoint: Endpoint { Endpoint(address: .v4(127, 0, 0, 1), port: port) }

    /// How many queries for `name` and `type` arrived.
    func queries(_ name: String, _ type: DNSRecordType) -> Int {
        shared.received.withLock { $0[DNSQuestion(name: try! DNSName(parsing: name), type: type)] ?? 0 }
    }

    func stop() {
        guard !shared.stopped.exchange(true, ordering: .acquiringAndReleasing) else { return }
        thread.join()
        close(fd)
    }
}

/// Builds a response to `query` (id and question echoed) with `answers`, each a record of the
/// query's name unless an owner is given.
struct FakeAnswer {
    static func response(to query: DNSMessage, rcode: UInt8 = 0, truncated: Bool = false, id: UInt16? = nil,
                         answers: [(owner: DNSName?, type: DNSRecordType, ttl: UInt32, data: [UInt8])] = []) -> [UInt8] {
        var bytes: [UInt8] = []
        func u16(_ value: UInt16) { bytes += [UInt8(value >> 8), UInt8(value & 0xFF)] }
        func name(_ name: DNSName) {
            for label in name.labels { bytes.append(UInt8(label.count)); bytes += label }
            bytes.append(0)
        }
        let question = query.questions[0]
        u16(id ?? query.id)
        u16(0x8180 | (truncated ? 0x0200 : 0) | UInt16(rcode))
        u16(1); u16(UInt16(answers.count)); u16(0); u16(0)
        name(question.name); u16(question.type.rawValue); u16(1)
        for answer in answers {
            name(answer.owner ?? question.name)
            u16(answer.type.rawValue); u16(1)
            bytes += [UInt8(answer.ttl >> 24), UInt8(answer.ttl >> 16 & 0xFF), UInt8(answer.ttl >> 8 & 0xFF), UInt8(answer.ttl & 0xFF)]
            u16(UInt16(answer.data.count)); bytes += answer.data
        }
        return bytes
    }

    static func srvData(priority: UInt16, weight: UInt16, port: UInt16, target: String) -> [UInt8] {
        var bytes = [UInt8(priority >> 8), UInt8(priority & 0xFF), UInt8(weight >> 8), UInt8(weight & 0xFF),
                     UInt8(port >> 8), UInt8(port & 0xFF)]
        for label in target.split(separator: ".") { bytes.append(UInt8(label.utf8.count)); bytes += Array(label.utf8) }
        bytes.append(0)
        return bytes
    }
}

/// Collects a watch's callbacks for a test.
final class ChangeLog: Sendable {
    private let changes = Mutex<[DNSBackendChange]>([])

    var handler: DNSDiscovery.ChangeHandler {
        { [self] change in changes.withLock { $0.append(change) } }
    }

    var all: [DNSBackendChange] { changes.withLock { $0 } }
    var count: Int { changes.withLock { $0.count } }
    var last: DNSBackendChange? { changes.withLock { $0.last } }

    /// The backends of the last change as `HOST:PORT[,weight=N]` texts.
    var lastSet: [String] { last?.backends.map(\.description) ?? [] }

    /// Waits up to `limit` for a change whose set is `expected`; returns it, or nil.
    func wait(for expected: [String], within limit: Duration) -> DNSBackendChange? {
        var found: DNSBackendChange?
        _ = timeUntil(limit) {
            found = changes.withLock { $0.last(where: { $0.backends.map(\.description) == expected }) }
            return found != nil
        }
        return found
    }
}
