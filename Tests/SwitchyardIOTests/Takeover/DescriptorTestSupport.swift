import Glibc
import Synchronization
@testable import SwitchyardIO
import SwitchyardCore

/// Sockets and descriptor bookkeeping for the systemd and handover tests.
enum TestDescriptors {
    /// A listening TCP socket on `host` (an IP literal), on a free port.
    static func listener(host: String = "127.0.0.1", nonBlocking: Bool = true, reusePort: Bool = false) throws -> (fd: Int32, port: UInt16) {
        let v6 = host.contains(":")
        var type = Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
        if nonBlocking { type |= Int32(SOCK_NONBLOCK.rawValue) }
        let fd = try systemCall("socket") { socket(v6 ? AF_INET6 : AF_INET, type, 0) }
        var one: Int32 = 1
        if reusePort { setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, socklen_t(MemoryLayout<Int32>.size)) }
        var storage = sockaddr_storage()
        let address = IPAddress(host)!
        let length = SocketAddress.fill(&storage, address: address, port: 0)
        do {
            try systemCall("bind") {
                withUnsafePointer(to: &storage) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
            }
            try systemCall("listen") { listen(fd, 512) }
            return (fd, try Socket.localPort(fd))
        } catch {
            close(fd)
            throw error
        }
    }

    /// A blocking client socket connected to `host`:`port`; throws the connect's errno.
    static func connect(host: String = "127.0.0.1", port: UInt16) throws(SystemCallError) -> Int32 {
        let address = SocketAddress(IPAddress(host)!, port: port)
        let fd = try systemCall("socket") { socket(address.family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0) }
        do throws(SystemCallError) {
            try systemCall("connect \(host):\(port)") { address.withSockaddr { Glibc.connect(fd, $0, $1) } }
        } catch {
            close(fd)
            throw error
        }
        return fd
    }

    /// A connected pair of UNIX stream sockets, close-on-exec.
    static func unixPair() throws -> (Int32, Int32) {
        var pair: [Int32] = [-1, -1]
        try systemCall("socketpair") { socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &pair) }
        return (pair[0], pair[1])
    }

    /// The `socket:[INODE]` target /proc shows for `fd`.
    static func target(of fd: Int32) -> String? {
        var buffer = [CChar](repeating: 0, count: 256)
        let count = readlink("/proc/self/fd/\(fd)", &buffer, buffer.count - 1)
        guard count > 0 else { return nil }
        return String(decoding: buffer[..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// How many of this process's descriptors refer to `target` (`socket:[INODE]`), counted in
    /// /proc/self/fd. Other tests running in parallel open and close descriptors of their own,
    /// so a leak is looked for by the socket's identity rather than by the total count.
    static func openCount(of target: String) -> Int {
        guard let directory = opendir("/proc/self/fd") else { return -1 }
        defer { closedir(directory) }
        var count = 0
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            guard let fd = Int32(name), fd != dirfd(directory) else { continue }
            if Self.target(of: fd) == target { count += 1 }
        }
        return count
    }

    static func option(_ fd: Int32, _ name: Int32) -> Int32? {
        var value: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        return getsockopt(fd, SOL_SOCKET, name, &value, &length) == 0 ? value : nil
    }
}

/// A thread with its own io_uring ring that multishot-accepts on one descriptor, as a worker
/// does, counting and closing what it accepts.
///
/// Commands go through `command` and a pipe the ring reads, since the ring (SINGLE_ISSUER)
/// may only be used from its own thread.
final class AcceptingRing: Sendable {
    enum Command: Int { case none = 0, cancelAccept = 1, stop = 2 }

    let accepted = Atomic<Int>(0)
    /// The accept ended with this result (-ECANCELED after `cancelAccept`, -EINVAL after a
    /// shutdown of the socket); 0 while it runs.
    let endedWith = Atomic<Int32>(0)
    let started = Atomic<Bool>(false)
    private let command = Atomic<Int>(0)
    private let wake: Int32
    private let wakeWriter: Int32
    private let listener: Int32
    private let thread = Mutex<ControlThread?>(nil)

    /// Starts accepting on `listener` (this object closes it once stopped or cancelled).
    init(listener: Int32) throws {
        self.listener = listener
        var ends: [Int32] = [-1, -1]
        try systemCall("pipe") { pipe(&ends) }
        wake = ends[0]
        wakeWriter = ends[1]
        let started = try ControlThread(name: "test-accept") { [self] in run() }
        thread.withLock { $0 = started }
        guard timeUntil(.seconds(5), { self.started.load(ordering: .acquiring) }) != nil else {
            throw SystemCallError(call: "AcceptingRing start", errno: ETIMEDOUT)
        }
    }

    deinit {
        close(wake)
        close(wakeWriter)
    }

    func send(_ value: Command) {
        command.store(value.rawValue, ordering: .releasing)
        var byte: UInt8 = 1
        _ = write(wakeWriter, &byte, 1)
    }

    func stop() {
        send(.stop)
        thread.withLock { current -> ControlThread? in defer { current = nil }; return current }?.join()
    }

    private func run() {
        guard let ring = try? Ring(entries: 64) else { return }
        // Outlives the ring: the kernel may write to it until the ring is gone.
        let buffer = UnsafeMutablePointer<UInt64>.allocate(capacity: 1)
        defer { withExtendedLifetime(ring) {}; buffer.deallocate() }
        var listenerOpen = true
        ring.submit(.acceptMultishot(listener: listener), userData: 1)
        ring.submit(.read(fd: wake, buffer: UnsafeMutableRawPointer(buffer), length: 1), userData: 2)
        // Connections that arrive before the accept reaches the kernel wait in the backlog.
        started.store(true, ordering: .releasing)
        var running = true
        while running {
            try? ring.submitAndWait()
            ring.drainCompletions { userData, result, flags in
                if userData == 1 {
                    if result >= 0 {
                        accepted.add(1, ordering: .relaxed)
                        close(result)
                    }
                    if flags & 2 == 0 {  // no IORING_CQE_F_MORE (1 << 1): the accept ended
                        if result < 0 { endedWith.store(result, ordering: .relaxed) }
                        if result >= 0 && listenerOpen { ring.submit(.acceptMultishot(listener: listener), userData: 1) }
                    }
                } else if userData == 2 {
                    switch Command(rawValue: command.exchange(0, ordering: .acquiring)) {
                    case .cancelAccept?:
                        ring.submit(.cancelAll(fd: listener), userData: 3)
                        ring.submit(.read(fd: wake, buffer: UnsafeMutableRawPointer(buffer), length: 1), userData: 2)
                    case .stop?:
                        running = false
                    default:
                        ring.submit(.read(fd: wake, buffer: UnsafeMutableRawPointer(buffer), length: 1), userData: 2)
                    }
                } else if userData == 3 {
                    // The cancel's own completion: the accept has been cancelled; close our descriptor.
                    if listenerOpen { close(listener); listenerOpen = false }
                }
            }
        }
        if listenerOpen { close(listener) }
    }
}
