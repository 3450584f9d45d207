import CSwitchyard
import Glibc
import SwitchyardCore

/// Sends and receives a set of descriptors with a byte payload over a connected UNIX stream
/// socket (`SCM_RIGHTS`, unix(7)), in the frame `DescriptorFrame` describes.
///
/// Both ends are bounded: the whole frame must move within `timeout`, and a receiver refuses
/// more descriptors or payload than its `Limits`. The socket may be blocking or not: every
/// call uses `MSG_DONTWAIT` and waits in poll(2). Received descriptors are close-on-exec
/// (`MSG_CMSG_CLOEXEC`) and, on any error, all of them are closed before the error is thrown,
/// so a peer that lies, stops or sends too much leaks nothing.
///
/// Threads: any; the caller owns the socket for the duration of the call.
public enum DescriptorPassing {
    public struct Limits: Sendable {
        public var maximumDescriptors: Int
        public var maximumPayload: Int

        public init(maximumDescriptors: Int = DescriptorFrame.maximumDescriptors, maximumPayload: Int = HandoverMessage.maximumLength) {
            self.maximumDescriptors = maximumDescriptors
            self.maximumPayload = maximumPayload
        }
    }

    /// Sends `payload` and `descriptors` (which stay open here: the receiver gets its own).
    /// Throws a one-line message naming the step: the peer went away (EPIPE, ECONNRESET), a
    /// descriptor is not open (EBADF), or the timeout passed.
    public static func send(payload: [UInt8], descriptors: [Int32], over socket: Int32, timeout: Duration) throws(HandoverError) {
        guard descriptors.count <= DescriptorFrame.maximumDescriptors else {
            throw HandoverError("cannot send \(descriptors.count) descriptors; a frame carries at most \(DescriptorFrame.maximumDescriptors)")
        }
        guard payload.count <= UInt32.max else { throw HandoverError("handover payload of \(payload.count) bytes is too long") }
        let deadline = Deadline(timeout)
        let header = DescriptorFrame.Header(descriptorCount: descriptors.count, payloadLength: payload.count)
        let bytes = header.bytes + payload
        var sent = 0
        while sent < bytes.count {
            let result = bytes.withUnsafeBytes { raw in
                Socket.send(socket, UnsafeRawBufferPointer(rebasing: raw[sent...]), flags: Int32(MSG_DONTWAIT))
            }
            if result >= 0 {
                sent += result
                continue
            }
            try deadline.waitAfter(Int32(-result), socket, events: POLLOUT, doing: "sending the handover (\(sent) of \(bytes.count) bytes sent)")
        }
        var start = 0
        while start < descriptors.count {
            let batch = Array(descriptors[start..<min(start + DescriptorFrame.descriptorsPerBatch, descriptors.count)])
            while true {
                let result = sendMarker(batch, over: socket)
                if result >= 0 { break }
                try deadline.waitAfter(Int32(-result), socket, events: POLLOUT, doing: "sending descriptors \(start)..<\(start + batch.count)")
            }
            start += batch.count
        }
    }

    /// Receives one frame: the payload and the descriptors in the order they were sent.
    /// Throws a one-line message when the peer closes early, sends a frame that is not one or
    /// exceeds `limits`, sends descriptors the frame did not announce, or the timeout passes;
    /// every descriptor received so far is closed first.
    public static func receive(over socket: Int32, limits: Limits = Limits(), timeout: Duration) throws(HandoverError) -> (payload: [UInt8], descriptors: [Int32]) {
        var reader = FrameReader(socket: socket, deadline: Deadline(timeout), limit: min(limits.maximumDescriptors, DescriptorFrame.maximumDescriptors))
        do throws(HandoverError) {
            let headerBytes = try reader.read(DescriptorFrame.headerLength, doing: "the handover frame header")
            let header = try DescriptorFrame.Header(decoding: headerBytes, maximumDescriptors: reader.limit, maximumPayload: limits.maximumPayload)
            reader.limit = header.descriptorCount
            let payload = try reader.read(header.payloadLength, doing: "the handover payload")
            for batch in 0..<header.batchCount {
                let marker = try reader.read(1, doing: "descriptor batch \(batch + 1) of \(header.batchCount)")
                guard marker == [DescriptorFrame.markerByte] else {
                    throw HandoverError("handover frame: byte \(marker[0]) where descriptor batch \(batch + 1) was expected")
                }
            }
            guard reader.descriptors.count == header.descriptorCount else {
                throw HandoverError("handover frame announced \(header.descriptorCount) descriptors but \(reader.descriptors.count) arrived")
            }
            return (payload, reader.descriptors)
        } catch {
            for fd in reader.descriptors { closeDescriptor(fd) }
            throw error
        }
    }

