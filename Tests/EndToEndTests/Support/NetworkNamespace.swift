import Foundation
import Glibc
import Synchronization

/// Network namespaces a test creates for itself, joined by veth pairs, so that real network
/// faults (nftables drop rules, `tc tbf` rate limits) can be put between the proxy and its
/// backends without touching the machine's own network.
///
/// Rules kept here:
/// - Every namespace is named `swy<PID>-<lab>-<role>`, so parallel runs cannot collide, and is
///   deleted when the lab is released (a test that fails still releases it). Namespaces of a
///   test process that no longer exists are deleted by the next lab.
/// - Interfaces are created inside the namespaces (`ip -n`), never in the root namespace, and
///   addresses are 10.99.N.1 / 10.99.N.2 on them only: no packet with a non-loopback address
///   appears in the root namespace. The proxy, its clients and its backends all run inside.
/// - Code runs in a namespace through `NetworkNamespace.run`, on a thread of its own that joined
///   it with setns(2); a socket belongs to the namespace it was created in for its whole life, and
///   a process started from that thread (the proxy) starts in the namespace too. The calling
///   thread never changes namespace.
final class NetworkLab: @unchecked Sendable {
    /// Nil when namespaces, veth pairs, nftables and tc all work here; otherwise why not.
    static let unavailableReason: String? = probe()
    static var isAvailable: Bool { unavailableReason == nil }

    private static let labCounter = Atomic<Int>(0)

    let prefix: String
    private let lock = Mutex<[String]>([])
    private var nextSubnet = 1

    init() throws {
        Self.deleteNamespacesOfDeadTestProcesses()
        prefix = "swy\(getpid())-\(Self.labCounter.add(1, ordering: .relaxed).newValue)"
    }

    deinit {
        for name in lock.withLock({ $0 }).reversed() {
            _ = try? Shell.run("/usr/sbin/ip", ["netns", "delete", name])
        }
    }

    /// A new namespace with its loopback up.
    func namespace(_ role: String) throws -> NetworkNamespace {
        let name = "\(prefix)-\(role)"
        try Shell.run("/usr/sbin/ip", ["netns", "add", name])
        lock.withLock { $0.append(name) }
        try Shell.run("/usr/sbin/ip", ["-n", name, "link", "set", "lo", "up"])
        return NetworkNamespace(name: name)
    }

    /// Joins `a` and `b` with a veth pair on the next 10.99.N.0/24: `a` gets 10.99.N.1 on
    /// interface `vN` of its own, `b` gets 10.99.N.2 on its `vN`.
    func link(_ a: NetworkNamespace, _ b: NetworkNamespace) throws -> VethLink {
        let subnet = nextSubnet
        nextSubnet += 1
        let interface = "v\(subnet)"
        try Shell.run("/usr/sbin/ip", ["-n", a.name, "link", "add", interface, "type", "veth", "peer", "name", interface, "netns", b.name])
        let link = VethLink(a: a, b: b, interface: interface, aAddress: "10.99.\(subnet).1", bAddress: "10.99.\(subnet).2")
        for (namespace, address) in [(a, link.aAddress), (b, link.bAddress)] {
            try Shell.run("/usr/sbin/ip", ["-n", namespace.name, "addr", "add", "\(address)/24", "dev", interface])
            try Shell.run("/usr/sbin/ip", ["-n", namespace.name, "link", "set", interface, "up"])
        }
        return link
    }

    /// Tries the tools once: `ip netns add`/`delete`, and that `nft` and `tc` exist.
    private static func probe() -> String? {
        guard getuid() == 0 else { return "network namespaces need root (running as uid \(getuid()))" }
        for tool in ["/usr/sbin/ip", "/usr/sbin/nft", "/usr/sbin/tc"] where !FileManager.default.isExecutableFile(atPath: tool) {
            return "\(tool) is missing (Scripts/test installs iproute2 and nftables)"
        }
        let name = "swy\(getpid())-probe"
        do {
            try Shell.run("/usr/sbin/ip", ["netns", "add", name])
            defer { _ = try? Shell.run("/usr/sbin/ip", ["netns", "delete", name]) }
            try Shell.run("/usr/sbin/ip", ["netns", "exec", name, "/usr/sbin/nft", "add", "table", "inet", "probe"])
            try Shell.run("/usr/sbin/ip", ["-n", name, "link", "set", "lo", "up"])
            try Shell.run("/usr/sbin/tc", ["-n", name, "qdisc", "add", "dev", "lo", "root", "tbf", "rate", "1gbit", "burst", "64kb", "latency", "10ms"])
        } catch {
            return "cannot set up a network namespace here: \(error)"
        }
        return nil
    }

