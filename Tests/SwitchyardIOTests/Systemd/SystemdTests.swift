import Glibc
import Logging
import Synchronization
import Testing
@testable import SwitchyardIO
import SwitchyardCore

private let quiet = Logger(label: "test.systemd") { _ in SwiftLogNoOpLogHandler() }
private let counter = Atomic<Int>(0)

/// A datagram socket standing in for systemd's notification socket: a path in /tmp or an
/// abstract name, both unique to this process and test.
private final class NotifyReceiver {
    let fd: Int32
    let value: String
    private let path: String?

    init(abstract: Bool) throws {
        let unique = "swy-notify-\(getpid())-\(counter.add(1, ordering: .relaxed).newValue)"
        fd = try systemCall("socket") { socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let offset = MemoryLayout<sockaddr_un>.offset(of: \.sun_path)!
        let bytes: [UInt8]
        let length: Int
        if abstract {
            value = "@" + unique
            path = nil
            bytes = [0] + Array(unique.utf8)
            length = offset + bytes.count
        } else {
            value = "/tmp/\(unique).sock"
            path = value
            bytes = Array(value.utf8)
            length = offset + bytes.count + 1
        }
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
        let socketFD = fd
        try systemCall("bind \(value)") {
            withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(socketFD, $0, socklen_t(length)) } }
        }
        var timeout = timeval(tv_sec: 2, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit {
        close(fd)
        if let path { unlink(path) }
    }

    /// The next datagram's text, or nil after 2 s.
    func next() -> String? {
        var buffer = [UInt8](repeating: 0, count: 4096)
        let count = recv(fd, &buffer, buffer.count, 0)
        return count < 0 ? nil : String(decoding: buffer[..<count], as: UTF8.self)
    }

    /// Whether nothing more arrives within 100 ms.
    func isEmpty() -> Bool {
        var buffer = [UInt8](repeating: 0, count: 16)
        return recv(fd, &buffer, buffer.count, Int32(MSG_DONTWAIT)) < 0
    }
}

@Test(arguments: [false, true])
func notifySocketReceivesExactlyTheLifecycleMessages(abstract: Bool) throws {
    let receiver = try NotifyReceiver(abstract: abstract)
    let notifier = SystemdNotifier(socket: receiver.value, logger: quiet)
    #expect(notifier.isEnabled)
    #expect(notifier.address?.description == receiver.value)

    #expect(notifier.ready(status: "listening on 127.0.0.1:8080; 0 connections"))
    let before = SystemdNotifier.monotonicMicroseconds()
    #expect(notifier.reloading())
    let after = SystemdNotifier.monotonicMicroseconds()
    #expect(notifier.ready())
    #expect(notifier.status("12 open, 340 total"))
    #expect(notifier.mainProcess(4242))
    #expect(notifier.stopping(status: "draining 12 connections"))

    #expect(receiver.next() == "READY=1\nSTATUS=listening on 127.0.0.1:8080; 0 connections\n")
    let reloading = try #require(receiver.next())
    let lines = reloading.split(separator: "\n")
    #expect(lines.count == 2)
    #expect(lines.first == "RELOADING=1")
    let stamp = try #require(lines.last.flatMap { $0.hasPrefix("MONOTONIC_USEC=") ? UInt64($0.dropFirst(15)) : nil })
    #expect(stamp >= before && stamp <= after)
    #expect(receiver.next() == "READY=1\n")
    #expect(receiver.next() == "STATUS=12 open, 340 total\n")
    #expect(receiver.next() == "MAINPID=4242\nREADY=1\n")
    #expect(receiver.next() == "STOPPING=1\nSTATUS=draining 12 connections\n")
    #expect(receiver.isEmpty())
}

@Test func withoutNotifySocketNotifyingDoesNothing() {
    for value in [nil, ""] as [String?] {
        let notifier = SystemdNotifier(socket: value, logger: quiet)
        #expect(!notifier.isEnabled)
        #expect(!notifier.ready())
        #expect(!notifier.stopping())
    }
}

@Test func anUnreachableOrMalformedNotifySocketIsLoggedOnceAndNeverFatal() {
    let log = LogLines()
    let logger = Logger(label: "test.systemd") { _ in CollectingHandler(log: log) }
    let missing = SystemdNotifier(socket: "/tmp/swy-notify-missing-\(getpid()).sock", logger: logger)
    #expect(missing.isEnabled)
    #expect(!missing.ready())
    #expect(!missing.status("x"))
    let warnings = log.lines
    #expect(warnings.count == 1)
    #expect(warnings.first?.contains("systemd notification not sent (READY): sendto /tmp/swy-notify-missing-") == true)
    #expect(warnings.first?.contains("(ENOENT)") == true)

    let malformed = SystemdNotifier(socket: "vsock:2:99", logger: logger)
    #expect(!malformed.isEnabled)
    #expect(log.lines.last?.hasPrefix("systemd notifications disabled: NOTIFY_SOCKET 'vsock:2:99'") == true)
}

/// Every message a `CollectingHandler` was given.
final class LogLines: Sendable {
    private let storage = Mutex<[String]>([])
    var lines: [String] { storage.withLock { $0 } }
    func append(_ line: String) { storage.withLock { $0.append(line) } }
}

struct CollectingHandler: LogHandler {
    let log: LogLines
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace

