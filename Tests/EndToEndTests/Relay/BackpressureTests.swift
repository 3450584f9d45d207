import Foundation
import Glibc
import Testing

extension EndToEnd {
    /// A client that does not read must not make the proxy buffer without bound.
    @Suite struct Backpressure {
        /// Resident memory of `pid` in KiB, from /proc/PID/status.
        private func residentKiB(of pid: pid_t) -> Int? {
            guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
            for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
                return Int(line.split(separator: " ", omittingEmptySubsequences: true)[1])
            }
            return nil
        }

        @Test(arguments: RelayMode.allCases)
        func slowReaderHoldsProxyMemoryBoundedAndStillGetsEveryByte(relay: RelayMode) throws {
            let size = 256 << 20
            let seed: UInt64 = 0x51_0e_4ead
            let backend = try TestBackend(.sendThenClose(byteCount: size, seed: seed))
            let proxy = try SwitchyardProcess(relay: relay, options: ["--no-health-check"], backends: [backend.endpoint.description])
            let baseline = try #require(residentKiB(of: proxy.pid))

            // The client reads nothing for a second while the backend pushes 256 MiB as fast as
            // it can: socket buffers fill, and the proxy must stop reading rather than buffer.
            let connection = try TCPConnection(to: proxy.listen, timeout: 30)
            usleep(1_000_000)
            let stalled = try #require(residentKiB(of: proxy.pid))
            // A direction holds at most a few 64 KiB buffers or one 1 MiB pipe; allow generous
            // slack for the allocator, but far less than the 256 MiB on offer.
            #expect(stalled - baseline < 24 * 1024, "proxy RSS grew by \(stalled - baseline) KiB while the client read nothing")

            let received = connection.readToEnd(timeout: 30)
            #expect(received.checksum == DeterministicBytes.checksum(seed: seed, count: size))
            #expect(received.end == .endOfFile)
        }
    }
}