    /// Deletes `swy<PID>-…` namespaces whose test process is gone (a run that was killed).
    private static func deleteNamespacesOfDeadTestProcesses() {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: "/run/netns") else { return }
        for name in names where name.hasPrefix("swy") {
            let digits = name.dropFirst(3).prefix(while: { $0.isNumber })
            guard let pid = Int32(digits), pid != getpid(), kill(pid, 0) != 0, errno == ESRCH else { continue }
            _ = try? Shell.run("/usr/sbin/ip", ["netns", "delete", name])
        }
    }
}

/// Two namespaces joined by a veth pair; each end is called `interface` in its namespace.
struct VethLink: Sendable {
    let a: NetworkNamespace
    let b: NetworkNamespace
    let interface: String
    let aAddress: String
    let bAddress: String
}

/// One network namespace of a `NetworkLab`, by name.
struct NetworkNamespace: Sendable {
    let name: String

    /// Runs `body` on a thread of its own that has joined this namespace and returns its result;
    /// throws what `body` throws, or if it did not finish within `timeout` seconds.
    func run<Result: Sendable>(timeout: Double = 30, _ body: @escaping @Sendable () throws -> Result) throws -> Result {
        let outcome = Mutex<Swift.Result<Result, any Error>?>(nil)
        let path = "/run/netns/\(name)"
        let thread = Thread {
            let result = Swift.Result<Result, any Error> {
                let fd = open(path, O_RDONLY | O_CLOEXEC)
                guard fd >= 0 else { throw SocketError(call: "open \(path)", code: errno) }
                defer { close(fd) }
                guard namespaceJoin(fd, 0x4000_0000 /* CLONE_NEWNET */) == 0 else {
                    throw SocketError(call: "setns \(path)", code: errno)
                }
                return try body()
            }
            outcome.withLock { $0 = result }
        }
        thread.stackSize = 1 << 20
        thread.start()
        guard eventually(timeout: timeout, interval: 0.002, { outcome.withLock { $0 != nil } }) else {
            throw HarnessError("code in namespace \(name) did not finish within \(timeout) s")
        }
        return try outcome.withLock { $0! }.get()
    }

    /// Loads an nftables ruleset (`nft -f -`) into this namespace.
    func nft(_ ruleset: String) throws {
        try Shell.run("/usr/sbin/ip", ["netns", "exec", name, "/usr/sbin/nft", "-f", "-"], input: ruleset)
    }

    /// `nft list ruleset` of this namespace.
    func nftRuleset() throws -> String {
        try Shell.run("/usr/sbin/ip", ["netns", "exec", name, "/usr/sbin/nft", "list", "ruleset"])
    }

    /// The packets counted by the `counter` of every rule carrying `comment`, summed.
    func packetsCounted(comment: String) throws -> Int {
        var total = 0
        for line in try nftRuleset().split(separator: "\n") where line.contains("comment \"\(comment)\"") {
            let words = line.split(separator: " ")
            if let index = words.firstIndex(of: "packets"), index + 1 < words.count, let count = Int(words[index + 1]) {
                total += count
            }
        }
        return total
    }

    /// Runs `tc ARGUMENTS...` in this namespace.
    func tc(_ arguments: [String]) throws {
        try Shell.run("/usr/sbin/tc", ["-n", name] + arguments)
    }
}

@_silgen_name("setns")
private func namespaceJoin(_ fd: Int32, _ type: Int32) -> Int32

/// Runs a command of the test's own (ip, nft, tc) and waits for it, bounded.
enum Shell {
    /// Runs `executable` with `arguments` (and `input` on its standard input) and returns its
    /// standard output; throws with its standard error if it fails or takes over `timeout` s.
    @discardableResult
    static func run(_ executable: String, _ arguments: [String], input: String? = nil, timeout: Double = 10) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let output = Pipe()
        let errors = Pipe()
        process.standardOutput = output
        process.standardError = errors
        let inputPipe = input.map { _ in Pipe() }
        process.standardInput = inputPipe ?? FileHandle.nullDevice
        try process.run()
        if let inputPipe, let input {
            inputPipe.fileHandleForWriting.write(Data(input.utf8))
            try? inputPipe.fileHandleForWriting.close()
        }
        // Outputs are small (a ruleset listing at most), far below a pipe's capacity.
        guard eventually(timeout: timeout, interval: 0.005, { !process.isRunning }) else {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            throw HarnessError("\(executable) \(arguments.joined(separator: " ")) did not finish within \(timeout) s")
        }
        let standardOutput = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        guard process.terminationStatus == 0 else {
            let message = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            throw HarnessError("\(executable) \(arguments.joined(separator: " ")) failed (\(process.terminationStatus)): \(message.trimmingCharacters(in: .whitespacesAndNewlines))")
        }
        return standardOutput
    }
}