    init(log: LogLines) { self.log = log }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        log.append(event.message.description)
    }
}

// MARK: - Socket activation

private func flags(_ fd: Int32) -> (cloexec: Bool, nonBlocking: Bool) {
    (fcntl(fd, F_GETFD) & FD_CLOEXEC != 0, fcntl(fd, F_GETFL) & O_NONBLOCK != 0)
}

@Test func activatedListenersReportAddressNameAndBecomeCloseOnExecAndNonBlocking() throws {
    let v4 = try TestDescriptors.listener(nonBlocking: false)
    let v6 = try TestDescriptors.listener(host: "::1", nonBlocking: false, reusePort: true)
    defer { close(v4.fd); close(v6.fd) }
    // As systemd hands them over: inheritable and blocking.
    _ = fcntl(v4.fd, F_SETFD, 0)
    #expect(flags(v4.fd) == (false, false))
    let found = try SocketActivation.inspect([v4.fd, v6.fd], names: ["web", nil])
    #expect(found == [
        ActivatedListener(descriptor: v4.fd, name: "web", bound: Endpoint(address: .v4(127, 0, 0, 1), port: v4.port)),
        ActivatedListener(descriptor: v6.fd, name: nil, bound: Endpoint(address: IPAddress("::1")!, port: v6.port), reusePort: true),
    ])
    #expect(flags(v4.fd) == (true, true))
    #expect(flags(v6.fd) == (true, true))
}

@Test func passedDescriptorsThatAreNotListeningTCPSocketsAreRefusedAndAllClosed() throws {
    let listening = try TestDescriptors.listener()
    let idle = try systemCall("socket") { socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0) }
    let datagram = try systemCall("socket") { socket(AF_INET, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0) }
    let local = try systemCall("socket") { socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0) }
    var ends: [Int32] = [-1, -1]
    try systemCall("pipe") { pipe(&ends) }
    defer { close(ends[1]) }
    let notOpen: Int32 = 999_999
    let passed = [listening.fd, idle, datagram, local, ends[0], notOpen]
    let targets = passed.dropLast().map { TestDescriptors.target(of: $0)! }

    let message: String
    do {
        _ = try SocketActivation.inspect(passed, names: ["web", nil, "dns", "admin", nil, nil])
        Issue.record("inspect accepted descriptors that are not listening TCP sockets")
        return
    } catch {
        message = error.message
    }
    #expect(message.hasPrefix("systemd passed descriptors Switchyard cannot listen on: "))
    #expect(message.contains("fd \(idle) is a TCP socket that is not listening"))
    #expect(message.contains("fd \(datagram) (name 'dns') is a datagram socket (ListenDatagram=); Switchyard needs ListenStream="))
    #expect(message.contains("fd \(local) (name 'admin') is a UNIX socket, not TCP"))
    #expect(message.contains("fd \(ends[0]) is not a socket"))
    #expect(message.contains("fd \(notOpen) is not open"))
    #expect(!message.contains("fd \(listening.fd) "))
    for (index, target) in targets.enumerated() {
        // The pipe's write end, which this test holds, has the same target as its read end.
        let expected = passed[index] == ends[0] ? 1 : 0
        #expect(TestDescriptors.openCount(of: target) == expected, "\(target) is still open")
    }
}

@Test func workersGetDuplicatesOfASharedSocketOrFreshReusePortSockets() throws {
    let (fd, port) = try TestDescriptors.listener(reusePort: true)
    let target = TestDescriptors.target(of: fd)!
    let address = Endpoint(address: .v4(127, 0, 0, 1), port: port)

    let shared = try WorkerDescriptors.make(WorkerDescriptorPlan.entries(received: 1, workers: 3, canBindFresh: false), received: [fd], address: address)
    #expect(shared.count == 1 && shared[0].count == 3 && shared[0][0] == fd)
    #expect(Set(shared[0]).count == 3)
    #expect(shared[0].allSatisfy { TestDescriptors.target(of: $0) == target && fcntl($0, F_GETFD) & FD_CLOEXEC != 0 })

    let fresh = try WorkerDescriptors.make(WorkerDescriptorPlan.entries(received: 1, workers: 2, canBindFresh: true), received: [fd], address: address)
    #expect(fresh[0][0] == fd)
    #expect(TestDescriptors.target(of: fresh[0][1]) != target)
    #expect(TestDescriptors.option(fresh[0][1], SO_ACCEPTCONN) == 1)
    #expect(try Socket.localPort(fresh[0][1]) == port)

    for descriptor in shared[0].dropFirst() + fresh[0].dropFirst() { close(descriptor) }
    #expect(TestDescriptors.openCount(of: target) == 1)
    close(fd)
}
