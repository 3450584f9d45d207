import CSwitchyard
import Glibc
import Testing
@testable import SwitchyardIO

/// `Ring.addMoreFlag` against a real ring and a loopback TCP pair: a send still waiting in the
/// submission queue can be told that a FIN follows, and its bytes then leave in the FIN's
/// segment; once the kernel has read the entry, it can no longer be changed.
@Suite struct RingSendMoreTests {
    private static let sendData: UInt64 = 11

    /// `tcpi_segs_in` of `struct tcp_info` (linux/tcp.h, UAPI): segments the socket received.
    private static func segmentsIn(_ fd: Int32) -> UInt32 {
        var info = [UInt8](repeating: 0, count: 256)
        var length = socklen_t(info.count)
        let result = info.withUnsafeMutableBytes { getsockopt(fd, Int32(IPPROTO_TCP), TCP_INFO, $0.baseAddress, &length) }
        guard result == 0, length >= 144 else { return .max }
        return info.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 140, as: UInt32.self) }
    }

    /// Sends 100 bytes from the accepted end through a ring, marking the send with `MSG_MORE`
    /// before submission when `more`, then shuts its write side down. Returns the segments the
    /// connecting end received for them, and whether the flag could be set before and after.
    private func exchange(more: Bool) throws -> (segments: UInt32, markedBefore: Bool, markedAfter: Bool) {
        let (listener, port) = try TestDescriptors.listener(nonBlocking: false)
        defer { close(listener) }
        let client = try TestDescriptors.connect(port: port)
        defer { close(client) }
        let server = accept(listener, nil, nil)
        try #require(server >= 0)
        defer { close(server) }
        var one: Int32 = 1
        setsockopt(server, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))

        let ring = try Ring(entries: 8)
        let payload = [UInt8]((0..<100).map { UInt8(truncatingIfNeeded: $0 &* 7) })
        let before = Self.segmentsIn(client)
        let (markedBefore, markedAfter) = try payload.withUnsafeBytes { bytes -> (Bool, Bool) in
            let entry = ring.submit(.send(socket: server, bytes: bytes.baseAddress!, length: 100, more: false),
                                    userData: Self.sendData)
            let markedBefore = more ? ring.addMoreFlag(entry, userData: Self.sendData) : false
            var sent: Int32?
            for _ in 0..<10 where sent == nil {
                try ring.submitAndWait()
                ring.drainCompletions { userData, result, _ in
                    if userData == Self.sendData { sent = result }
                }
            }
            #expect(sent == 100)
            return (markedBefore, ring.addMoreFlag(entry, userData: Self.sendData))
        }
        #expect(shutdown(server, Int32(SHUT_WR)) == 0)

        var received: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 512)
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        while true {
            let n = chunk.withUnsafeMutableBytes { recv(client, $0.baseAddress, $0.count, 0) }
            if n <= 0 {
                #expect(n == 0, "end of stream expected, errno \(errno)")
                break
            }
            received += chunk[0..<n]
        }
        #expect(received == payload)
        return (Self.segmentsIn(client) &- before, markedBefore, markedAfter)
    }

    @Test func sendMarkedBeforeSubmissionLeavesWithTheFinInOneSegment() throws {
        let result = try exchange(more: true)
        #expect(result.markedBefore, "an entry not yet handed to the kernel can be changed")
        #expect(!result.markedAfter, "an entry the kernel has read must not be changed")
        #expect(result.segments == 1, "data and FIN arrived in \(result.segments) segments")
    }

    @Test func unmarkedSendAndFinArriveAsTwoSegments() throws {
        // The control: without the flag the same exchange takes a segment more, so the test
        // above measures the flag and not the loopback.
        let result = try exchange(more: false)
        #expect(!result.markedAfter)
        #expect(result.segments == 2, "data and FIN arrived in \(result.segments) segments")
    }
}
