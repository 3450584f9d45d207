import Glibc
import Synchronization
import Testing
@testable import SwitchyardIO
import SwitchyardCore

// Passing listening sockets between two threads of this process over a UNIX stream socket, as
// a takeover passes them between two processes. Leaks are looked for by each socket's /proc
// identity (`socket:[INODE]`), which other tests running in parallel cannot disturb.

private let shortTimeout = Duration.seconds(5)

/// Runs `body` on its own thread; `join()` waits for it and returns what it threw, if anything.
private final class Peer: Sendable {
    private final class Failure: Sendable {
        let text = Mutex<String?>(nil)
    }

    private let thread: ControlThread
    private let failure = Failure()

    init(_ body: @escaping @Sendable () throws -> Void) throws {
        let failure = self.failure
        thread = try ControlThread(name: "test-peer") {
            do { try body() } catch { failure.text.withLock { $0 = "\(error)" } }
        }
    }

    @discardableResult
    func join() -> String? {
        thread.join()
        return failure.text.withLock { $0 }
    }
}

private func receiveError(_ socket: Int32, limits: DescriptorPassing.Limits = .init(), timeout: Duration = shortTimeout) -> String? {
    do {
        let (_, descriptors) = try DescriptorPassing.receive(over: socket, limits: limits, timeout: timeout)
        for fd in descriptors { close(fd) }
        return nil
    } catch {
        return error.message
    }
}

