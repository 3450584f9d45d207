import Foundation
import Glibc
import Synchronization

/// An abstract-namespace datagram socket standing in for systemd's `NOTIFY_SOCKET`: every
/// datagram the proxy sends is one notification (`READY=1\nSTATUS=...\n`).
final class NotifyListener: @unchecked Sendable {
    let fd: Int32
    let name: String
    /// Every notification received so far, in order.
    private(set) var received: [String] = []

    init() throws {
        name = "swy-e2e-notify-\(getpid())-\(UUID().uuidString.prefix(8))"
        fd = try systemCall("socket") { socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = [UInt8(0)] + Array(name.utf8)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
        let length = socklen_t(MemoryLayout<sockaddr_un>.offset(of: \.sun_path)! + bytes.count)
        let socketFD = fd
        do {
            try systemCall("bind @\(name)") {
                withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(socketFD, $0, length) } }
            }
        } catch {
            // deinit runs even though init throws (every property is set) and closes it.
            throw error
        }
    }

    deinit { close(fd) }

    /// The `NOTIFY_SOCKET` value naming this socket.
    var address: String { "@" + name }

    /// The next notification within `timeout` seconds, or nil.
    func next(timeout: Double) -> String? {
        guard (try? Sockets.setOption(fd, SOL_SOCKET, SO_RCVTIMEO, Sockets.timeval(seconds: max(timeout, 0.001)))) != nil else { return nil }
        var buffer = [UInt8](repeating: 0, count: 4096)
        let count = recv(fd, &buffer, buffer.count, 0)
        guard count >= 0 else { return nil }
        let text = String(decoding: buffer[..<count], as: UTF8.self)
        received.append(text)
        return text
    }

    /// The first notification within `timeout` seconds that `matches`; the others are skipped
    /// (and kept in `received`).
    func first(timeout: Double, where matches: (String) -> Bool) -> String? {
        let deadline = Date().addingTimeInterval(timeout)
        while deadline.timeIntervalSinceNow > 0 {
            guard let text = next(timeout: deadline.timeIntervalSinceNow) else { return nil }
            if matches(text) { return text }
        }
        return nil
    }

    /// The next notification that is not only a `STATUS=` line.
    func nextEvent(timeout: Double) -> String? {
        first(timeout: timeout) { !NotifyListener.isStatusOnly($0) }
    }

    static func isStatusOnly(_ text: String) -> Bool {
        text.split(separator: "\n").allSatisfy { $0.hasPrefix("STATUS=") }
    }

    /// CLOCK_MONOTONIC in microseconds, the clock of `MONOTONIC_USEC=`.
    static func monotonicMicroseconds() -> UInt64 {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return UInt64(time.tv_sec) * 1_000_000 + UInt64(time.tv_nsec) / 1000
    }
}

/// The binary under test started as systemd starts a socket-activated service: the given
/// listening sockets become descriptors 3, 4, ... of the child, with `LISTEN_FDS` and
/// `LISTEN_PID` (the child's own pid: a shell sets it, then execs the binary, keeping its pid).
/// Unlike `systemd-socket-activate`, the test keeps its own descriptors of the sockets, as
/// systemd does, so it can see what the service leaves of them.
///
/// Started with posix_spawn(3) and an empty signal mask; only this pid is signalled and reaped.
final class ActivatedProcess: @unchecked Sendable {
    let pid: pid_t
    private let outputPath: String
    private var exitStatus: Int32?

    init(passing sockets: [Int32], arguments: [String], outputPath: String) throws {
        let binary = try SwitchyardProcess.binaryURL().path
        self.outputPath = outputPath
        let script = "LISTEN_PID=$$ LISTEN_FDS=\(sockets.count) exec \"$0\" \"$@\""
        let environment = ProcessInfo.processInfo.environment
            .filter { !["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES", "NOTIFY_SOCKET"].contains($0.key) }
        pid = try Spawn.start(["/bin/sh", "-c", script, binary] + arguments, environment: environment,
                              outputPath: outputPath, descriptors: sockets)
    }

    deinit {
        if !hasExited {
            kill(pid, SIGKILL)
            _ = waitForExit(timeout: 5)
        }
    }

    private var hasExited: Bool {
        if exitStatus != nil { return true }
        var status: Int32 = 0
        guard waitpid(pid, &status, WNOHANG) == pid else { return false }
        // WIFEXITED / WEXITSTATUS / WTERMSIG, which Swift does not import.
        let signal = status & 0x7F
        exitStatus = signal == 0 ? (status >> 8) & 0xFF : 128 + signal
        return true
    }

    /// The exit status (128 + N for signal N), or nil if still running after `timeout` seconds.
    func waitForExit(timeout: Double) -> Int32? {
        _ = eventually(timeout: timeout, interval: 0.01) { hasExited }
        return exitStatus
    }

    func terminate() {
        if !hasExited { kill(pid, SIGTERM) }
    }

    /// Standard output and standard error together.
    var output: String { (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? "" }
}