    /// One sendmsg(2) of the marker byte with `batch` attached (internal for the tests, which
    /// build broken frames); returns its result, or `-errno`.
    static func sendMarker(_ batch: [Int32], over socket: Int32) -> Int {
        let dataLength = batch.count * MemoryLayout<Int32>.size
        let space = swy_cmsg_space(dataLength)
        let control = UnsafeMutableRawPointer.allocate(byteCount: space, alignment: MemoryLayout<cmsghdr>.alignment)
        defer { control.deallocate() }
        control.initializeMemory(as: UInt8.self, repeating: 0, count: space)
        var marker = DescriptorFrame.markerByte
        return withUnsafeMutablePointer(to: &marker) { markerPointer in
            var vector = iovec(iov_base: UnsafeMutableRawPointer(markerPointer), iov_len: 1)
            return withUnsafeMutablePointer(to: &vector) { vectorPointer in
                var message = msghdr()
                message.msg_iov = vectorPointer
                message.msg_iovlen = 1
                message.msg_control = control
                message.msg_controllen = space
                let header = swy_cmsg_firsthdr(&message)!
                header.pointee.cmsg_level = SOL_SOCKET
                header.pointee.cmsg_type = Int32(SCM_RIGHTS)
                header.pointee.cmsg_len = swy_cmsg_len(dataLength)
                batch.withUnsafeBytes { UnsafeMutableRawPointer(swy_cmsg_data(header)!).copyMemory(from: $0.baseAddress!, byteCount: dataLength) }
                return systemCallResult { sendmsg(socket, &message, Int32(MSG_NOSIGNAL | MSG_DONTWAIT)) }
            }
        }
    }
}

/// A point in time the whole exchange must finish by.
private struct Deadline {
    let end: ContinuousClock.Instant
    let timeout: Duration

    init(_ timeout: Duration) {
        self.timeout = timeout
        end = .now + timeout
    }

    /// After a call failed with `code`: returns to retry (EINTR, or EAGAIN once poll(2) says the
    /// socket is ready), throws for any other errno or once the deadline has passed.
    func waitAfter(_ code: Int32, _ socket: Int32, events: Int32, doing what: String) throws(HandoverError) {
        if code == EINTR { return }
        guard code == EAGAIN || code == EWOULDBLOCK else {
            throw HandoverError("\(what): \(Errno.describe(code))")
        }
        while true {
            let left = end - .now
            guard left > .zero else { throw HandoverError("\(what): timed out after \(timeout)") }
            let milliseconds = Int32(clamping: (left.nanosecondsClamped + 999_999) / 1_000_000)
            var entry = pollfd(fd: socket, events: Int16(events), revents: 0)
            let ready = Descriptor.poll(&entry, timeout: milliseconds)
            if ready > 0 { return }
            if ready < 0 && ready != -EINTR {
                throw HandoverError("\(what): \(SystemCallError(call: "poll", errno: -ready))")
            }
        }
    }
}

/// Reads exact byte counts with recvmsg(2), collecting every descriptor that arrives.
private struct FrameReader {
    let socket: Int32
    let deadline: Deadline
    /// Most descriptors accepted; one more is an error.
    var limit: Int
    private(set) var descriptors: [Int32] = []

    init(socket: Int32, deadline: Deadline, limit: Int) {
        self.socket = socket
        self.deadline = deadline
        self.limit = limit
    }

    mutating func read(_ count: Int, doing what: String) throws(HandoverError) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        var filled = 0
        let space = swy_cmsg_space(DescriptorFrame.descriptorsPerBatch * MemoryLayout<Int32>.size)
        let control = UnsafeMutableRawPointer.allocate(byteCount: space, alignment: MemoryLayout<cmsghdr>.alignment)
        defer { control.deallocate() }
        while filled < count {
            control.initializeMemory(as: UInt8.self, repeating: 0, count: space)
            var flags: Int32 = 0
            var code: Int32 = 0
            let result = bytes.withUnsafeMutableBytes { raw -> Int in
                var vector = iovec(iov_base: raw.baseAddress! + filled, iov_len: count - filled)
                return withUnsafeMutablePointer(to: &vector) { vectorPointer in
                    var message = msghdr()
                    message.msg_iov = vectorPointer
                    message.msg_iovlen = 1
                    message.msg_control = control
                    message.msg_controllen = space
                    let result = systemCallResult { recvmsg(socket, &message, Int32(MSG_CMSG_CLOEXEC) | Int32(MSG_DONTWAIT)) }
                    if result >= 0 {
                        collect(&message)
                        flags = message.msg_flags
                    } else {
                        code = Int32(-result)
                    }
                    return result
                }
            }
            if result < 0 {
                try deadline.waitAfter(code, socket, events: POLLIN, doing: "receiving \(what) (\(filled) of \(count) bytes)")
                continue
            }
            if flags & Int32(MSG_CTRUNC) != 0 {
                throw HandoverError("receiving \(what): the peer sent more descriptors than one batch holds")
            }
            if descriptors.count > limit {
                throw HandoverError("receiving \(what): the peer sent \(descriptors.count) descriptors, more than the \(limit) announced or allowed")
            }
            if result == 0 {
                throw HandoverError("receiving \(what): the peer closed the connection after \(filled) of \(count) bytes")
            }
            filled += result
        }
        return bytes
    }

    /// Takes every `SCM_RIGHTS` descriptor out of `message`'s control data.
    private mutating func collect(_ message: inout msghdr) {
        var header = swy_cmsg_firsthdr(&message)
        while let current = header {
            if current.pointee.cmsg_level == SOL_SOCKET && current.pointee.cmsg_type == Int32(SCM_RIGHTS) {
                let bytes = Int(current.pointee.cmsg_len) - swy_cmsg_len(0)
                let data = UnsafeRawPointer(swy_cmsg_data(current)!)
                for index in 0..<max(0, bytes) / MemoryLayout<Int32>.size {
                    descriptors.append(data.loadUnaligned(fromByteOffset: index * MemoryLayout<Int32>.size, as: Int32.self))
                }
            }
            header = swy_cmsg_nxthdr(&message, current)
        }
    }
}