private func sendRaw(_ socket: Int32, _ bytes: [UInt8]) {
    _ = bytes.withUnsafeBytes { send(socket, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
}

@Test func threeListeningSocketsPassedBetweenThreadsAcceptOnTheReceivingSide() throws {
    let listeners = [try TestDescriptors.listener(), try TestDescriptors.listener(), try TestDescriptors.listener(host: "::1")]
    let targets = listeners.map { TestDescriptors.target(of: $0.fd)! }
    let message = HandoverMessage(processID: Int(getpid()), descriptorCount: 3, listeners: [
        .init(service: "web", configured: Endpoint(address: .v4(127, 0, 0, 1), port: 0),
              bound: Endpoint(address: .v4(127, 0, 0, 1), port: listeners[0].port), descriptors: [0, 1]),
        .init(service: "v6", configured: Endpoint(address: IPAddress("::1")!, port: listeners[2].port),
              bound: Endpoint(address: IPAddress("::1")!, port: listeners[2].port), descriptors: [2]),
    ])
    try message.validate()
    let (near, far) = try TestDescriptors.unixPair()
    defer { close(near); close(far) }
    let fds = listeners.map(\.fd)
    let payload = Array(message.text.utf8)
    let sender = try Peer { try DescriptorPassing.send(payload: payload, descriptors: fds, over: far, timeout: shortTimeout) }

    let (received, descriptors) = try DescriptorPassing.receive(over: near, timeout: shortTimeout)
    #expect(sender.join() == nil)
    #expect(received == payload)
    #expect(try HandoverMessage(parsing: String(decoding: received, as: UTF8.self), descriptorCount: descriptors.count) == message)
    #expect(descriptors.count == 3)
    #expect(Set(descriptors).isDisjoint(with: fds))
    #expect(descriptors.map { TestDescriptors.target(of: $0) } == targets)
    #expect(descriptors.allSatisfy { fcntl($0, F_GETFD) & FD_CLOEXEC != 0 })

    // The old descriptors go away, as the old process's would; the received ones still accept.
    for fd in fds { close(fd) }
    for (index, fd) in descriptors.enumerated() {
        let host = index == 2 ? "::1" : "127.0.0.1"
        let client = try TestDescriptors.connect(host: host, port: listeners[index].port)
        var entry = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        #expect(poll(&entry, 1, 5000) == 1)
        let accepted = accept(fd, nil, nil)
        #expect(accepted >= 0)
        close(accepted)
        close(client)
        close(fd)
    }
    for target in targets { #expect(TestDescriptors.openCount(of: target) == 0) }
}

@Test func moreDescriptorsThanOneMessageHoldsTravelInBatches() throws {
    let (fd, _) = try TestDescriptors.listener()
    defer { close(fd) }
    let target = TestDescriptors.target(of: fd)!
    let copies = try (0..<300).map { _ in try WorkerDescriptors.duplicate(fd) }
    let (near, far) = try TestDescriptors.unixPair()
    defer { close(near); close(far) }
    let sender = try Peer { try DescriptorPassing.send(payload: Array("three hundred".utf8), descriptors: copies, over: far, timeout: shortTimeout) }
    let (payload, descriptors) = try DescriptorPassing.receive(over: near, timeout: shortTimeout)
    #expect(sender.join() == nil)
    #expect(payload == Array("three hundred".utf8))
    #expect(descriptors.count == 300)
    #expect(descriptors.allSatisfy { TestDescriptors.target(of: $0) == target })
    for copy in copies + descriptors { close(copy) }
    #expect(TestDescriptors.openCount(of: target) == 1)
}

@Test func aPeerThatClosesBeforeSendingIsAnError() throws {
    let (near, far) = try TestDescriptors.unixPair()
    defer { close(near) }
    close(far)
    #expect(receiveError(near) == "receiving the handover frame header: the peer closed the connection after 0 of 16 bytes")
}

@Test func fewerDescriptorsThanAnnouncedAreAnErrorAndClosed() throws {
    let (fd, _) = try TestDescriptors.listener()
    defer { close(fd) }
    let target = TestDescriptors.target(of: fd)!
    let (near, far) = try TestDescriptors.unixPair()
    defer { close(near) }
    sendRaw(far, DescriptorFrame.Header(descriptorCount: 2, payloadLength: 3).bytes + Array("abc".utf8))
    #expect(DescriptorPassing.sendMarker([fd], over: far) == 1)
    close(far)
    #expect(receiveError(near) == "handover frame announced 2 descriptors but 1 arrived")
    #expect(TestDescriptors.openCount(of: target) == 1)
}

@Test func aPayloadCutShortAfterDescriptorsArrivedIsAnErrorAndClosesThem() throws {
    let (fd, _) = try TestDescriptors.listener()
    defer { close(fd) }
    let target = TestDescriptors.target(of: fd)!
    let (near, far) = try TestDescriptors.unixPair()
    defer { close(near) }
    sendRaw(far, DescriptorFrame.Header(descriptorCount: 2, payloadLength: 100).bytes)
    #expect(DescriptorPassing.sendMarker([fd, fd], over: far) == 1)
    sendRaw(far, Array(repeating: 0x41, count: 10))
    close(far)
    #expect(receiveError(near) == "receiving the handover payload: the peer closed the connection after 11 of 100 bytes")
    #expect(TestDescriptors.openCount(of: target) == 1)
}

@Test func moreDescriptorsThanAnnouncedAreAnErrorAndClosed() throws {
    let (fd, _) = try TestDescriptors.listener()
    defer { close(fd) }
    let target = TestDescriptors.target(of: fd)!
    let (near, far) = try TestDescriptors.unixPair()
    defer { close(near); close(far) }
    sendRaw(far, DescriptorFrame.Header(descriptorCount: 1, payloadLength: 4).bytes)
    #expect(DescriptorPassing.sendMarker([fd, fd, fd], over: far) == 1)
    #expect(receiveError(near) == "receiving the handover payload: the peer sent 3 descriptors, more than the 1 announced or allowed")
    #expect(TestDescriptors.openCount(of: target) == 1)
}

@Test func aFrameBeyondTheReceiversLimitsIsRefusedBeforeAnyDescriptorIsTaken() throws {
    let (fd, _) = try TestDescriptors.listener()
    defer { close(fd) }
    let target = TestDescriptors.target(of: fd)!
    let (near, far) = try TestDescriptors.unixPair()
    defer { close(near); close(far) }
    let copies = [fd, fd, fd]
    let sender = try Peer { try DescriptorPassing.send(payload: [1, 2, 3], descriptors: copies, over: far, timeout: shortTimeout) }
    #expect(sender.join() == nil)
    #expect(receiveError(near, limits: .init(maximumDescriptors: 2)) == "handover frame carries 3 descriptors; at most 2 are accepted")
    #expect(TestDescriptors.openCount(of: target) == 1)

    let (other, otherFar) = try TestDescriptors.unixPair()
    defer { close(other); close(otherFar) }
    sendRaw(otherFar, DescriptorFrame.Header(descriptorCount: 0, payloadLength: 100).bytes)
    #expect(receiveError(other, limits: .init(maximumPayload: 99)) == "handover frame payload is 100 bytes; at most 99 are accepted")
}

@Test func aPeerThatStopsSendingTimesOut() throws {
    let (near, far) = try TestDescriptors.unixPair()
    defer { close(near); close(far) }
    sendRaw(far, DescriptorFrame.Header(descriptorCount: 0, payloadLength: 8).bytes + [1, 2])
    let clock = ContinuousClock()
    let start = clock.now
    let message = receiveError(near, timeout: .milliseconds(200))
    #expect(clock.now - start >= .milliseconds(200))
    #expect(message == "receiving the handover payload (2 of 8 bytes): timed out after 0.2 seconds")
}

@Test func aPeerSpeakingTheAdminProtocolIsNamedByWhatItSent() throws {
    let (near, far) = try TestDescriptors.unixPair()
    defer { close(near); close(far) }
    sendRaw(far, Array("ERROR: unknown command 'takeover'; send 'help' for the list\n\n".utf8))
    #expect(receiveError(near) == "the peer did not send a handover frame; it sent 'ERROR: unknown c...'")
}

@Test func sendingFailsClearlyWhenThePeerIsGoneOrADescriptorIsNotOpen() throws {
    let (fd, _) = try TestDescriptors.listener()
    defer { close(fd) }
    do {
        let (near, far) = try TestDescriptors.unixPair()
        defer { close(far) }
        close(near)
        #expect(throws: HandoverError("sending the handover (0 of 16 bytes sent): Broken pipe (EPIPE)")) {
            try DescriptorPassing.send(payload: [], descriptors: [fd], over: far, timeout: shortTimeout)
        }
    }
    do {
        let (near, far) = try TestDescriptors.unixPair()
        defer { close(near); close(far) }
        #expect(throws: HandoverError("sending descriptors 0..<2: Bad file descriptor (EBADF)")) {
            try DescriptorPassing.send(payload: [], descriptors: [fd, 999_999], over: far, timeout: shortTimeout)
        }
    }
    do {
        // Nobody reads: the socket buffer fills and the send gives up at its deadline.
        let (near, far) = try TestDescriptors.unixPair()
        defer { close(near); close(far) }
        #expect(throws: HandoverError.self) {
            try DescriptorPassing.send(payload: Array(repeating: 0, count: 1 << 20), descriptors: [], over: far, timeout: .milliseconds(100))
        }
    }
}

