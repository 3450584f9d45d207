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
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        // Move the sockets out of the way first, so that dup2 to 3, 4, ... never overwrites one.
        var moved: [Int32] = []
        defer { for fd in moved { close(fd) } }
        for fd in sockets {
            moved.append(try systemCall("fcntl(F_DUPFD_CLOEXEC)") { fcntl(fd, F_DUPFD_CLOEXEC, 100) })
        }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, outputPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        for (index, fd) in moved.enumerated() {
            posix_spawn_file_actions_adddup2(&actions, fd, 3 + Int32(index))
        }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attributes, &empty)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGTERM, SIGINT, SIGHUP, SIGPIPE] { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        let script = "LISTEN_PID=$$ LISTEN_FDS=\(sockets.count) exec \"$0\" \"$@\""
        let argv = ["/bin/sh", "-c", script, binary] + arguments
        let environment = ProcessInfo.processInfo.environment
            .filter { !["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES", "NOTIFY_SOCKET"].contains($0.key) }
            .map { "\($0.key)=\($0.value)" }
        var child: pid_t = 0
        let result = withCStrings(argv) { cArguments in
            withCStrings(environment) { cEnvironment in
                posix_spawn(&child, "/bin/sh", &actions, &attributes, cArguments, cEnvironment)
            }
        }
        guard result == 0 else { throw SocketError(call: "posix_spawn", code: result) }
        pid = child
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

/// Calls `body` with a NULL-terminated array of C strings for `strings`.
private func withCStrings<R>(_ strings: [String], _ body: ([UnsafeMutablePointer<CChar>?]) -> R) -> R {
    let pointers = strings.map { strdup($0) } + [nil]
    defer { for pointer in pointers { free(pointer) } }
    return body(pointers)
}
