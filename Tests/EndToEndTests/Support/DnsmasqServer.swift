import Foundation
import Glibc
import Synchronization
import SwitchyardCore

/// A dnsmasq started by an end-to-end test on 127.0.0.1 and a free high port, answering for
/// `.test` from a hosts file the test rewrites (SIGHUP re-reads it) and SRV records given at
/// start. Only this process is ever signalled, by its PID; it is stopped on deinit.
final class DnsmasqServer {
    let port: UInt16
    private let hostsPath: String
    private let folder: String
    private var process: Process?

    /// `hosts` lines are `ADDRESS NAME`; `services` are `--srv-host=` values
    /// (`_svc._tcp.test,TARGET,PORT,PRIORITY,WEIGHT`). Every answer carries TTL `ttl` seconds.
    init(hosts: [String], services: [String] = [], ttl: Int = 1) throws {
        folder = try ConfiguredProxy.makeFolder()
        hostsPath = folder + "/hosts"
        try Self.write(hosts, to: hostsPath)
        var started: (UInt16, Process)?
        for _ in 0..<5 where started == nil {
            let candidate = try Sockets.freeEndpoint().port
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/sbin/dnsmasq")
            process.arguments = [
                "--keep-in-foreground", "--no-resolv", "--no-hosts", "--addn-hosts=\(hostsPath)",
                "--port=\(candidate)", "--listen-address=127.0.0.1", "--bind-interfaces",
                "--local-ttl=\(ttl)", "--user=root", "--local=/test/", "--conf-file=/dev/null",
                "--pid-file=\(folder)/pid",
            ] + services.map { "--srv-host=\($0)" }
            process.standardInput = FileHandle.nullDevice
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try SwitchyardProcess.runWithDefaultSignalMask(process)
            // Ready once it answers a query over UDP. (Not over TCP: dnsmasq forks a child per TCP
            // connection, and nothing here should make it fork.)
            if eventually(timeout: 5, { !process.isRunning || Self.answers(port: candidate) }), process.isRunning {
                started = (candidate, process)
            } else if process.isRunning {
                kill(process.processIdentifier, SIGKILL)
                process.waitUntilExit()
            }
        }
        guard let (port, process) = started else { throw HarnessError("dnsmasq did not start") }
        self.port = port
        self.process = process
    }

    deinit {
        stop()
        try? FileManager.default.removeItem(atPath: folder)
    }

    var endpoint: String { "127.0.0.1:\(port)" }

    /// Replaces the hosts file and makes dnsmasq re-read it.
    func setHosts(_ lines: [String]) throws {
        try Self.write(lines, to: hostsPath)
        guard let process, process.isRunning else { return }
        kill(process.processIdentifier, SIGHUP)
        usleep(100_000)
    }

    /// Stops this dnsmasq (SIGTERM, then SIGKILL after 5 s).
    func stop() {
        guard let process else { return }
        self.process = nil
        if process.isRunning { kill(process.processIdentifier, SIGTERM) }
        if !eventually(timeout: 5, { !process.isRunning }) {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }

    /// Whether a DNS server on 127.0.0.1:`port` answers a query within 100 ms.
    static func answers(port: UInt16) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        try? Sockets.setOption(fd, SOL_SOCKET, SO_RCVTIMEO, Sockets.timeval(seconds: 0.1))
        let query = DNSQuery(id: 7, name: try! DNSName(parsing: "probe.test"), type: .a).bytes
        let sent: Int? = try? TCPEndpoint(host: "127.0.0.1", port: port).withSocketAddress { address, length in
            query.withUnsafeBytes { sendto(fd, $0.baseAddress, $0.count, 0, address, length) }
        }
        guard let sent, sent == query.count else { return false }
        var reply = [UInt8](repeating: 0, count: 512)
        return reply.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) } > 0
    }

    private static func write(_ lines: [String], to path: String) throws {
        try (lines.joined(separator: "\n") + "\n").write(toFile: path + ".new", atomically: false, encoding: .utf8)
        guard rename(path + ".new", path) == 0 else { throw HarnessError("rename \(path): errno \(errno)") }
    }
}

/// Backends on several loopback addresses and one port, as DNS pools of one name have them.
enum SamePortBackends {
    /// Starts `.identify` backends named after their host on `hosts`, all on one free port.
    static func start(hosts: [String]) throws -> (port: UInt16, backends: [TestBackend]) {
        for _ in 0..<20 {
            let port = try Sockets.freeEndpoint(host: hosts[0]).port
            var started: [TestBackend] = []
            for host in hosts {
                guard let backend = try? TestBackend(.identify(name: host), host: host, port: port) else { break }
                started.append(backend)
            }
            if started.count == hosts.count { return (port, started) }
        }
        throw HarnessError("no port was free on all of \(hosts)")
    }
}
