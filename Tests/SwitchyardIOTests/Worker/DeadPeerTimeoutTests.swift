import Glibc
import Testing
@testable import SwitchyardIO

/// `Socket.setDeadPeerTimeout`, which a `--backend-timeout` flag is to apply to backend sockets.
@Suite struct DeadPeerTimeoutTests {
    private func option(_ fd: Int32, _ name: Int32) -> Int32 {
        var value: Int32 = -1
        var size = socklen_t(MemoryLayout<Int32>.size)
        _ = getsockopt(fd, Int32(IPPROTO_TCP), name, &value, &size)
        return value
    }

    @Test(arguments: [
        // timeout in ms, then TCP_USER_TIMEOUT, TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_KEEPCNT
        (Int64(3_000), Int32(3_000), Int32(1), Int32(1), Int32(3)),
        (30_000, 30_000, 15, 5, 3),
        (120_000, 120_000, 60, 20, 3),
        (500, 500, 1, 1, 3),
    ])
    func timeoutSetsUserTimeoutAndKeepaliveSoThatAProbeFallsAtTheTimeout(
        milliseconds: Int64, userTimeout: Int32, idle: Int32, interval: Int32, count: Int32
    ) throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        try #require(fd >= 0)
        defer { close(fd) }
        Socket.configureStream(fd)
        #expect(Socket.setDeadPeerTimeout(fd, .milliseconds(milliseconds)))
        #expect(option(fd, TCP_USER_TIMEOUT) == userTimeout)
        #expect(option(fd, TCP_KEEPIDLE) == idle)
        #expect(option(fd, TCP_KEEPINTVL) == interval)
        #expect(option(fd, TCP_KEEPCNT) == count)
        var keepalive: Int32 = 0
        var size = socklen_t(MemoryLayout<Int32>.size)
        _ = getsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &keepalive, &size)
        #expect(keepalive == 1)
    }
}
