import CSwitchyard
import Glibc
import Logging
import Synchronization
import SwitchyardCore


/// The new process's side of one takeover: the connection to the running process, what it
/// handed over, and which descriptors are still this object's to close.
///
/// Thread ownership: the main thread of `Instance.run`.
final class TakeoverSession {
    let path: String
    let message: HandoverMessage
    private var connection: Int32
    private var descriptors: [Int32?]
    /// Positions of handed-over sockets no listener took: closed after the commit.
    var closeAfterCommit: [Int] = []
    /// Listeners of the new configuration that took handed-over sockets, and that were bound fresh.
    var keptListeners = 0
    var boundListeners = 0

    private init(path: String, connection: Int32, message: HandoverMessage, descriptors: [Int32]) {
        self.path = path
        self.connection = connection
        self.message = message
        self.descriptors = descriptors
    }

    deinit { close() }

    /// The descriptor at `position`, which the caller now owns.
    func take(_ position: Int) -> Int32 {
        let fd = descriptors[position]!
        descriptors[position] = nil
        return fd
    }

    /// Closes the connection and every descriptor not taken. Safe to call twice.
    func close() {
        for case let fd? in descriptors { closeDescriptor(fd) }
        descriptors = descriptors.map { _ in nil }
        if connection >= 0 { closeDescriptor(connection) }
        connection = -1
    }

    /// Connects to the admin socket at `path`, asks for the handover and receives it.
    static func open(path: String) throws(HandoverError) -> TakeoverSession {
        let address: sockaddr_un
        let fd: Int32
        do {
            address = try UnixSocket.address(path)
            fd = try UnixSocket.make(nonBlocking: false)
        } catch {
            throw HandoverError("\(error)")
        }
        var handedOver = false
        defer { if !handedOver { closeDescriptor(fd) } }
        do throws(SystemCallError) {
            try systemCall("connect \(path)") { UnixSocket.withAddress(address) { connect(fd, $0, $1) } }
        } catch {
            throw HandoverError("cannot reach the running switchyard: \(error) (is it serving this --admin-socket?)")
        }
        // Its state lines would become this process's: only a server of this user or root.
        do {
            try UnixSocket.checkServer(fd, path: path)
        } catch {
            throw HandoverError(error.message)
        }
        do {
            try sendLine("takeover", over: fd)
        } catch {
            // Whatever answers there may have spoken and hung up first: say what it said.
            if let answer = try? readReply(fd, untilClosed: true).0, !answer.isEmpty {
                throw notSwitchyard(path, answer)
            }
            throw error
        }
        // A frame starts with "SWYF"; anything else is an admin reply, which says why not.
        try wait(fd, for: POLLIN, doing: "waiting for the handover")
        var first = [UInt8](repeating: 0, count: 4)
        let peeked = systemCallResult { first.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_PEEK)) } }
        if peeked <= 0 {
            throw HandoverError("the running switchyard closed the connection instead of handing over")
        }
        if first[0..<peeked] != DescriptorFrame.magic[0..<peeked] {
            let status = (try? readReply(fd, untilClosed: true).0) ?? ""
            if status.hasPrefix("ERROR: ") {
                throw HandoverError("the running switchyard refused: \(status.dropFirst(7))")
            }
            throw notSwitchyard(path, status)
        }
        let (message, received) = try HandoverChannel.receive(over: fd, timeout: Instance.takeoverStepTimeout)
        guard message.adminSocket != nil else {
            for descriptor in received { closeDescriptor(descriptor) }
            throw HandoverError("the running switchyard did not hand over its admin socket")
        }
        handedOver = true
        return TakeoverSession(path: path, connection: fd, message: message, descriptors: received)
    }

    private static func notSwitchyard(_ path: String, _ answer: String) -> HandoverError {
        let shown = String(answer.prefix(80).unicodeScalars.map { $0.value >= 0x20 && $0.value < 0x7F ? Character($0) : "?" })
        return HandoverError("\(path) is not the admin socket of a switchyard that can hand over: it answered '\(shown)'")
    }

    /// `takeover commit`: returns the reply's body once the running process stopped accepting.
    func commit() throws(HandoverError) -> [String] {
        try Self.sendLine("takeover commit", over: connection)
        let (status, body) = try Self.readReply(connection)
        guard status == "OK" else {
            let reason = status.hasPrefix("ERROR: ") ? String(status.dropFirst(7)) : status
            throw HandoverError("the running switchyard refused the commit: \(reason)")
        }
        return body
    }

    private static func sendLine(_ line: String, over fd: Int32) throws(HandoverError) {
        let bytes = Array((line + "\n").utf8)
        var sent = 0
        while sent < bytes.count {
            let result = systemCallResult {
                bytes.withUnsafeBytes { send(fd, $0.baseAddress! + sent, $0.count - sent, Int32(MSG_NOSIGNAL | MSG_DONTWAIT)) }
            }
            if result >= 0 {
                sent += result
                continue
            }
            let code = Int32(-result)
            guard code == EAGAIN else {
                throw HandoverError("sending '\(line)': \(SystemCallError(call: "send", errno: code))")
            }
            try wait(fd, for: POLLOUT, doing: "sending '\(line)'")
        }
    }

    /// One admin reply: the status line and the body, up to the empty line (at most 64 KiB).
    /// With `untilClosed`, what arrived before the peer closed counts as the reply.
    private static func readReply(_ fd: Int32, untilClosed: Bool = false) throws(HandoverError) -> (String, [String]) {
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        func lines(_ end: Int) -> (String, [String]) {
            let lines = String(decoding: bytes[..<end], as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
            return (lines[0], Array(lines.dropFirst()))
        }
        while true {
            if let end = (bytes.indices.dropFirst()).first(where: { bytes[$0] == 0x0A && bytes[$0 - 1] == 0x0A }) {
                return lines(end - 1)
            }
            guard bytes.count < 1 << 16 else { throw HandoverError("the running switchyard's reply is longer than 64 KiB") }
            try wait(fd, for: POLLIN, doing: "waiting for the reply")
            let count = systemCallResult { chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) } }
            if count == 0 {
                if untilClosed { return lines(bytes.count) }
                throw HandoverError("the running switchyard closed the connection before replying")
            }
            if count < 0 {
                let code = Int32(-count)
                if code == EAGAIN { continue }
                // A peer that hung up with our request unread resets instead of ending.
                if untilClosed && code == ECONNRESET { return lines(bytes.count) }
                throw HandoverError("reading the reply: \(SystemCallError(call: "recv", errno: code))")
            }
            bytes += chunk[0..<count]
        }
    }

    /// Waits (bounded by `Instance.takeoverStepTimeout`) until `fd` is ready for `events`.
    private static func wait(_ fd: Int32, for events: Int32, doing what: String) throws(HandoverError) {
        let deadline = ContinuousClock.now + Instance.takeoverStepTimeout
        while true {
            let left = deadline - .now
            guard left > .zero else { throw HandoverError("\(what): no answer within \(Instance.takeoverStepTimeout.shortDescription)") }
            var entry = pollfd(fd: fd, events: Int16(events), revents: 0)
            let ready = systemCallResult { Int(poll(&entry, 1, Int32(clamping: left.nanosecondsClamped / 1_000_000 + 1))) }
            if ready > 0 { return }
            if ready < 0 {
                throw HandoverError("\(what): \(SystemCallError(call: "poll", errno: Int32(-ready)))")
            }
        }
    }
}
