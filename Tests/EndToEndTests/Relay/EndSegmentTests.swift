import Foundation
import Glibc
import Testing

extension EndToEnd {
    /// The copy relay sends a direction's last bytes with its FIN when both were read together
    /// (`MSG_MORE` on the last send, issue 16): one segment fewer per connection.
    @Suite struct EndSegment {
        /// `tcpi_segs_in` of `struct tcp_info` (linux/tcp.h, UAPI): segments the socket received.
        static func segmentsIn(_ fd: Int32) -> UInt32? {
            var info = [UInt8](repeating: 0, count: 256)
            var length = socklen_t(info.count)
            let result = info.withUnsafeMutableBytes { getsockopt(fd, Int32(IPPROTO_TCP), TCP_INFO, $0.baseAddress, &length) }
            guard result == 0, length >= 144 else { return nil }
            return info.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 140, as: UInt32.self) }
        }

        @Test(arguments: [RelayMode.auto, .copy])
        func backendsLastBytesReachTheClientInTheSegmentOfItsFin(relay: RelayMode) throws {
            // The backend writes 1,000 bytes and closes at once, so the proxy usually reads the
            // bytes and the end in one turn of its loop. The client then receives the SYN-ACK and
            // one segment with the bytes and the FIN (2); sent apart they take 3.
            let size = 1000
            let seed: UInt64 = 0x5e9_f1
            let backend = try TestBackend(.sendThenClose(byteCount: size, seed: seed))
            let proxy = try SwitchyardProcess(relay: relay, backends: [backend.endpoint.description])
            var counts: [UInt32] = []
            for _ in 0..<30 {
                let connection = try TCPConnection(to: proxy.listen)
                let outcome = connection.readToEnd(timeout: 5)
                #expect(outcome.checksum == DeterministicBytes.checksum(seed: seed, count: size))
                #expect(outcome.end == .endOfFile)
                counts.append(try #require(Self.segmentsIn(connection.fd)))
                connection.close()
                if counts.filter({ $0 <= 2 }).count >= 3 { break }
            }
            #expect(counts.contains { $0 <= 2 }, "no connection got its last bytes with the FIN: \(counts)")
        }
    }
}