// MARK: - Handover channel

@Test func aHandoverOfListenerEntriesAndTheAdminSocketArrivesWhole() throws {
    let registry = BackendRegistry(backends: [try BackendSpec(parsing: "127.0.0.1:9")], algorithm: .roundRobin)
    let first = try TestDescriptors.listener(reusePort: true)
    let second = try Socket.listen(on: Endpoint(address: .v4(127, 0, 0, 1), port: first.port))
    let other = try TestDescriptors.listener(host: "::1")
    let admin = try TestDescriptors.unixPair()  // stands in for the admin socket's listener
    defer { close(admin.1) }
    let entries = [
        ListenerEntry(id: 0, service: "web", endpoint: Endpoint(address: .v4(127, 0, 0, 1), port: first.port), registry: registry, descriptors: [first.fd, second.fd]),
        ListenerEntry(id: 3, service: "api", endpoint: Endpoint(address: IPAddress("::1")!, port: other.port), registry: registry, descriptors: [other.fd]),
    ]
    var overrides = RuntimeOverrides()
    overrides.record(service: "web", try AdminCommand(parsing: "drain web/127.0.0.1:9"))
    let (message, descriptors) = HandoverChannel.describe(entries, configured: { entry in
        entry.service == "web" ? Endpoint(address: .v4(127, 0, 0, 1), port: 0) : entry.endpoint
    }, adminSocket: (admin.0, "/run/switchyard/admin.sock"), overrides: overrides)
    #expect(descriptors == [first.fd, second.fd, other.fd, admin.0])
    let targets = descriptors.map { TestDescriptors.target(of: $0)! }

    let (near, far) = try TestDescriptors.unixPair()
    defer { close(near); close(far) }
    let sender = try Peer { try HandoverChannel.send(message, descriptors: descriptors, over: far, timeout: shortTimeout) }
    let (received, fds) = try HandoverChannel.receive(over: near, timeout: shortTimeout)
    #expect(sender.join() == nil)
    #expect(received == message)
    #expect(received.listeners.map(\.descriptors) == [[0, 1], [2]])
    #expect(received.adminSocket == .init(descriptor: 3, path: "/run/switchyard/admin.sock"))
    #expect(received.overrides == overrides)
    #expect(fds.map { TestDescriptors.target(of: $0) } == targets)
    for fd in fds + descriptors { close(fd) }
    for target in targets { #expect(TestDescriptors.openCount(of: target) == 0) }
}

@Test func aHandoverWhoseTextIsBadClosesEveryDescriptorItBrought() throws {
    let (fd, _) = try TestDescriptors.listener()
    defer { close(fd) }
    let target = TestDescriptors.target(of: fd)!
    let (near, far) = try TestDescriptors.unixPair()
    defer { close(near); close(far) }
    let text = Array("switchyard-handover 1\npid 1\ndescriptors 2\nlistener web 127.0.0.1:1 127.0.0.1:1 0,1\n".utf8)  // no 'end'
    let sender = try Peer { try DescriptorPassing.send(payload: text, descriptors: [fd, fd], over: far, timeout: shortTimeout) }
    #expect(sender.join() == nil)
    #expect(throws: HandoverError("handover: message has no 'end' line (cut short?)")) {
        _ = try HandoverChannel.receive(over: near, timeout: shortTimeout)
    }
    #expect(TestDescriptors.openCount(of: target) == 1)
}

@Test func aHandoverMessageThatDoesNotNameEveryDescriptorIsNotSent() throws {
    let (near, far) = try TestDescriptors.unixPair()
    defer { close(near); close(far) }
    let message = HandoverMessage(processID: 1, descriptorCount: 1, listeners: [])
    #expect(throws: HandoverError("handover: descriptor 0 of 1 is not named by any line")) {
        try HandoverChannel.send(message, descriptors: [near], over: far, timeout: shortTimeout)
    }
}
